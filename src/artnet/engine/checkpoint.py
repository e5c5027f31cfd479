"""Checkpoints: plain dicts of tensors and primitives, written atomically, read with ``weights_only``.

A checkpoint always holds enough to rebuild and use the model on its own::

    {
        "format": "artnet-checkpoint", "version": 2, "artnet_version": "0.1.0",
        "model": {"name": "artnet_r18_d", "options": {...create_model keywords...}},
        "state_dict": {...},
        "classes": ["abseiling", ...],          # class names, index = label
        "clip": {"clip_len": 16, "crop_size": 112, "normalization": "caffe", ...},   # artnet.data.ClipSpec
        "flip": {"flip": True, "flip_label_map": []},   # artnet.data.clip.FlipSettings: how it was mirrored
        # training runs add: "iteration", "optimizer", "scaler", "rng", "data_position", "config", ...
    }

Everything in it is a tensor, a number, a string, a list/tuple/dict of those, or None, so
``torch.load(..., weights_only=True)`` reads it without trusting the file. Version 1 checkpoints
(before :class:`~artnet.data.ClipSpec`) kept the clip geometry under ``input`` and the normalisation
beside it; :func:`load_checkpoint` reads them into the version 2 layout. Checkpoints written before ``flip``
kept the flip settings in their training config only (converted weights nowhere: mirrored, as upstream);
:func:`load_checkpoint` reads them into ``flip``.

A training run keeps its checkpoints in its run directory (:class:`RunCheckpoints`): an iteration
checkpoint every ``checkpoint_interval`` iterations under ``checkpoints/`` (the newest few), with the
whole training state and the RNG states of every process, so a resumed run repeats exactly what the
interrupted one would have done; ``best.pt`` and ``final.pt`` beside them hold the weights.

A *model folder* (the Hugging Face layout: ``config.json`` and ``model.safetensors``, written by
``artnet export --format hf`` and ``artnet convert --out FOLDER/``) is read wherever a checkpoint is:
``config.json`` holds the model part of a checkpoint but its tensors, ``model.safetensors`` the
``state_dict``; reading it runs no pickle at all.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import random
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..data.clip import ClipSpec, FlipSettings
from ..errors import CheckpointError, ConfigError
from ..models import create_model
from ..outputs import atomic_write

FORMAT = "artnet-checkpoint"
VERSION = 2
FOLDER_FORMAT = "artnet-model"  # config.json of a model folder
FOLDER_VERSION = 1
FOLDER_CONFIG = "config.json"
FOLDER_WEIGHTS = "model.safetensors"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically (:func:`artnet.outputs.atomic_write`): a failed write leaves the file
    that was there before intact, and an :class:`~artnet.errors.OutputError`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "artnet_version": __version__, **payload}
    with atomic_write(path) as file:
        torch.save(payload, file)
    return path


def checkpoint_file(path: str | Path) -> Path:
    """``path``, if a checkpoint file or a model folder is there; a CheckpointError otherwise."""
    path = Path(path)
    if not path.is_file() and not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint file or model folder")
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read an artnet checkpoint safely (``weights_only=True``), or a model folder, in the current
    checkpoint layout; a clear error otherwise."""
    path = checkpoint_file(path)
    if path.is_dir():
        return read_model_folder(path, map_location)
    kind = _file_kind(path)
    if kind not in ("zip", "legacy"):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({kind})")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # never PyTorch's advice to load it with weights_only=False: what an attacker wants
        raise CheckpointError(f"{path}: {_unreadable(error)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an artnet checkpoint (convert Caffe weights with `artnet convert`)")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint format {payload['version']} is newer than this artnet understands ({VERSION})")
    if "clip" not in payload:  # version 1
        payload["clip"] = ClipSpec.from_checkpoint(payload, str(path)).to_dict()
        payload.pop("input", None)
        payload.pop("normalization", None)
    return _with_flip(payload, path)


def _with_flip(payload: dict[str, Any], source: Path) -> dict[str, Any]:
    """``payload`` with its ``flip`` entry, read from where checkpoints written before it kept the settings."""
    payload["flip"] = FlipSettings.from_checkpoint(payload, str(source)).to_dict()
    return payload


_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # torch.save before 1.6: a pickled magic number


def _file_kind(path: Path) -> str:
    """``zip`` or ``legacy`` (the two forms of ``torch.save``), or what else the file is."""
    with open(path, "rb") as file:
        head = file.read(len(_LEGACY_MAGIC))
    if not head:
        return "an empty file"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            torch_layout = any(name.endswith("data.pkl") for name in archive.namelist())
        return "zip" if torch_layout else "a zip archive of other files"
    if head.startswith(b"PK\x03\x04"):
        return "an incomplete zip archive: a copy or download cut short?"
    if head == _LEGACY_MAGIC:
        return "legacy"
    if head.startswith(b"\x80"):
        return "a Python pickle, which may run code when read"
    return "neither the zip archive nor the pickle torch.save writes"


def _unreadable(error: Exception) -> str:
    """What a torch.load of a checkpoint-shaped file found."""
    text = str(error)
    if isinstance(error, pickle.UnpicklingError) and "Weights only load failed" in text:
        named = re.search(r"GLOBAL ([\w.]+)", text)
        return "refused: it contains code, not only tensors" + (f" (it asks for {named.group(1)})" if named else "")
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    return f"a damaged PyTorch checkpoint ({first_line})"


def read_model_folder(folder: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A model folder as a checkpoint payload: ``config.json``'s entries and the ``state_dict`` from
    ``model.safetensors`` (JSON and safetensors: no pickle)."""
    folder = Path(folder)
    config_path, weights_path = folder / FOLDER_CONFIG, folder / FOLDER_WEIGHTS
    if not config_path.is_file():
        raise CheckpointError(f"{folder}: not a model folder (no {FOLDER_CONFIG})")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{config_path}: not readable JSON ({error})") from None
    if not isinstance(config, dict) or config.get("format") != FOLDER_FORMAT:
        raise CheckpointError(f"{config_path}: not the config of an artnet model folder (format {FOLDER_FORMAT!r})")
    if config.get("version", 0) > FOLDER_VERSION:
        raise CheckpointError(
            f"{config_path}: model folder format {config['version']} is newer than this artnet understands ({FOLDER_VERSION})"
        )
    for key in ("model", "classes", "clip"):
        if key not in config:
            raise CheckpointError(f"{config_path}: no {key!r} entry")
    if not weights_path.is_file():
        raise CheckpointError(f"{folder}: no {FOLDER_WEIGHTS} beside {FOLDER_CONFIG}")
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError(f"{folder}: reading a model folder needs safetensors: pip install 'artnet[hub]'") from None
    try:
        state_dict = load_file(weights_path, device=str(map_location))
    except (OSError, SafetensorError) as error:
        raise CheckpointError(f"{weights_path}: not readable safetensors ({error})") from None
    payload = {key: value for key, value in config.items() if key not in ("format", "version")}
    return _with_flip({"format": FORMAT, "version": VERSION, **payload, "state_dict": state_dict}, config_path)


def folder_config(payload: dict[str, Any]) -> dict[str, Any]:
    """What a model folder's ``config.json`` holds of a checkpoint: its model part but the tensors
    (the variant, its options, the class names, the input contract, provenance), none of a training state."""
    kept = ("artnet_version", "model", "classes", "clip", "flip", "converted_from", "paper", "evaluations", "trained")
    return {"format": FOLDER_FORMAT, "version": FOLDER_VERSION, **{key: payload[key] for key in kept if key in payload}}


def clip_spec(checkpoint: dict[str, Any], source: str = "checkpoint") -> ClipSpec:
    """The input contract a checkpoint (as :func:`load_checkpoint` returns it) records."""
    return ClipSpec.from_dict(checkpoint["clip"], source)


def flip_settings(checkpoint: dict[str, Any], source: str = "checkpoint") -> FlipSettings:
    """How the model a checkpoint (as :func:`load_checkpoint` returns it) holds was mirrored in training."""
    return FlipSettings.from_dict(checkpoint["flip"], source)


def model_payload(
    model: nn.Module, classes: list[str], clip: ClipSpec, flip: FlipSettings = FlipSettings(), **extra: Any
) -> dict[str, Any]:
    """The model part of a checkpoint for a model made by :func:`artnet.create_model` (``flip``: how it was
    mirrored in training; by default as upstream's, which converted weights were)."""
    return {
        "model": {"name": model.variant, "options": dict(model.options)},
        "state_dict": model.state_dict(),
        "classes": list(classes),
        "clip": clip.to_dict(),
        "flip": flip.to_dict(),
        **extra,
    }


def pretrained_model(name: str, source: str | Path, **options: Any) -> nn.Module:
    """``create_model(name, pretrained=source, **options)``: the model a checkpoint file, a model folder or a
    Hugging Face Hub repository holds, with its class names and input contract in ``model.pretrained_cfg``.

    ``options`` override the checkpoint's own (``dropout=0.5``); a ``num_classes`` other than the
    weights' gets a new classifier, as fine-tuning does (``train.init``). The variant must be the one
    the weights belong to.
    """
    path = resolve_pretrained(source)
    checkpoint = load_checkpoint(path)
    held = checkpoint["model"]["name"]
    if held != name:
        raise CheckpointError(f"{path}: weights of {held}, not {name}")
    try:
        model = create_model(name, **{**checkpoint["model"].get("options", {}), **options})
    except ConfigError as error:
        raise CheckpointError(f"{path}: {error}") from None
    replaced = load_backbone(model, checkpoint["state_dict"], str(path))
    model.pretrained_cfg = dataclasses.replace(
        model.pretrained_cfg,
        clip=clip_spec(checkpoint, str(path)),
        num_classes=model.get_submodule(model.pretrained_cfg.classifier).out_features,
        classes=() if replaced else tuple(checkpoint["classes"]),
    )
    return model


_HUB_REPO = re.compile(r"[\w.-]+/[\w.-]+")


def resolve_pretrained(source: str | Path) -> Path:
    """A checkpoint file or model folder on disk, or a Hub repository (``owner/name``) downloaded to the
    local Hugging Face cache (found there offline once downloaded)."""
    path = Path(source)
    if path.exists():
        return path
    if isinstance(source, str) and _HUB_REPO.fullmatch(source) and path.suffix not in (".pt", ".pth"):
        from ..interop.hub import download

        return download(source)
    raise CheckpointError(f"{source}: no such checkpoint file or model folder")


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


@dataclass
class LoadedModel:
    """A checkpoint's model rebuilt in fp32 and eval mode on a device, with what its weights expect: what
    :func:`load_model` gives the Predictor and the Explainer, which can share one (``artnet serve``)."""

    source: str  # the checkpoint file or model folder read (for a Hub repository id: its download in the local cache)
    payload: dict[str, Any]  # as load_checkpoint returns it
    clip: ClipSpec
    classes: list[str]
    model: nn.Module
    device: torch.device


def load_model(source: str | Path, device: torch.device) -> LoadedModel:
    """The model of a checkpoint file, a model folder or a Hugging Face Hub repository id, on ``device``."""
    path = str(resolve_pretrained(source))
    payload = load_checkpoint(path)
    model = model_from_checkpoint(payload, source=path).to(device).eval()
    return LoadedModel(path, payload, clip_spec(payload, path), list(payload["classes"]), model, device)


def describe_model(checkpoint: dict[str, Any]) -> str:
    """``artnet_r18_d (width_mult=0.125, num_classes=12)``: which model a checkpoint holds, for logs."""
    spec = checkpoint["model"]
    options = ", ".join(f"{key}={value}" for key, value in sorted(spec.get("options", {}).items()))
    return f"{spec['name']} ({options})" if options else spec["name"]


def load_backbone(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> tuple[int, int] | None:
    """Load weights into ``model`` (strictly, see :func:`load_state`), but for a classifier made for
    another number of classes, which keeps the model's own fresh one (fine-tuning). Returns the
    ``(weights', model's)`` numbers of classes when it did, else None."""
    state = dict(state_dict)
    own = model.state_dict()
    classifier = model.pretrained_cfg.classifier
    head = [key for key in own if key.startswith(f"{classifier}.")]
    replaced = None
    if any(key in state and state[key].shape != own[key].shape for key in head):
        replaced = (state[f"{classifier}.weight"].shape[0], own[f"{classifier}.weight"].shape[0])
        state.update({key: own[key] for key in head})
    load_state(model, state, source)
    return replaced


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


# ----------------------------------------------------------------------------------------------
# The checkpoints of a training run


@dataclass
class TrainingState:
    """Where a run stands besides its weights and optimizer: what a resumed run continues from."""

    iteration: int = 0  # iterations done
    epoch: int = 0  # of the sample stream
    consumed: int = 0  # samples this process consumed in that epoch
    best_top1: float = -1.0  # of the in-training validations so far
    elapsed_seconds: float = 0.0  # training time over the run's restarts


@dataclass(frozen=True)
class Trainables:
    """What a training step changes, saved and restored together."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler


_ITERATION_CHECKPOINT = re.compile(r"iter_(\d+)\.pt$")


class RunCheckpoints:
    """A run directory's checkpoints: ``checkpoints/iter_*.pt`` to resume from, ``best.pt``, ``final.pt``."""

    def __init__(self, run_dir: str | Path, keep_last: int = 3):
        self.run_dir = Path(run_dir)
        self.keep_last = keep_last

    def iterations(self) -> list[Path]:
        """The iteration checkpoints, oldest first."""
        found = [(int(m.group(1)), p) for p in (self.run_dir / "checkpoints").glob("iter_*.pt") if (m := _ITERATION_CHECKPOINT.search(p.name))]
        return [p for _, p in sorted(found)]

    @staticmethod
    def iteration_of(path: Path) -> int:
        """The iteration an iteration checkpoint's name says it holds."""
        return int(_ITERATION_CHECKPOINT.search(path.name).group(1))

    def resume_point(self, resume: str) -> Path | None:
        """The checkpoint a run resumes from: ``auto`` (the newest of this run, if any), ``never``, or a path."""
        if resume == "never":
            return None
        if resume == "auto":
            found = self.iterations()
            return found[-1] if found else None
        path = Path(resume)
        if not path.is_file():
            raise ConfigError(f"train.resume: {path}: no such checkpoint")
        return path

    def save_weights(self, name: str, payload: dict[str, Any]) -> Path:
        """``best.pt`` / ``final.pt``: a model payload (see :func:`model_payload`)."""
        return save_checkpoint(self.run_dir / name, payload)

    def save_state(self, trainables: Trainables, state: TrainingState, payload: dict[str, Any], rng: list[dict]) -> Path:
        """An iteration checkpoint with everything a resumed run needs; the oldest beyond ``keep_last`` go."""
        path = save_checkpoint(
            self.run_dir / "checkpoints" / f"iter_{state.iteration:07d}.pt",
            {
                **payload,
                **asdict(state),
                "optimizer": trainables.optimizer.state_dict(),
                "scaler": trainables.scaler.state_dict(),
                "rng": rng,
                "world_size": len(rng),
            },
        )
        for old in self.iterations()[: -self.keep_last or None]:
            old.unlink(missing_ok=True)
        return path

    def restore(self, path: Path, trainables: Trainables, rank: int, world_size: int, checkpoint: dict[str, Any] | None = None) -> TrainingState:
        """Load a training state into ``trainables`` (and this process's RNGs); returns where it stood.
        ``checkpoint``: ``path`` as :func:`load_checkpoint` read it, where the caller has it already."""
        checkpoint = load_checkpoint(path) if checkpoint is None else checkpoint
        if "optimizer" not in checkpoint:
            raise CheckpointError(f"{path}: holds weights only, not a training state to resume")
        load_state(trainables.model, checkpoint["state_dict"], str(path))
        trainables.optimizer.load_state_dict(checkpoint["optimizer"])
        trainables.scaler.load_state_dict(checkpoint["scaler"])
        if checkpoint.get("world_size", 1) == world_size:
            restore_rng(checkpoint["rng"][rank])
        if "data_position" in checkpoint:  # version 1 kept the sample position apart
            checkpoint.update(checkpoint["data_position"])
        fields = TrainingState.__dataclass_fields__
        return TrainingState(**{key: checkpoint[key] for key in fields if key in checkpoint})

    def forget_after(self, iteration: int) -> None:
        """A resumed run repeats the iterations after its checkpoint: drop what was logged of them
        (so curves show each iteration once) and the half-written checkpoint of a killed run."""
        log = self.run_dir / "log.jsonl"
        if log.is_file():
            kept = [line for line in log.read_text().splitlines() if _logged_before(line, iteration)]
            with atomic_write(log, "w") as file:  # a run killed now keeps its log
                file.write("".join(line + "\n" for line in kept))
        for stale in (self.run_dir / "checkpoints").glob(".*.tmp"):
            stale.unlink(missing_ok=True)


def _logged_before(line: str, iteration: int) -> bool:
    """A log line of an iteration up to ``iteration``; a line a full disk or a kill cut short is dropped."""
    try:
        return json.loads(line)["iteration"] <= iteration
    except (ValueError, KeyError, TypeError):
        return False


# ----------------------------------------------------------------------------------------------
# Random number generators


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False


def capture_rng(device: torch.device) -> dict[str, Any]:
    """This process's RNG states (torch, CUDA, NumPy, Python) as checkpoint-safe values."""
    _, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "rest": [int(position), int(has_gauss), float(cached)]},
        "python": [version, list(internal), gauss],
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", np.asarray(state["numpy"]["keys"], dtype=np.uint32), *state["numpy"]["rest"]))
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
