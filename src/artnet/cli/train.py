"""``artnet train CONFIG [key=value ...]``; under ``torchrun`` for several processes."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a config (resumes automatically)",
        description="Train from a YAML recipe. Run it again with the same run directory to resume. "
        "Several processes: torchrun --nproc-per-node N -m artnet train CONFIG.",
    )
    parser.add_argument("config", help="a packaged recipe (artnet configs), e.g. kinetics/artnet_r18_d, or a YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. solver.base_lr=0.01")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..engine.config import load_config
    from ..engine.train import train

    train(load_config(args.config, args.overrides))
