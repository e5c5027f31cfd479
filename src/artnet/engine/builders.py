"""From a :class:`Config` to the objects a run needs: datasets, the model, its initial weights."""

from __future__ import annotations

import dataclasses

from torch import nn

from ..errors import CheckpointError, ConfigError
from ..models import create_model
from .checkpoint import load_checkpoint, load_state
from .config import Config, DataConfig


def build_model(config: Config, num_classes: int) -> nn.Module:
    options = {k: v for k, v in dataclasses.asdict(config.model).items() if k != "name" and v is not None}
    options["num_classes"] = config.model.num_classes or num_classes
    if options["num_classes"] != num_classes:
        raise ConfigError(f"model.num_classes={options['num_classes']} but the dataset has {num_classes} classes")
    return create_model(config.model.name, **options)


def input_geometry(config: Config) -> dict:
    """How clips were cut for this model: stored in checkpoints so ``predict`` cuts them alike."""
    data = config.data
    return {"clip_len": data.clip_len, "frame_stride": data.frame_stride, "frame_size": list(data.frame_size), "crop_size": data.crop_size}


def data_as_trained(data: DataConfig, payload: dict) -> tuple[DataConfig, list[str]]:
    """``data`` with the checkpoint's normalisation and clip geometry, and a note per value changed.

    A model is tested on clips cut and normalised as it was trained: a config written for another
    clip size would otherwise give a plausible-looking but meaningless accuracy.
    """
    recorded = {**payload.get("input", {}), "normalization": payload.get("normalization")}
    changes, notes = {}, []
    for key, value in recorded.items():
        if value is None or not hasattr(data, key):
            continue
        current = getattr(data, key)
        value = list(value) if isinstance(current, list) else value
        if value != current:
            changes[key] = value
            notes.append(f"data.{key} {current} -> {value}")
    return dataclasses.replace(data, **changes), notes


def load_init_weights(model: nn.Module, path: str) -> list[str]:
    """Start from another run's weights (fine-tuning); a classifier of another shape is re-created.

    Returns what was done, for the run's log. Anything else that does not fit is an error.
    """
    checkpoint = load_checkpoint(path)
    state = dict(checkpoint["state_dict"])
    own = model.state_dict()
    notes = []
    source = checkpoint.get("model", {}).get("name", "?")
    if source != getattr(model, "variant", source):
        raise CheckpointError(f"{path}: weights of {source}, but the run trains {model.variant}")
    head = [k for k in ("fc.weight", "fc.bias") if k in state and k in own and state[k].shape != own[k].shape]
    if head:
        old, new = state["fc.weight"].shape[0], own["fc.weight"].shape[0]
        for key in ("fc.weight", "fc.bias"):
            state[key] = own[key]
        notes.append(f"init: classifier fc re-created ({old} -> {new} classes), the rest from {path}")
    else:
        notes.append(f"init: all weights from {path}")
    load_state(model, state, path)
    return notes


def set_train_mode(model: nn.Module, bn: str) -> None:
    """``model.train()``, then freeze BN as asked: ``frozen`` (all) or ``partial`` (all but the first).

    A frozen BN uses its running statistics and does not learn its scale and shift.
    """
    if bn not in ("train", "frozen", "partial"):
        raise ConfigError(f"train.bn must be 'train', 'frozen' or 'partial', got {bn!r}")
    model.train()
    if bn == "train":
        return
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms[1:] if bn == "partial" else norms:
        norm.eval()
        for param in norm.parameters():
            param.requires_grad_(False)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP / torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def build_annotations(config: Config, mode: str):
    """The annotation records of the training (``mode="train"``) or test set."""
    from ..data import load_annotations

    data = config.data
    is_train = mode == "train"
    annotation_file = data.annotations if is_train or not data.test_annotations else data.test_annotations
    subset = (data.train_subset if is_train else data.test_subset) or None
    options: dict = {"max_missing_ratio": data.max_missing_ratio}
    if data.format in ("ucf101", "hmdb51"):
        options.update(splits_dir=annotation_file, split=data.split, subset=subset)
        if data.format == "hmdb51":
            options["class_order"] = data.class_order
    elif data.format == "kinetics":
        options.update(csv_file=annotation_file, subset=subset)
    elif data.format == "list":
        options["list_file"] = annotation_file
    elif data.format == "folders":  # root/<class>/<video>: annotations names the test set's root
        if not is_train and data.test_annotations:
            return load_annotations("folders", root=data.test_annotations, classes=data.classes or None)
    else:
        raise ConfigError(f"data.format must be ucf101, hmdb51, kinetics, list or folders, got {data.format!r}")
    if data.classes and data.format in ("kinetics", "list", "folders"):
        options["classes"] = data.classes
    return load_annotations(data.format, root=data.root or None, **options)


def build_dataset(config: Config, mode: str, protocol=None):
    """The dataset of ``mode`` (``train``, ``val``, ``test``) as the config describes it."""
    from ..data import VideoDataset

    data = config.data
    options = dict(
        mode=mode,
        clip_len=data.clip_len,
        frame_stride=data.frame_stride,
        num_segments=data.num_segments,
        frame_size=tuple(data.frame_size),
        crop_size=data.crop_size,
        normalization=data.normalization,
        backend=data.backend,
        frame_pattern=data.frame_pattern or None,
        max_bad_ratio=data.max_bad_ratio,
        seed=config.train.seed,
    )
    if protocol is not None and mode == "test":
        options.update(num_clips=protocol.num_clips, crops=protocol.crops)
    return VideoDataset(build_annotations(config, mode), **options)
