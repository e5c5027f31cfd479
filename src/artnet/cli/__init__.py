"""``artnet <command>``: a thin shell; every command calls one library function.

Each command lives in its own module ``artnet.cli.<module>`` with ``add_parser(subparsers)``
registering the command and setting ``run`` (a function of the parsed arguments).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import ArtnetError

COMMAND_MODULES = ("info", "prepare", "check_data")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="artnet", description="Appearance-and-Relation Networks for video classification.")
    parser.add_argument("--version", action="version", version=f"artnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{module}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ArtnetError, FileNotFoundError, NotADirectoryError, PermissionError) as error:
        if os.environ.get("ARTNET_DEBUG"):
            raise
        message = str(error) if isinstance(error, ArtnetError) else f"{error.strerror}: {error.filename}"
        print(f"artnet {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"artnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
