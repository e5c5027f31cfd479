"""``artnet synthetic``: write (or reuse) the built-in video dataset."""

from __future__ import annotations

import argparse
import time

from .parsing import integer, number, parse_dims


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "synthetic",
        help="generate the built-in dataset: appearance classes and time-reversed temporal pairs",
        description="Write H.264 videos and UCF101-style split files (classInd.txt, trainlist01.txt, "
        "testlist01.txt) plus classes.json. Cached: the same parameters reuse the folder.",
    )
    from ..data.synthetic import SyntheticParams

    defaults = SyntheticParams()
    parser.add_argument("--out", required=True, help="output folder (created; reused when already generated)")
    parser.add_argument("--seed", type=integer(0), default=defaults.seed)
    parser.add_argument("--clips-per-class", type=integer(2), default=defaults.clips_per_class)
    parser.add_argument(
        "--test-fraction", type=number(0, 1), default=defaults.test_fraction, help="share of each class's clips in the test list"
    )
    parser.add_argument("--frames", type=integer(2), default=defaults.num_frames, help="frames per clip")
    parser.add_argument("--size", default=f"{defaults.height}x{defaults.width}", help="frame size H x W (even numbers)")
    parser.add_argument("--fps", type=integer(1), default=defaults.fps)
    parser.add_argument(
        "--crf", type=integer(0, 51), default=defaults.crf, help="libx264 constant rate factor (0-51, lower is better)"
    )
    parser.add_argument("--workers", type=integer(1), default=None, help="processes (default: one per CPU)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..data.synthetic import generate

    height, width = parse_dims(args.size, "--size", ("H", "W"), "96x128")
    start = time.perf_counter()
    dataset = generate(
        args.out,
        seed=args.seed,
        clips_per_class=args.clips_per_class,
        test_fraction=args.test_fraction,
        num_frames=args.frames,
        height=height,
        width=width,
        fps=args.fps,
        crf=args.crf,
        workers=args.workers,
        progress=not args.quiet,
    )
    print(summary(dataset, time.perf_counter() - start))


def summary(dataset, seconds: float) -> str:
    from ..table import format_table

    params = dataset.params
    num_test = params.num_test
    rows = [
        (label + 1, cls.name, cls.kind, cls.partner or "", params.clips_per_class - num_test, num_test)
        for label, cls in enumerate(dataset.classes)
    ]
    size_mb = sum(f.stat().st_size for f in dataset.root.rglob("*") if f.is_file()) / 1e6
    return (
        f"{dataset.root}: {len(rows)} classes, {len(rows) * params.clips_per_class} clips of {params.num_frames} frames "
        f"{params.height}x{params.width} at {params.fps} fps, seed {params.seed}, {size_mb:.1f} MB, {seconds:.1f} s\n\n"
        + format_table(("index", "class", "kind", "reversed twin", "train", "test"), rows)
        + f"\n\nsplits: {dataset.class_ind.name}, {dataset.train_list.name}, {dataset.test_list.name}; "
        "temporal pairs: each class is its twin's clips played backwards, so single frames cannot tell them apart."
    )
