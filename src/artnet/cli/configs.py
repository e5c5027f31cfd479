"""``artnet configs``: the packaged recipes with the paper's figures; ``artnet configs NAME``: one, resolved."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "configs",
        help="list the packaged recipes with the paper's figures, or print one resolved",
        description="The recipes that ship with artnet, one per row of the paper's tables, named like "
        "kinetics/artnet_r18_d (artnet train NAME ...). With a NAME: that recipe with its _base_ files resolved, "
        "as YAML (a starting point for a recipe of your own, which may also say `_base_: NAME`).",
    )
    parser.add_argument("name", nargs="?", help="a recipe to print in full")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    import yaml

    from ..engine.config import config_to_dict, list_recipes, load_config, recipe_path

    if args.name:
        print(f"# {recipe_path(args.name)}")
        print(yaml.safe_dump(config_to_dict(load_config(args.name)), sort_keys=False), end="")
        return
    print(recipes_table([(name, load_config(name)) for name in list_recipes()]))
    print()
    print(
        "paper: top-1 / top-5 (%); Table 2 / 4: Kinetics-400 val, 25 clips x 10 crops; Table 6: UCF101 / HMDB51,"
        " mean of the 3 splits. released: Caffe weights of that row (artnet convert)."
    )


def recipes_table(recipes) -> str:
    from ..table import format_table

    rows = []
    for name, config in recipes:
        rows.append(
            (
                name,
                config.model.name,
                config.data.format,
                config.data.clip.summary(),
                config.solver.batch_size,
                config.solver.max_iter,
                config.paper.table,
                config.paper.figures,
                config.paper.released,
            )
        )
    return format_table(("recipe", "model", "data", "clip", "batch", "iterations", "paper", "top-1 / top-5", "released"), rows)
