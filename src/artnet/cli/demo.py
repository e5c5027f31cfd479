"""``artnet demo``: train and test a small ARTNet on the built-in dataset, on the CPU."""

from __future__ import annotations

import argparse

from .parsing import integer


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="ARTNet on the built-in dataset in minutes on a CPU (--compare: with C3D and C2D)",
        description="Builds the built-in dataset if missing, trains a small ARTNet (d) on the CPU, "
        "evaluates it with the 25-clip protocol and prints top-1 / top-5, by class kind.",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. solver.base_lr=0.05")
    parser.add_argument("--compare", action="store_true", help="also train C3D and C2D of the same size; one table and a PNG plot")
    parser.add_argument(
        "--two-stream",
        action="store_true",
        help="also train the ARTNet on optical flow (computed once, Farneback) and fuse the two streams: RGB / Flow / Fusion",
    )
    parser.add_argument(
        "--seeds",
        type=integer(0),
        nargs="+",
        default=None,
        metavar="SEED",
        help="training seeds: a run of every model per seed, and a table of the mean and range over them (default: the recipe's)",
    )
    parser.add_argument("--out", default="runs/demo", help="where the runs go (default runs/demo)")
    parser.add_argument(
        "--data", default=None, help="dataset folder (default $ARTNET_CACHE/synthetic or ~/.cache/artnet/synthetic)"
    )
    parser.add_argument("--config", default=None, help="another recipe (default: the packaged demo recipe)")
    parser.add_argument("--retrain", action="store_true", help="train again even if a finished run is in --out")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..demo import run_demo

    run_demo(
        compare=args.compare,
        two_stream=args.two_stream,
        out_dir=args.out,
        data_dir=args.data,
        recipe=args.config,
        overrides=args.overrides,
        retrain=args.retrain,
        seeds=args.seeds,
    )
