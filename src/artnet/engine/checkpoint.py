"""Checkpoints: plain dicts of tensors and primitives, written atomically, read with ``weights_only``.

A checkpoint always holds enough to rebuild and use the model on its own::

    {
        "format": "artnet-checkpoint", "version": 1, "artnet_version": "0.1.0",
        "model": {"name": "artnet_r18_d", "options": {...create_model keywords...}},
        "state_dict": {...},
        "classes": ["abseiling", ...],          # class names, index = label
        "normalization": "caffe",               # see artnet.data.transforms
        "input": {"clip_len": 16, "crop_size": 112, ...},
        # training runs add: "iteration", "optimizer", "scheduler", "scaler", "rng", "config", ...
    }

Everything in it is a tensor, a number, a string, a list/tuple/dict of those, or None, so
``torch.load(..., weights_only=True)`` reads it without trusting the file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..errors import CheckpointError, ConfigError
from ..models import create_model

FORMAT = "artnet-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "artnet_version": __version__, **payload}
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read an artnet checkpoint safely (``weights_only=True``); a clear error otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an artnet checkpoint (convert Caffe weights with `artnet convert`)")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint format {payload['version']} is newer than this artnet understands ({VERSION})")
    return payload


def model_payload(model: nn.Module, classes: list[str], normalization: str, **extra: Any) -> dict[str, Any]:
    """The model part of a checkpoint for a model made by :func:`artnet.create_model`."""
    return {
        "model": {"name": model.variant, "options": dict(model.options)},
        "state_dict": model.state_dict(),
        "classes": list(classes),
        "normalization": normalization,
        **extra,
    }


def model_from_checkpoint(checkpoint: dict[str, Any] | str | Path, *, source: str | None = None) -> nn.Module:
    """Rebuild the model a checkpoint describes and load its weights, strictly."""
    if not isinstance(checkpoint, dict):
        source = source or str(checkpoint)
        checkpoint = load_checkpoint(checkpoint)
    source = source or "checkpoint"
    spec = checkpoint["model"]
    try:
        model = create_model(spec["name"], **spec.get("options", {}))
    except ConfigError as error:
        raise CheckpointError(f"{source}: {error}") from None
    load_state(model, checkpoint["state_dict"], source)
    return model


def load_state(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` with a one-line error naming the first missing, extra or misshapen tensor."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    misshapen = [k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    problems = []
    if misshapen:
        k = misshapen[0]
        problems.append(f"{k} has shape {tuple(state_dict[k].shape)}, model expects {tuple(own[k].shape)}")
    if missing:
        problems.append(f"missing {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    if unexpected:
        problems.append(f"unexpected {unexpected[0]}" + (f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""))
    if problems:
        name = getattr(model, "variant", type(model).__name__)
        raise CheckpointError(f"{source}: weights do not fit {name}: " + "; ".join(problems))
    model.load_state_dict(state_dict)
