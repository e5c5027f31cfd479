"""Parsing the command line's compact values: sizes like ``128x170`` and shards like ``0/4``."""

from __future__ import annotations

from ..errors import ConfigError


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
