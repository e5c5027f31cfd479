"""``artnet info``: parameters and multiply-accumulates of the variants, beside the paper's."""

from __future__ import annotations

import argparse

from .parsing import integer, parse_dims

PAPER_NOTE = (
    "MACs: multiply-accumulates of convolutions and fc for one clip (torch.utils.flop_counter, FLOPs / 2);"
    " BN, ReLU, square and pooling are not counted. Paper: Table 1 (params M, 'FLOPs' G; its counting"
    " convention is not stated) and Table 2 (Kinetics-400 val top-1 / top-5)."
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("info", help="parameters and GMACs per stage or for all variants")
    parser.add_argument("name", nargs="?", help="a model name (see --all)")
    parser.add_argument("--all", action="store_true", help="one table: every variant, both shortcut kinds")
    parser.add_argument("--input", default="16x112x112", help="clip size T x H x W (default 16x112x112)")
    parser.add_argument("--shortcut", default="3x3x3", choices=("3x3x3", "1x1x1"), help="projection shortcut kernel")
    parser.add_argument("--num-classes", type=integer(1), default=400)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..errors import ConfigError
    from ..models import list_models

    clip_size = parse_dims(args.input, "--input", ("T", "H", "W"), "16x112x112")
    if args.all:
        print(all_variants_table(list_models(), clip_size, args.num_classes))
    elif args.name:
        print(stage_table(args.name, clip_size, shortcut=args.shortcut, num_classes=args.num_classes))
    else:
        raise ConfigError("give a model name or --all")
    print()
    print(PAPER_NOTE)


def stage_table(name: str, clip_size, **options) -> str:
    from ..models import get_variant
    from ..models.complexity import STAGE_LABELS, profile
    from ..table import format_table

    variant = get_variant(name)
    costs = profile(name, clip_size, **options)
    rows = [
        (STAGE_LABELS[c.stage], " x ".join(map(str, c.output_shape)), f"{c.params / 1e6:.3f}", f"{c.macs / 1e9:.3f}") for c in costs
    ]
    rows.append(("total", "", f"{sum(c.params for c in costs) / 1e6:.2f}", f"{sum(c.macs for c in costs) / 1e9:.2f}"))
    title = f"{name}: {variant.description}\ninput 3 x {' x '.join(map(str, clip_size))}, options {options}"
    return title + "\n\n" + format_table(("stage", "output C x T x H x W", "params (M)", "GMACs"), rows)


def all_variants_table(names, clip_size, num_classes: int = 400) -> str:
    from ..models import get_variant
    from ..models.complexity import profile
    from ..table import format_table

    rows = []
    for name in names:
        variant = get_variant(name)
        paper = variant.paper
        for shortcut in ("3x3x3", "1x1x1"):
            costs = profile(name, clip_size, shortcut=shortcut, num_classes=num_classes)
            rows.append(
                (
                    name,
                    shortcut + (" (released)" if shortcut == "3x3x3" and variant.verified else ""),
                    f"{sum(c.params for c in costs) / 1e6:.2f}",
                    f"{sum(c.macs for c in costs) / 1e9:.2f}",
                    paper.get("params_m"),
                    paper.get("gflops"),
                    paper.get("top1"),
                    paper.get("top5"),
                )
            )
    headers = ("model", "shortcut", "params (M)", "GMACs", "paper params (M)", "paper GFLOPs", "paper top-1", "paper top-5")
    return f"input 3 x {' x '.join(map(str, clip_size))}, {num_classes} classes\n\n" + format_table(headers, rows)
