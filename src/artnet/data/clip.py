"""``ClipSpec``: what a model's weights expect as input, written once and carried with the weights
(and :class:`FlipSettings`: how it was mirrored, which its test views follow).

A clip is ``clip_len`` frames taken every ``frame_stride`` frames, each frame resized to
``frame_size`` in the decoder, cropped to ``crop_size`` squares and normalised by the named
``normalization``; a TSN model sees ``num_segments`` such clips per video in training. The training
data, the checkpoints, the converter, ``artnet test`` / ``predict`` and every registry variant's
``pretrained_cfg`` share this one object, so inference cannot drift from training (as torchvision's
``weights.transforms()`` and timm's ``pretrained_cfg``).

    spec = ClipSpec(clip_len=8, crop_size=56)
    spec.input_shape                      # (3, 8, 56, 56): one clip as the model takes it
    with spec.open_video("v.mp4") as reader:   # resized to frame_size, read as the spec's modality
        frames = torch.from_numpy(reader.read(indices))
    spec.normalize(spec.crop_views(frames))   # the centre crop (or the test crops), normalised
    payload["clip"] = spec.to_dict()      # plain values, for checkpoints and JSON
    ClipSpec.from_checkpoint(payload)     # also reads checkpoints written before ClipSpec existed
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import CheckpointError, InvalidValue
from . import readers, transforms
from .readers import UPSTREAM_FRAME_SIZE
from .transforms import NORMALIZATIONS, check_flip_pairs


@dataclass(frozen=True)
class ClipSpec:
    """How clips are cut from a video and normalised for a model (the released recipes by default).

    Args:
        clip_len: frames per clip (upstream ``new_length``: 16).
        frame_stride: take every ``frame_stride``-th frame (upstream: 1).
        frame_size: ``(H, W)`` every frame is resized to when decoded (upstream: 128 x 170).
        crop_size: side of the square crops the model sees (upstream: 112).
        normalization: a preset of :data:`artnet.data.transforms.NORMALIZATIONS` (upstream: ``caffe``,
            BGR 0-255 minus the per-channel means).
        num_segments: clips per video in training, averaged by the TSN consensus (1: plain clips).
    """

    clip_len: int = 16
    frame_stride: int = 1
    frame_size: tuple[int, int] = UPSTREAM_FRAME_SIZE
    crop_size: int = 112
    normalization: str = "caffe"
    num_segments: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "frame_size", tuple(self.frame_size))
        for name in ("clip_len", "frame_stride", "crop_size", "num_segments"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidValue(name, f"must be a positive integer, got {value!r}")
        if len(self.frame_size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in self.frame_size):
            raise InvalidValue("frame_size", f"must be two positive integers [H, W], got {list(self.frame_size)}")
        if self.crop_size > min(self.frame_size):
            raise InvalidValue("crop_size", f"{self.crop_size} does not fit frames of {self.frame_size[0]} x {self.frame_size[1]} (frame_size)")
        if self.normalization not in NORMALIZATIONS:
            raise InvalidValue("normalization", f"must be one of {', '.join(NORMALIZATIONS)}, got {self.normalization!r}")

    @property
    def channels(self) -> int:
        """Input channels of the model: those of the normalisation's channel order."""
        return len(NORMALIZATIONS[self.normalization].mean)

    @property
    def modality(self) -> str:
        """What the videos are read as, by the normalisation: ``"rgb"`` frames or optical ``"flow"``."""
        return NORMALIZATIONS[self.normalization].modality

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """One clip as the model takes it: ``(C, T, H, W)``."""
        return (self.channels, self.clip_len, self.crop_size, self.crop_size)

    def summary(self) -> str:
        """``16x112x112, 2 segments``: the clips the model takes, ``T x H x W`` (and the TSN segments, and
        ``flow`` for optical flow), for tables."""
        segments = f", {self.num_segments} segments" if self.num_segments > 1 else ""
        flow = " flow" if self.modality == "flow" else ""
        return f"{self.clip_len}x{self.crop_size}x{self.crop_size}{flow}{segments}"

    def describe(self) -> str:
        """The spec in a few sentences, every field and the tensor the model takes, for model cards."""
        frames = "flow (x, y)" if self.modality == "flow" else "colour"
        height, width = self.frame_size
        segments = ""
        if self.num_segments > 1:
            segments = f" A TSN model: trained on {self.num_segments} clips per video, averaging their logits."
        return (
            f"Clips of {self.clip_len} {frames} frames taken every {self.frame_stride} frame(s), each frame resized to "
            f"{height} x {width} (H x W) when decoded, cropped to {self.crop_size} x {self.crop_size}, normalised as "
            f"`{self.normalization}` (`artnet.data.transforms.NORMALIZATIONS`): a tensor of shape "
            f"`(N, {', '.join(map(str, self.input_shape))})`, (N, C, T, H, W).{segments}"
        )

    def open_video(
        self, path: str | os.PathLike, *, backend: str = "auto", frame_pattern: str | tuple[str, str] | None = None
    ) -> readers.VideoReader:
        """``path`` (a video file or a frame folder) opened as clips of this spec are read: frames resized to
        ``frame_size`` in the decoder, a folder read as the spec's :attr:`modality` (TSN's layout keeps RGB
        frames and flow side by side; see :func:`~artnet.data.readers.open_video`)."""
        size, modality = self.frame_size, self.modality
        return readers.open_video(path, backend=backend, size=size, frame_pattern=frame_pattern, modality=modality)

    def crop_views(self, frames: torch.Tensor | np.ndarray, crops: str = "center", *, flip: bool = True) -> torch.Tensor:
        """The evaluation views of decoded uint8 frames, each ``crop_size`` square, still uint8: ``"center"``,
        the centre crop of ``(..., H, W, C)`` frames; ``"3crop"`` / ``"10crop"`` (:data:`~artnet.data.transforms.TEST_CROPS`),
        clips ``(N, T, H, W, C)`` -> ``(N x views, T, crop, crop, C)``, clip-major (``flip=False``: no mirrored view)."""
        height, width = frames.shape[-3:-1]
        boxes = transforms.test_crops(height, width, self.crop_size, crops, flip=flip)
        if len(boxes) == 1:
            return transforms.apply_crop(frames, boxes[0], self.crop_size)
        return torch.stack([transforms.apply_crop(frames, box, self.crop_size) for box in boxes], dim=1).flatten(0, 1)

    def normalize(self, views: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 views ``(..., T, H, W, C)`` -> the model's float input ``(..., C, T, H, W)``, normalised as the spec names."""
        return transforms.normalize(views, self.normalization)

    def replace(self, **changes: Any) -> ClipSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, not tuples): what checkpoints, JSON and YAML hold."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "clip spec") -> ClipSpec:
        """The spec ``values`` describe; fields it lacks keep their defaults, unknown ones are an error."""
        return _from_record(cls, "clip", values, source)

    @classmethod
    def from_checkpoint(cls, payload: Mapping[str, Any], source: str = "checkpoint") -> ClipSpec:
        """The spec a checkpoint records: ``clip``, or, written before ClipSpec, ``input`` + ``normalization``."""
        if "clip" in payload:
            return cls.from_dict(payload["clip"], source)
        legacy = dict(payload.get("input") or {})
        if payload.get("normalization") is not None:
            legacy["normalization"] = payload["normalization"]
        return cls.from_dict(legacy, source)

    def differences(self, other: ClipSpec) -> list[str]:
        """``"name old -> new"`` for each field where ``other`` differs from this spec."""
        return _differences(self, other, lambda value: "x".join(map(str, value)) if isinstance(value, tuple) else str(value))


@dataclass(frozen=True)
class FlipSettings:
    """How a model was mirrored in training, which its evaluation views follow: ``flip`` (training clips
    mirrored at p = 0.5; the 10 test crops include the 5 mirrored ones) and ``flip_label_map`` (pairs of
    classes a mirror turns into each other: a mirrored clip's label, and the logits of a mirrored view put
    back in label order). Carried with the weights, as the clip spec: ``payload["flip"]``."""

    flip: bool = True
    flip_label_map: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.flip, bool):
            raise InvalidValue("flip", f"must be true or false, got {self.flip!r}")
        if isinstance(self.flip_label_map, str) or any(isinstance(pair, str) for pair in self.flip_label_map):
            raise InvalidValue("flip_label_map", f"must be pairs of class names, got {self.flip_label_map!r}")
        object.__setattr__(self, "flip_label_map", tuple(tuple(pair) for pair in self.flip_label_map))
        check_flip_pairs(self.flip_label_map)
        if self.flip_label_map and not self.flip:
            raise InvalidValue("flip_label_map", "has no use with flip: false (no clip is mirrored)")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists), as the config's ``data.flip`` / ``data.flip_label_map`` and checkpoints hold them."""
        return {"flip": self.flip, "flip_label_map": [list(pair) for pair in self.flip_label_map]}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "flip settings") -> FlipSettings:
        return _from_record(cls, "flip", values, source)

    @classmethod
    def from_checkpoint(cls, payload: Mapping[str, Any], source: str = "checkpoint") -> FlipSettings:
        """What a checkpoint records: ``flip``, or, written before it, its training config's ``data`` keys
        (converted weights without either were mirrored, as upstream's Caffe training)."""
        if "flip" in payload:
            return cls.from_dict(payload["flip"], source)
        trained = (payload.get("config") or {}).get("data") or {}
        return cls.from_dict({f.name: trained[f.name] for f in dataclasses.fields(cls) if f.name in trained}, source)

    def differences(self, other: FlipSettings) -> list[str]:
        """``"name old -> new"`` for each setting where ``other`` differs."""
        return _differences(self, other, _as_yaml)


def _from_record(cls, kind: str, values: Mapping[str, Any], source: str):
    """``cls`` from plain recorded values: missing fields keep their defaults; an unknown or bad one is a CheckpointError."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CheckpointError(f"{source}: unknown {kind} field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    try:
        return cls(**values)
    except InvalidValue as error:
        raise CheckpointError(f"{source}: {kind} {error}") from None


def _as_yaml(value: Any) -> str:
    """A flip setting as a config writes it: ``false``, ``[[Swiping Left, Swiping Right]]``."""
    if isinstance(value, bool):
        return str(value).lower()
    return "[" + ", ".join(f"[{', '.join(pair)}]" for pair in value) + "]"


def _differences(old, new, show) -> list[str]:
    return [
        f"{f.name} {show(getattr(old, f.name))} -> {show(getattr(new, f.name))}"
        for f in dataclasses.fields(old)
        if getattr(old, f.name) != getattr(new, f.name)
    ]
