"""``artnet check-data LIST``: report unreadable, missing, short, miscounted or mislabelled entries."""

from __future__ import annotations

import argparse
import os

from .parsing import integer


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "check-data",
        help="scan a dataset list for unreadable, short, miscounted or mislabelled videos",
        description="Open and decode every video of LIST (upstream '<path> <num_frames> <label>' or '<path> <label>', "
        "one or the other). Exits 1 when a video is missing, unreadable (a still image, a frame folder with a gap ...), "
        "miscounted or mislabelled, 2 when LIST itself is malformed or empty.",
    )
    parser.add_argument("list", help="list file")
    parser.add_argument("--root", help="folder the list's paths are relative to (default: the list's folder's parent)")
    parser.add_argument("--classes", help="class names: one per line, or UCF101's classInd.txt ('<index> <name>')")
    parser.add_argument(
        "--clip-len", type=integer(1), default=16, help="videos shorter than this are reported as short (default 16)"
    )
    parser.add_argument("--quick", action="store_true", help="open and count only; do not decode every frame")
    parser.add_argument("--jobs", type=integer(1), default=os.cpu_count() or 1)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data.annotations import load_list
    from ..data.check import SEVERE, check_dataset
    from ..table import format_table

    root = args.root if args.root is not None else os.path.dirname(os.path.dirname(os.path.abspath(args.list)))
    annotations = load_list(root, list_file=args.list, classes=args.classes, max_missing_ratio=1.0)
    report = check_dataset(annotations, clip_len=args.clip_len, decode=not args.quick, jobs=args.jobs, progress=not args.quiet)
    for problem in report.problems:
        print(problem)
    kinds = SEVERE + ("short",)
    rows = [("videos", report.total)] + [(kind, report.count(kind)) for kind in kinds]
    print()
    print(format_table(("entries", "count"), rows))
    print()
    print(f"{args.list}: " + ("OK" if report.ok else f"{sum(report.count(k) for k in SEVERE)} problem(s)"))
    return 0 if report.ok else 1
