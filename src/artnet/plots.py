"""Plots are an optional extra (``pip install 'artnet[plots]'``): matplotlib, headless, if installed."""

from __future__ import annotations

import os
from types import ModuleType
from typing import IO

from .outputs import atomic_write


def pyplot() -> ModuleType | None:
    """``matplotlib.pyplot`` on the non-interactive Agg backend; None when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike | IO[bytes], dpi: int = 100) -> None:
    """``fig`` as a PNG: to a binary file, or to a path, written whole or not at all (:func:`~artnet.outputs.atomic_write`)."""
    if isinstance(path, (str, os.PathLike)):
        with atomic_write(path) as file:
            fig.savefig(file, dpi=dpi, format="png")
    else:
        fig.savefig(path, dpi=dpi, format="png")
