"""From a :class:`Config` to the objects a run needs: datasets, the model, its initial weights."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from torch import nn

from ..errors import CheckpointError, ConfigError, InvalidValue
from ..models import create_model
from .checkpoint import clip_spec, flip_settings, load_backbone, load_checkpoint

if TYPE_CHECKING:
    from .config import Config, DataConfig

BN_MODES = ("train", "frozen", "partial")


def build_model(config: Config, num_classes: int) -> nn.Module:
    """The model the config names, for ``num_classes`` classes and the clips of ``data.clip`` (its input
    channels: 3 for RGB, 2 for flow)."""
    options = {k: v for k, v in dataclasses.asdict(config.model).items() if k != "name" and v is not None}
    options["num_classes"] = config.model.num_classes or num_classes
    options["in_channels"] = config.data.clip.channels
    if options["num_classes"] != num_classes:
        raise ConfigError(f"model.num_classes={options['num_classes']} but the dataset has {num_classes} classes")
    return create_model(config.model.name, **options)


def data_as_trained(data: DataConfig, checkpoint: dict) -> tuple[DataConfig, list[str]]:
    """``data`` with the checkpoint's clip spec and flip settings, and a note per value changed.

    A model is tested on clips cut, normalised and mirrored as it was trained: a config written for
    another clip size, or one that mirrors views of a model trained without mirrors, would otherwise
    give a plausible-looking but meaningless accuracy.
    """
    clip, flip = clip_spec(checkpoint), flip_settings(checkpoint)
    notes = [f"data.clip.{note}" for note in data.clip.differences(clip)]
    notes += [f"data.{note}" for note in data.flip_settings.differences(flip)]
    return dataclasses.replace(data, clip=clip, **flip.to_dict()), notes


def load_init_weights(model: nn.Module, path: str) -> list[str]:
    """Start from another run's weights (fine-tuning); a classifier of another shape is re-created.

    Returns what was done, for the run's log. Anything else that does not fit is an error.
    """
    checkpoint = load_checkpoint(path)
    source = checkpoint.get("model", {}).get("name", "?")
    if source != getattr(model, "variant", source):
        raise CheckpointError(f"{path}: weights of {source}, but the run trains {model.variant}")
    trained, reads = clip_spec(checkpoint, str(path)), _input_channels(model)
    if trained.channels != reads:
        weights_for = f"weights for {trained.channels}-channel clips (normalization {trained.normalization})"
        raise CheckpointError(f"{path}: {weights_for}, but the run's model reads {reads}-channel clips")
    replaced = load_backbone(model, checkpoint["state_dict"], path)
    if replaced:
        old, new = replaced
        return [f"init: classifier {model.pretrained_cfg.classifier} re-created ({old} -> {new} classes), the rest from {path}"]
    return [f"init: all weights from {path}"]


def _input_channels(model: nn.Module) -> int:
    return model.get_submodule(model.pretrained_cfg.first_conv[0]).in_channels


def set_train_mode(model: nn.Module, bn: str) -> None:
    """``model.train()``, then freeze BN as asked: ``frozen`` (all) or ``partial`` (all but the first).

    A frozen BN uses its running statistics and does not learn its scale and shift.
    """
    if bn not in BN_MODES:
        raise ConfigError(f"train.bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
    model.train()
    if bn == "train":
        return
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms[1:] if bn == "partial" else norms:
        norm.eval()
        for param in norm.parameters():
            param.requires_grad_(False)


def build_annotations(config: Config, mode: str):
    """The annotation records of the training (``mode="train"``) or test set."""
    from ..data import load_annotations
    from ..data.annotations import annotation_format

    data = config.data
    is_train = mode == "train"
    root, source = data.root or None, data.annotations or None
    if not is_train:
        root, source = annotation_format(data.format).test_set(root, source, data.test_annotations or None)
    return load_annotations(
        data.format,
        root=root,
        annotations=source,
        split=data.split,
        subset=(data.train_subset if is_train else data.test_subset) or None,
        classes=data.classes or None,
        class_order=data.class_order,
        max_missing_ratio=data.max_missing_ratio,
    )


def build_dataset(config: Config, mode: str, protocol=None):
    """The dataset of ``mode`` (``train``, ``val``, ``test``) as the config describes it."""
    from ..data import VideoDataset

    data = config.data
    views = {"num_clips": protocol.num_clips, "crops": protocol.crops} if protocol is not None and mode == "test" else {}
    annotations = build_annotations(config, mode)
    try:
        return VideoDataset(
            annotations,
            clip=data.clip,
            mode=mode,
            backend=data.backend,
            frame_pattern=(tuple(data.frame_pattern) if isinstance(data.frame_pattern, list) else data.frame_pattern) or None,
            flip=data.flip,
            flip_label_map=data.flip_label_map,
            max_bad_ratio=data.max_bad_ratio,
            seed=config.train.seed,
            **views,
        )
    except InvalidValue as error:  # a flip label map naming a class the annotations do not have
        raise ConfigError(f"'data.{error.field}' {error.problem} ({annotations.source})") from None
