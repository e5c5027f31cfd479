"""``artnet explain``: where a prediction comes from, per SMART branch, over space and time.

Grad-CAM (Selvaraju et al. 2017, captum's ``LayerGradCam``) of the class score with respect to
the two branch outputs of one SMART block, the tensors its ``1x1x1`` reduction fuses: the
appearance branch ``a = ReLU(BN(conv_1xkxk(x)))`` and the relation branch
``z = ReLU(BN(pool(square(BN(conv_txkxk(x))))))``. Each map is ``ReLU(sum_c w_c A_c)``, the
activations ``A`` weighted by their gradient averaged over time and space, at the branch's own
resolution ``(T', H', W')``. Both are taken at the reduction's *input*, after the ReLU that
precedes it, so the activations are what the block really fuses (the BN outputs would count the
negative responses the ReLU removes). A block without SMART gets one map: its output's.

Blocks are named as in the paper (``conv1``; ``conv{stage}_{block}``, stage 2-5, block from 1:
``conv4_2`` is the second basic block of conv4_x), or as the released prototxts name them
(``res4b``); a stage (``conv5_x``) is its last block. In ARTNet-ResNet18 (d), a block's SMART is
its second convolution. By default: the deepest block holding a SMART (the last one otherwise), as
Grad-CAM usually takes the last convolutional features; its maps are coarse in time (conv4_x sees a
16-frame clip as 2 steps), and on small models an early block's show more (docs/visualise.md).

    explanation = explain("video.mp4", "final.pt", block="conv3_2")
    explanation.maps["relation"]              # (T', H', W') raw Grad-CAM
    explanation.upsampled("relation")         # (T, H, W) on the clip the model saw, max 1
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from string import ascii_lowercase

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data import sampling
from ..data.clip import ClipSpec
from ..data.windows import VideoWindows
from ..errors import ConfigError, DataError
from ..models.registry import _suggest
from ..models.smart import SMART
from .checkpoint import LoadedModel, load_model
from .distributed import init_distributed

BRANCHES = ("appearance", "relation")
_CAFFE_BLOCK = re.compile(r"res([2-5])([a-z])$")
_STAGE = re.compile(r"conv([2-5])(_x)?$")


@dataclass
class Explanation:
    """The maps of one clip of a video for one class."""

    video: str
    block: str  # the paper's name: conv4_2
    module: str  # where in the model: layer3.1.conv_b
    label: str  # the class the maps explain
    score: float  # its softmax probability on this clip
    predicted: str  # the clip's top-1 class
    frame_indices: np.ndarray  # (T,): the frames of the clip
    frames: np.ndarray  # uint8 (T, H, W, C): the centre crops the model saw (RGB, or flow x, y)
    maps: dict[str, np.ndarray]  # "appearance" / "relation" (or "output"): raw Grad-CAM (T', H', W')

    def upsampled(self, name: str) -> np.ndarray:
        """A map trilinearly resized to the clip, ``(T, H, W)``, scaled to a maximum of 1 (all zeros stay zeros)."""
        from captum.attr import LayerAttribution

        raw = torch.from_numpy(self.maps[name])[None, None]
        full = LayerAttribution.interpolate(raw, self.frames.shape[:3], interpolate_mode="trilinear")[0, 0].clamp_(min=0)
        peak = float(full.max())
        return (full / peak if peak > 0 else full).numpy()

    def to_dict(self) -> dict:
        return {
            "video": self.video,
            "block": self.block,
            "module": self.module,
            "label": self.label,
            "score": round(self.score, 4),
            "predicted": self.predicted,
            "frame_indices": self.frame_indices.tolist(),
            "maps": {name: {"shape": list(m.shape), "values": np.round(m, 6).tolist()} for name, m in self.maps.items()},
        }


def named_blocks(model: nn.Module) -> dict[str, nn.Module]:
    """``conv1`` (the stem) and every basic block ``conv{stage}_{block}``, in network order."""
    blocks = {"conv1": model.stem}
    for stage, layer in enumerate((model.layer1, model.layer2, model.layer3, model.layer4), start=2):
        for index, block in enumerate(layer, start=1):
            blocks[f"conv{stage}_{index}"] = block
    return blocks


def smart_of(block: nn.Module) -> SMART | None:
    """The SMART module of a block (the last, should a block hold two), or None."""
    found = [m for m in block.modules() if isinstance(m, SMART)]
    return found[-1] if found else None


def resolve_block(model: nn.Module, name: str | None) -> str:
    """The paper's name of the block ``name`` designates (``conv4_2``, ``res4b``); None: the default."""
    blocks = named_blocks(model)
    if name is None:
        with_smart = [n for n, block in blocks.items() if smart_of(block) is not None]
        return (with_smart or list(blocks))[-1]
    caffe, stage = _CAFFE_BLOCK.match(name), _STAGE.match(name)
    if caffe:
        name = f"conv{caffe.group(1)}_{ascii_lowercase.index(caffe.group(2)) + 1}"
    elif stage:  # a stage: its output, its last block's
        name = [n for n in blocks if n.startswith(f"conv{stage.group(1)}_")][-1]
    if name not in blocks:
        known = f"{', '.join(blocks)} (or the prototxt's res2a ..., or a stage: conv5_x)"
        raise ConfigError(f"no block {name!r} in this model; blocks: {known}")
    return name


class Explainer:
    """A checkpoint's model in fp32 (gradients, exact maps), ready to explain clips of videos: read as the
    Predictor reads it (a checkpoint file, a model folder or a Hub repository id), or one already loaded
    (a :class:`~artnet.engine.checkpoint.LoadedModel`, e.g. a Predictor's ``loaded``: on its device)."""

    def __init__(self, checkpoint: str | Path | LoadedModel, *, device: str = "auto"):
        loaded = checkpoint if isinstance(checkpoint, LoadedModel) else load_model(checkpoint, init_distributed(device).device)
        self.checkpoint, self.clip, self.classes = loaded.source, loaded.clip, loaded.classes
        self.device, self.model = loaded.device, loaded.model

    def explain(
        self,
        video: str | Path,
        *,
        block: str | None = None,
        label: str | None = None,
        start: int | None = None,
        backend: str = "auto",
        frame_pattern: str | None = None,
    ) -> Explanation:
        """Maps of ``block`` (default: the deepest SMART block) for class ``label`` (default: the
        clip's top-1) on the clip starting at frame ``start`` (default: the centre clip, as the
        ``1clip`` protocol), centre crop."""
        try:
            from captum.attr import LayerGradCam
        except ImportError:
            raise ConfigError("artnet explain needs captum: pip install 'artnet[explain]'") from None
        block = resolve_block(self.model, block)
        windows = VideoWindows(video, self.clip, step=1, backend=backend, frame_pattern=frame_pattern, normalize=False)
        if start is None:
            start = int(sampling.test_clips(windows.num_frames, 1, self.clip.clip_len, self.clip.frame_stride)[0, 0])
        elif not 0 <= start < len(windows):
            raise DataError(f"{video}: a clip starts at frame 0 to {len(windows) - 1}, not {start} ({windows.num_frames} frames)")
        ((crops, _, _),) = list(windows.select([start]))
        clip = self.clip.normalize(crops).to(self.device)

        with torch.no_grad():
            probabilities = self.model(clip).float().softmax(dim=1)[0].cpu()
        target = int(probabilities.argmax()) if label is None else self._class_index(label)

        module = named_blocks(self.model)[block]
        smart = smart_of(module)
        if smart is None:  # the plain map of the block's output
            layer, to_input, names = module, False, ("output",)
        elif smart.reduce is None:  # relation-only and no reduction: the block's output is the relation branch
            layer, to_input, names = smart, False, ("relation",)
        else:  # the branch outputs, as the reduction reads them
            layer, to_input, names = smart.reduce, True, BRANCHES if smart.appearance is not None else ("relation",)
        maps = LayerGradCam(self.model, layer).attribute(
            clip, target=target, attribute_to_layer_input=to_input, relu_attributions=True
        )
        maps = maps if isinstance(maps, tuple) else (maps,)
        return Explanation(
            video=str(video),
            block=block,
            module=_module_name(self.model, layer),
            label=self.classes[target],
            score=float(probabilities[target]),
            predicted=self.classes[int(probabilities.argmax())],
            frame_indices=windows.frames(start).copy(),
            frames=crops[0].numpy(),
            maps={name: m[0, 0].detach().float().cpu().numpy() for name, m in zip(names, maps)},
        )

    def _class_index(self, label: str) -> int:
        try:
            return class_index(self.classes, label)
        except ConfigError as error:
            raise ConfigError(f"{self.checkpoint}: {error}") from None


def class_index(classes: list[str], label: str) -> int:
    """The index of class ``label``; a ConfigError naming the closest classes otherwise (and no file:
    ``artnet serve`` answers it to clients, who know the model by its classes alone)."""
    if label not in classes:
        raise ConfigError(f"no class {label!r}{_suggest(label, classes)}; the model knows {len(classes)} classes")
    return classes.index(label)


def explain(video: str | Path, checkpoint: str | Path, *, device: str = "auto", **options) -> Explanation:
    """Maps of one clip of ``video`` (see :meth:`Explainer.explain` for ``options``)."""
    return Explainer(checkpoint, device=device).explain(video, **options)


def as_seen(maps: np.ndarray, clip: ClipSpec) -> np.ndarray:
    """Float ``(T, H, W)`` maps over a video's frames at their stored size, as the model sees those
    frames: resized to ``clip.frame_size`` (bilinear, as the decoder), centre crop (as the windows)."""
    resized = F.interpolate(
        torch.from_numpy(np.ascontiguousarray(maps, np.float32))[:, None],
        size=clip.frame_size,
        mode="bilinear",
        align_corners=False,
    )
    return clip.crop_views(resized[:, 0, :, :, None])[..., 0].numpy()


def mass_on_object(explanation: Explanation, object_mask: np.ndarray, clip: ClipSpec) -> dict[str, tuple[float, float]]:
    """For each map, :func:`mass_inside` the object's mask, at the map's own resolution: the mask
    (``object_mask``: the object's coverage over the whole video at its stored size, e.g.
    :meth:`~artnet.data.synthetic.SyntheticDataset.object_mask`) is cut as the clip was and averaged
    over each cell of the map, rather than the map blown up to detail it does not have."""
    seen = torch.from_numpy(as_seen(object_mask[explanation.frame_indices], clip))[None, None]
    shares = {}
    for name, heatmap in explanation.maps.items():
        coverage = F.adaptive_avg_pool3d(seen, heatmap.shape)[0, 0].numpy()
        shares[name] = mass_inside(heatmap, coverage)
    return shares


@dataclass
class Shares:
    """Per-video shares of one kind of map on one kind of class (see :func:`object_mass`)."""

    inside: list[float] = field(default_factory=list)  # share of the map's mass on the object
    mask: list[float] = field(default_factory=list)  # the object's share of the clip
    empty: int = 0  # maps that were zero everywhere: no share

    def add(self, inside: float, mask: float) -> None:
        if np.isnan(inside):
            self.empty += 1
        else:
            self.inside.append(inside)
            self.mask.append(mask)

    @property
    def share(self) -> float:
        """The mean share of the maps' mass on the object."""
        return float(np.mean(self.inside)) if self.inside else float("nan")

    @property
    def lift(self) -> float:
        """:attr:`share` over the mean share of the object: 1 for maps that ignore where it is."""
        return self.share / float(np.mean(self.mask)) if self.inside else float("nan")


def object_mass(
    explainer: Explainer, dataset, videos: list[tuple[Path, int]], blocks: list[str]
) -> dict[tuple[str, str, str], Shares]:
    """Where the maps fall on the built-in dataset (a :class:`~artnet.data.synthetic.SyntheticDataset`),
    whose generator knows each clip's object: ``{(block, class kind, map name): Shares}`` over
    ``videos`` ((path, label) pairs), each explained for its own class (:func:`mass_on_object`)."""
    found: dict[tuple[str, str, str], Shares] = {}
    for path, label in videos:
        cls = dataset.classes[label]
        mask = dataset.object_mask(path)
        for block in blocks:
            explanation = explainer.explain(path, block=block, label=cls.name)
            for name, (inside, share) in mass_on_object(explanation, mask, explainer.clip).items():
                found.setdefault((block, cls.kind, name), Shares()).add(inside, share)
    return found


def mass_inside(heatmap: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """``(share of the map's mass inside the mask, the mask's share of the volume)``: a map that
    ignores where the object is scores the same as the mask's share; one on the object, more.
    ``mask`` is a coverage in [0, 1] of the map's shape."""
    if heatmap.shape != mask.shape:
        raise ValueError(f"map {heatmap.shape} and mask {mask.shape} differ in shape")
    total = float(heatmap.sum())
    inside = float((heatmap * mask).sum()) / total if total > 0 else float("nan")
    return inside, float(mask.mean())


def _module_name(model: nn.Module, module: nn.Module) -> str:
    return next(name for name, m in model.named_modules() if m is module)
