"""``artnet fuse A/scores.npz B/scores.npz --weights 1 1.5``: late fusion of saved test scores."""

from __future__ import annotations

import argparse

from .parsing import number


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "fuse",
        help="late fusion of the scores of several tests (e.g. RGB and flow), as the paper's Fusion rows",
        description="Fuse the scores.npz files that `artnet test` writes (one per stream, same test set): the weighted "
        "mean of their video scores (logits, as upstream's eval_scores.py), checked to cover the same videos, labels "
        "and classes. Prints each file's accuracy and the fusion's; --out writes artnet test's reports of the fusion.",
    )
    parser.add_argument("scores", nargs="+", metavar="SCORES", help="scores.npz files of artnet test (two or more)")
    parser.add_argument(
        "--weights",
        nargs="+",
        type=number(0),
        metavar="W",
        help="one weight per file (default: equal; TSN fused RGB and flow at 1 1.5)",
    )
    parser.add_argument("--softmax", action="store_true", help="fuse each file's class probabilities instead of its logits")
    parser.add_argument(
        "--out",
        default=None,
        help="write the fusion's reports here (metrics.json, per_class.csv, scores.npz, confusion.png); an earlier report "
        "there is replaced, other files are not",
    )
    parser.add_argument("--force", action="store_true", help="write the reports into --out even if it holds other files")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from ..engine.fusion import fuse_scores, load_scores
    from ..engine.metrics import claim_report_dir

    if args.out:  # before the work: a refusal costs nothing
        claim_report_dir(Path(args.out), args.force, inputs=args.scores)
    elif args.force:
        from ..errors import ConfigError

        raise ConfigError("--force goes with --out")
    fusion = fuse_scores([load_scores(path) for path in args.scores], args.weights, softmax=args.softmax)
    print(fusion.table())
    where = f"  -> {fusion.write_reports(args.out)}" if args.out else ""
    print(f"fusion: {fusion.metrics.summary()}{where}")
