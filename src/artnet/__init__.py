"""artnet: Appearance-and-Relation Networks for video classification, on current PyTorch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models"]

if TYPE_CHECKING:
    from .models import create_model, list_models


def __getattr__(name: str) -> Any:
    # Loaded on first use: `import artnet` (and the CLI's start) must not import torch, so that
    # the CLI can set OpenMP's wait policy before torch loads it (artnet.engine.threads).
    if name in ("create_model", "list_models"):
        return getattr(importlib.import_module(".models", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
