"""``artnet test CONFIG --checkpoint CKPT --protocol 25x10``: the paper's test protocols."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "test",
        help="evaluate a checkpoint on a dataset's test set",
        description="Video-level evaluation with the upstream protocols. For UCF101 / HMDB51, --splits 1,2,3 "
        "evaluates each split (CKPT may contain {split}) and prints their mean, as the paper reports.",
    )
    parser.add_argument("config", help="the YAML recipe describing the dataset")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument("--checkpoint", required=True, help="checkpoint file; may contain {split}")
    parser.add_argument("--protocol", default=None, help="1clip | 25x10 | 10x3 | 25x1 (default: test.protocol)")
    parser.add_argument("--splits", default=None, help="comma-separated splits, e.g. 1,2,3")
    parser.add_argument(
        "--out",
        default=None,
        help="report folder (default: test_<protocol> next to the checkpoint); an earlier report there is replaced, other files are not",
    )
    parser.add_argument("--force", action="store_true", help="write the report into --out even if it holds other files")
    parser.add_argument(
        "--acceleration", default=None, help="auto | fp32 | bf16+channels_last ... (default: the config's test.acceleration, auto)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..engine.config import load_config
    from ..engine.testing import run_test

    overrides = args.overrides + ([f"test.acceleration={args.acceleration}"] if args.acceleration else [])
    config = load_config(args.config, overrides)
    splits = [int(s) for s in args.splits.split(",")] if args.splits else None
    run_test(config, args.checkpoint, protocol=args.protocol, splits=splits, out_dir=args.out, force=args.force)
