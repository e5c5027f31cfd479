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

COMMAND_MODULES = (
    "info",
    "configs",
    "demo",
    "synthetic",
    "prepare",
    "check_data",
    "train",
    "test",
    "fuse",
    "predict",
    "extract",
    "explain",
    "serve",
    "convert",
    "export",
)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's, with its errors as artnet's others: one line, ``artnet <command>: error: ...``, exit 2
    (without the usage above it, which ``--help`` shows)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = ArgumentParser(prog="artnet", description="Appearance-and-Relation Networks for video classification.")
    parser.add_argument("--version", action="version", version=f"artnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{module}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..engine.threads import configure_threads

    threads = None
    if not {"-h", "--help", "--version"} & set(sys.argv[1:] if argv is None else argv):  # those run nothing
        try:
            threads = configure_threads()  # first: OpenMP reads its wait policy when torch loads, and the parser loads torch
        except ArtnetError as error:
            print(f"artnet: error: {error}", file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if threads and threads.changed:
        print(f"artnet {args.command}: {threads.message}", file=sys.stderr)
    try:
        return int(args.run(args) or 0)
    except (ArtnetError, OSError, RuntimeError) as error:
        message = user_error(error)
        if message is None or os.environ.get("ARTNET_DEBUG"):
            raise
        print(f"artnet {args.command}: error: {one_line(message)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"artnet {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        _leave_process_group()


def user_error(error: Exception) -> str | None:
    """The message of an error the user can act on; None for a bug (which keeps its traceback).

    Besides artnet's own errors: the operating system's (a missing file, no permission, a full disk),
    and the faults PyTorch reports as a bare RuntimeError (a killed DataLoader worker, a lost process).
    """
    if isinstance(error, ArtnetError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    if isinstance(error, RuntimeError) and "torch" in sys.modules:
        from ..engine.faults import describe_fault

        return describe_fault(error)
    return None


def _leave_process_group() -> None:
    """A run that joined a torch.distributed process group leaves it when the command ends."""
    if "torch" in sys.modules:  # commands that never imported torch never joined one
        from ..engine.distributed import shutdown_distributed

        shutdown_distributed()


def one_line(message: str) -> str:
    """The error itself: DataLoader re-raises a worker's error with its traceback in the message."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if len(lines) > 1 and any(line.startswith("Original Traceback") for line in lines):
        last = lines[-1]
        return last.split(": ", 1)[1] if last.split(": ", 1)[0].endswith("Error") else last
    return " ".join(lines)


if __name__ == "__main__":
    sys.exit(main())
