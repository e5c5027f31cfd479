"""Spatial crops and normalisation of uint8 clips ``(..., T, H, W, C)``, as upstream: RGB frames (C = 3)
or optical flow (C = 2, channels x, y; see :mod:`artnet.data.flow`).

Training: the multi-scale crop of ``data_transformer.cpp`` (``fillCropSize``): base = the short side;
crop sides ``int(base * r)`` for r in {1, .875, .75, .66}, snapped to the network input (112) when
within 3 px; (h, w) pairs at most ``max_distort`` = 1 scale step apart; a uniformly random position;
resize to 112 x 112 (bilinear); horizontal flip with p = 0.5. One draw serves every frame of a clip
and every segment of a video. Test: centre, 3-crop or 10-crop (4 corners + centre and their flips,
upstream's ``c3d_rgb_stack_oversample``). Flow takes the same crops for x and y; mirroring it also
negates the x motion, ``255 - x`` (ARTNet's ``c3d_flow_stack_oversample``, TSN's ``flow_stack_oversample``).
Frames stay uint8 until :func:`normalize`, the last step.

Where left and right differ (Something-Something, Jester's swipes, gestures), a mirror changes the class:
``flip=False`` draws no mirror in training and leaves the mirrored five out of the 10 test crops, and a
flip label map (:func:`flip_label_permutation`, MMAction2's ``flip_label_map``) names the classes a mirror
turns into each other, so a mirrored clip can be given its mirrored label.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError, InvalidValue
from .readers import READER_CHANNELS

SCALE_RATIOS = (1.0, 0.875, 0.75, 0.66)
TEST_CROPS = ("center", "3crop", "10crop")


@dataclass(frozen=True)
class Normalization:
    channels: str  # the network's input channels in order, in letters of a reader's order: "BGR", "RGB", "xy"
    scale: float  # applied to 0-255 values before the mean
    mean: tuple[float, ...]  # in the network's channel order
    std: tuple[float, ...] | None

    @property
    def modality(self) -> str:
        """What the clips are read as: a key of :data:`READER_CHANNELS` (``"rgb"`` or ``"flow"``)."""
        return next(m for m, letters in READER_CHANNELS.items() if sorted(letters) == sorted(self.channels))

    @property
    def order(self) -> tuple[int, ...]:
        """The reader channel of each network channel."""
        source = READER_CHANNELS[self.modality]
        return tuple(source.index(c) for c in self.channels)


NORMALIZATIONS = {
    # converted Caffe weights: BGR, 0-255, minus the per-channel mean, no std (upstream train_val / action_caffe.py)
    "caffe": Normalization(channels="BGR", scale=1.0, mean=(104.0, 117.0, 123.0), std=None),
    # the same weights with conv1's input channels swapped (artnet convert --rgb): RGB order
    "caffe_rgb": Normalization(channels="RGB", scale=1.0, mean=(123.0, 117.0, 104.0), std=None),
    # torchvision's Kinetics-400 video models: RGB in 0-1, mean / std
    "kinetics": Normalization(channels="RGB", scale=1 / 255, mean=(0.43216, 0.394666, 0.37645), std=(0.22803, 0.22145, 0.216989)),
    # optical flow (x, y), 0-255 minus 128 (ARTNet's action_caffe.py, predict_single_c3d_flow_stack)
    "flow": Normalization(channels="xy", scale=1.0, mean=(128.0, 128.0), std=None),
}


@dataclass(frozen=True)
class Crop:
    """A crop box on the frame (top, left, height, width) and whether to mirror it."""

    top: int
    left: int
    height: int
    width: int
    flip: bool = False


def normalize(clip: torch.Tensor | np.ndarray, preset: str = "caffe") -> torch.Tensor:
    """uint8 ``(..., T, H, W, C)`` as read (RGB, or flow x, y) -> float32 ``(..., C, T, H, W)`` in the
    preset's channel order.

    Works on any device, so a training loop may move uint8 batches to the GPU and normalise there.
    """
    if preset not in NORMALIZATIONS:
        raise DataError(f"unknown normalization {preset!r}: use one of {', '.join(NORMALIZATIONS)}")
    spec = NORMALIZATIONS[preset]
    channels = len(spec.channels)
    clip = torch.as_tensor(clip)
    if clip.dtype != torch.uint8 or clip.dim() < 4 or clip.shape[-1] != channels:
        raise DataError(
            f"normalization {preset!r} expects uint8 (..., T, H, W, {channels}) clips, got {tuple(clip.shape)} {clip.dtype}"
        )
    order = spec.order
    if clip.device.type == "cpu":
        # channel swap and planar transposition on uint8 in numpy: faster than torch's strided copy
        array = clip.numpy()
        if order == tuple(reversed(range(channels))):
            array = array[..., ::-1]  # a view: the one copy is the transposition
        elif order != tuple(range(channels)):
            array = array[..., list(order)]
        planar = torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, -4)))
    else:
        planar = clip[..., list(order)].movedim(-1, -4).contiguous()
    out = planar.to(torch.float32)
    view = (channels, 1, 1, 1)
    if spec.scale != 1.0:
        out.mul_(spec.scale)
    out.sub_(torch.tensor(spec.mean, dtype=out.dtype, device=out.device).view(view))
    if spec.std is not None:
        out.div_(torch.tensor(spec.std, dtype=out.dtype, device=out.device).view(view))
    return out


def multiscale_crop_sizes(
    height: int, width: int, crop_size: int = 112, scale_ratios=SCALE_RATIOS, max_distort: int = 1
) -> list[tuple[int, int]]:
    """Upstream ``fillCropSize``: the (crop_h, crop_w) candidates, in upstream order.

    For a 128 x 170 frame: sides {128, 112, 96, 84} and 10 pairs.
    """
    base = min(height, width)
    # C++ multiplies an int by a float ratio and truncates; float32 keeps 128 * 0.66 = 84.48 -> 84
    sides = [int(np.float32(base) * np.float32(ratio)) for ratio in scale_ratios]
    sides = [crop_size if abs(side - crop_size) < 3 else side for side in sides]
    return [(sides[i], sides[j]) for i in range(len(sides)) for j in range(len(sides)) if abs(i - j) <= max_distort]


def random_crop(
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    crop_size: int = 112,
    scale_ratios=SCALE_RATIOS,
    max_distort: int = 1,
    flip: bool = True,
) -> Crop:
    """One training draw: a multi-scale size (uniform over the pairs), a uniform position, a coin flip."""
    sizes = multiscale_crop_sizes(height, width, crop_size, scale_ratios, max_distort)
    crop_h, crop_w = sizes[int(rng.integers(len(sizes)))]
    crop_h, crop_w = min(crop_h, height), min(crop_w, width)
    top = int(rng.integers(height - crop_h + 1))
    left = int(rng.integers(width - crop_w + 1))
    mirror = bool(rng.integers(2)) if flip else False
    return Crop(top, left, crop_h, crop_w, mirror)


def center_crop(height: int, width: int, crop_size: int = 112) -> Crop:
    """Caffe's TEST-phase crop: offsets ``(H - s) // 2``, ``(W - s) // 2`` (8, 29 on 128 x 170)."""
    _check_fits(height, width, crop_size)
    return Crop((height - crop_size) // 2, (width - crop_size) // 2, crop_size, crop_size)


def test_crops(height: int, width: int, crop_size: int = 112, kind: str = "10crop", flip: bool = True) -> list[Crop]:
    """Test views of one clip.

    ``"center"``: the centre crop. ``"10crop"``: upstream's oversampling, in its order: top-left,
    top-right, bottom-left, bottom-right, centre, then the same five mirrored (only the first five
    with ``flip=False``). ``"3crop"`` (not upstream; as in SlowFast): three squares along the long
    side (start, centre, end), centred on the short side.
    """
    _check_fits(height, width, crop_size)
    if kind == "center":
        return [center_crop(height, width, crop_size)]
    if kind == "10crop":
        h_last, w_last = height - crop_size, width - crop_size
        corners = [(0, 0), (0, w_last), (h_last, 0), (h_last, w_last), (h_last // 2, w_last // 2)]
        boxes = [Crop(top, left, crop_size, crop_size) for top, left in corners]
        return boxes + ([Crop(b.top, b.left, b.height, b.width, flip=True) for b in boxes] if flip else [])
    if kind == "3crop":
        if width >= height:
            top = (height - crop_size) // 2
            return [Crop(top, left, crop_size, crop_size) for left in (0, (width - crop_size) // 2, width - crop_size)]
        left = (width - crop_size) // 2
        return [Crop(top, left, crop_size, crop_size) for top in (0, (height - crop_size) // 2, height - crop_size)]
    raise DataError(f"unknown test crops {kind!r}: use one of {', '.join(TEST_CROPS)}")


def apply_crop(frames: torch.Tensor | np.ndarray, crop: Crop, out_size: int = 112) -> torch.Tensor:
    """Crop uint8 ``(..., H, W, C)`` frames, resize the box to ``out_size`` (bilinear, as ``cv2.resize``;
    skipped when it already has that size) and mirror it if asked; stays uint8.

    Flow (C = 2: x, y) mirrored also has its x motion negated, ``255 - x``, as upstream.
    """
    frames = torch.as_tensor(frames)
    channels = frames.shape[-1]
    box = frames[..., crop.top : crop.top + crop.height, crop.left : crop.left + crop.width, :]
    if (crop.height, crop.width) != (out_size, out_size):
        lead = box.shape[:-3]
        flat = box.reshape(-1, crop.height, crop.width, channels).permute(0, 3, 1, 2)  # channels-last memory: uint8 fast path
        resized = F.interpolate(flat, size=(out_size, out_size), mode="bilinear", align_corners=False, antialias=False)
        box = resized.permute(0, 2, 3, 1).reshape(*lead, out_size, out_size, channels)
    if crop.flip:
        box = box.flip(-2)
        if channels == len(READER_CHANNELS["flow"]):
            box = torch.cat([255 - box[..., :1], box[..., 1:]], dim=-1)
    return box


def check_flip_pairs(pairs: Sequence[Sequence[str]]) -> None:
    """A flip label map is pairs of two different class names, no class in two pairs (:class:`InvalidValue` otherwise)."""
    seen: set[str] = set()
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise InvalidValue("flip_label_map", f"holds {list(pair)}: each entry is a pair of two different class names")
        for name in pair:
            if name in seen:
                raise InvalidValue("flip_label_map", f"names {name!r} twice: a mirror turns a class into one other class")
            seen.add(name)


def flip_label_permutation(pairs: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
    """The label of each class's mirror image: the classes of each pair swapped, every other class itself.

    Applied twice it is the identity, so the same array maps a mirrored clip's label and puts the
    logits of a mirrored view back in label order (``logits[..., permutation]``).
    """
    check_flip_pairs(pairs)
    index = {name: label for label, name in enumerate(classes)}
    permutation = np.arange(len(classes))
    for pair in pairs:
        for name in pair:
            if name not in index:
                close = difflib.get_close_matches(name, list(index), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InvalidValue("flip_label_map", f"names {name!r}, not a class of the dataset{hint}")
        first, second = index[pair[0]], index[pair[1]]
        permutation[first], permutation[second] = second, first
    return permutation


def _check_fits(height: int, width: int, crop_size: int) -> None:
    if height < crop_size or width < crop_size:
        raise DataError(f"a {crop_size} x {crop_size} crop does not fit a {height} x {width} frame; raise frame_size")
