"""The command line's shared options (how a model runs, how videos are read), the ranges of its numbers
(:func:`integer`, :func:`number`) and compact values: sizes like ``128x170``, shards like ``0/4``."""

from __future__ import annotations

import argparse
import math
from typing import Callable

from ..errors import ConfigError


def add_model_options(parser: argparse.ArgumentParser, acceleration: str | None = "auto") -> None:
    """``--device`` and, unless ``acceleration`` is False, ``--acceleration`` (default ``acceleration``)."""
    parser.add_argument("--device", default="auto", help="auto (a GPU when there is one) | cpu | cuda")
    if acceleration is not False:
        parser.add_argument(
            "--acceleration",
            default=acceleration,
            help=f"auto: the fastest path on this machine within 1e-2 of fp32 (speeds timed once per machine and model, "
            f"cached) | fp32 | bf16+channels_last ... (default {acceleration})",
        )


def add_video_options(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--frame-pattern``: how the videos are read."""
    parser.add_argument("--backend", default="auto", help="video decoder: auto | pyav | decord | frames (default auto)")
    parser.add_argument("--frame-pattern", default=None, help='frame folders: file names, e.g. "image_{:05d}.jpg"')


def parse_dims(text: str, option: str, names: tuple[str, ...], example: str) -> tuple[int, ...]:
    """``"128x170"`` -> ``(128, 170)``: as many positive integers as ``names`` (e.g. ``("H", "W")``)."""
    try:
        values = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        values = ()
    if len(values) != len(names) or min(values) < 1:
        raise ConfigError(f"{option} must be {' x '.join(names)} in positive integers, e.g. {example}, not {text!r}")
    return values


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must be i/n, e.g. 0/4, not {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard must be i/n with 0 <= i < n, not {text!r}")
    return index, count


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[minimum, maximum]`` (either end open when None). Anything else
    is the command's one-line error (exit 2), before any work: ``argument --topk: must be a positive
    integer, not '0'``."""
    if minimum == 1 and maximum is None:
        expected = "a positive integer"
    elif maximum is None:
        expected = f"an integer of at least {minimum}" if minimum else "an integer of 0 or more"
    else:
        expected = f"an integer from {minimum} to {maximum}"
    return _ranged("integer", int, lambda value: _within(value, minimum, maximum), expected)


def number(minimum: float | None = None, maximum: float | None = None, *, positive: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in ``[minimum, maximum]``, above 0 if ``positive``; anything
    else is the command's one-line error (exit 2), as :func:`integer`."""
    if positive:
        expected = "a positive number"
    elif maximum is None:
        expected = f"a number of at least {minimum:g}" if minimum else "a number of 0 or more"
    else:
        expected = f"a number from {minimum:g} to {maximum:g}"

    def accepts(value: float) -> bool:
        return math.isfinite(value) and (value > 0 or not positive) and _within(value, minimum, maximum)

    return _ranged("number", float, accepts, expected)


def _within(value: float, minimum: float | None, maximum: float | None) -> bool:
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def _ranged(name: str, convert: Callable[[str], float], accepts: Callable[[float], bool], expected: str) -> Callable[[str], float]:
    """The argparse ``type`` of :func:`integer` and :func:`number`: ``convert``, then ``accepts``."""

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accepts(value):
            raise argparse.ArgumentTypeError(f"must be {expected}, not {text!r}")
        return value

    parse.__name__ = name  # argparse names the type in some messages
    return parse
