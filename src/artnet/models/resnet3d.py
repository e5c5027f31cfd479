"""One pre-activation 3D ResNet skeleton, as in the released ARTNet / C3D-ResNet prototxts.

Every variant of the paper is this skeleton with different convolution *builders* plugged in
(the way torchvision's video ResNet plugs ``Conv3DSimple`` or ``Conv2Plus1D``):

* ``3d``: a ``t x k x k`` convolution (C3D, :class:`Conv3DSimple`);
* ``2d``: a ``1 x k x k`` convolution (C2D, :class:`Conv2DSimple`);
* ``smart``: the SMART block (ARTNet, :class:`SmartBuilder`);
* ``relation``: SMART without its appearance branch (the relation-only ablation, :class:`RelationBuilder`).

The released networks are *pre-activation* ResNets with BN after the addition:

* the residual stream carries the raw sum; each block starts with BN-ReLU of it;
* the last convolution of a block has no BN, its output is added as it is;
* projection shortcuts read the pre-activated tensor and have no BN;
* a final BN-ReLU precedes global average pooling, dropout and the classifier;
* there is no max-pooling: conv1 and the first block of conv3_x-conv5_x have stride 2x2x2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, InvalidValue
from .smart import SMART, batch_norm

Triple = tuple[int, int, int]


class ConvBuilder:
    """Makes the convolution of one position of the skeleton; every builder has this signature.

    A builder answers for its own geometry, so the skeleton never asks which builder it got:
    :meth:`kernel` is the kernel it really uses for a requested ``t x k x k`` one (the projection
    shortcuts of a block match its first convolution), and ``input_convs`` names the convolutions
    of its module that read the module's input (what ``convert --rgb`` swaps at the stem).
    """

    input_convs: tuple[str, ...] = ("",)

    def kernel(self, kernel: Triple) -> Triple:
        return kernel

    def __call__(self, in_channels: int, out_channels: int, kernel: Triple, stride: Triple, bias: bool) -> nn.Module:
        kernel = self.kernel(kernel)
        return nn.Conv3d(in_channels, out_channels, kernel, stride, tuple(k // 2 for k in kernel), bias=bias)


class Conv3DSimple(ConvBuilder):
    """``t x k x k`` (C3D)."""


class Conv2DSimple(ConvBuilder):
    """``1 x k x k``: frame by frame (C2D)."""

    def kernel(self, kernel: Triple) -> Triple:
        return (1, *kernel[1:])


class SmartBuilder(ConvBuilder):
    """The SMART block (ARTNet): appearance and relation branches, fused."""

    input_convs = ("appearance", "relation")

    def __call__(self, in_channels: int, out_channels: int, kernel: Triple, stride: Triple, bias: bool) -> nn.Module:
        return SMART(in_channels, out_channels, kernel, stride, bias)


class RelationBuilder(ConvBuilder):
    """SMART without its appearance branch (the relation-only ablation); ``channels``: how it gets
    back to full width (``"reduce"``: a 1x1x1 reduction, ``"wide"``: a relation conv twice as wide)."""

    input_convs = ("relation",)

    def __init__(self, channels: str = "reduce"):
        check_options(relation_channels=channels)
        self.channels = channels

    def __call__(self, in_channels: int, out_channels: int, kernel: Triple, stride: Triple, bias: bool) -> nn.Module:
        return SMART(in_channels, out_channels, kernel, stride, bias, appearance=False, reduction=self.channels == "reduce")


CONV_KINDS = ("3d", "2d", "smart", "relation")
SHORTCUTS = ("3x3x3", "1x1x1")
INITS = ("xavier", "pytorch")
RELATION_CHANNELS = ("reduce", "wide")
_CHOICES = {"shortcut": SHORTCUTS, "init": INITS, "relation_channels": RELATION_CHANNELS}


def check_options(**options: Any) -> None:
    """An :class:`~artnet.errors.InvalidValue` naming the first of :class:`VideoResNet`'s keyword options
    given here that it cannot take (a config checks them all when it is loaded, before building anything)."""
    for name, value in options.items():
        if name in _CHOICES:
            if value not in _CHOICES[name]:
                raise InvalidValue(name, f"must be {' or '.join(map(repr, _CHOICES[name]))}, got {value!r}")
        elif name in ("num_classes", "in_channels"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidValue(name, f"must be a positive integer, got {value!r}")
        elif name == "dropout":
            if not 0 <= value < 1:
                raise InvalidValue(name, f"must be at least 0 and below 1, got {value!r}")
        elif name == "width_mult":
            if not value > 0:
                raise InvalidValue(name, f"must be positive, got {value!r}")
        else:
            raise TypeError(f"VideoResNet has no option {name!r}")


def conv_builder(kind: str | ConvBuilder, relation_channels: str = "reduce") -> ConvBuilder:
    """The builder a variant names by ``kind`` (one of :data:`CONV_KINDS`), or a builder of your own."""
    if isinstance(kind, ConvBuilder):
        return kind
    if kind == "3d":
        return Conv3DSimple()
    if kind == "2d":
        return Conv2DSimple()
    if kind == "smart":
        return SmartBuilder()
    if kind == "relation":
        return RelationBuilder(relation_channels)
    raise ConfigError(f"unknown convolution kind {kind!r}; choose from {', '.join(CONV_KINDS)}")


@dataclass(frozen=True)
class Architecture:
    """What distinguishes one variant from another; everything else is the shared skeleton.

    ``stages[i] = (first, second)`` names the builders of the two convolutions of every basic
    block of stage ``conv{i+2}_x`` (a name of :data:`CONV_KINDS`, or a :class:`ConvBuilder`). ``bias`` and ``temporal_strides`` have five entries:
    conv1, then conv2_x ... conv5_x (the stride applies to the first block of a stage).
    """

    stem: str | ConvBuilder
    stages: tuple[tuple[str | ConvBuilder, str | ConvBuilder], ...]
    depths: tuple[int, ...] = (2, 2, 2, 2)
    bias: tuple[bool, ...] = (True,) * 5
    temporal_strides: tuple[int, ...] = (2, 1, 2, 2, 2)


class PreActBlock(nn.Module):
    """A basic block of the released nets: ``x + conv_b(relu(bn(conv_a(relu(bn_in(x))))))``."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: Triple,
        conv_a: ConvBuilder,
        conv_b: ConvBuilder,
        shortcut_kernel: Triple,
        bias: bool,
    ):
        super().__init__()
        self.norm_in = batch_norm(in_channels)
        self.conv_a = conv_a(in_channels, channels, (3, 3, 3), stride, bias)
        self.norm_a = batch_norm(channels)
        self.conv_b = conv_b(channels, channels, (3, 3, 3), (1, 1, 1), bias)
        self.shortcut = None
        if in_channels != channels or stride != (1, 1, 1):
            # A plain convolution in the first convolution's geometry (the release: 3x3x3, 1x3x3 in C2D).
            self.shortcut = Conv3DSimple()(in_channels, channels, shortcut_kernel, stride, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm_in(x), inplace=True)
        h = self.conv_b(F.relu(self.norm_a(self.conv_a(y)), inplace=True))
        return (x if self.shortcut is None else self.shortcut(y)) + h


class VideoResNet(nn.Module):
    """The shared skeleton. Use :func:`artnet.create_model` rather than this class directly.

    Args:
        arch: the variant (builders, depths, bias placement, temporal strides).
        num_classes: classifier outputs (400 for Kinetics).
        shortcut: ``"3x3x3"`` (the released prototxts and weights) or ``"1x1x1"`` (the kernel
            that reproduces the paper's parameter counts). A ``2d`` network uses ``1x3x3``.
        dropout: before the classifier (0.2 on Kinetics, 0.5 when fine-tuning).
        in_channels: 3 for RGB/BGR clips.
        width_mult: scales every stage width (kept even for the channel-pair pooling).
        init: ``"xavier"`` (Caffe's: U(+-sqrt(3 / fan_in)), zero biases) or ``"pytorch"``.
        relation_channels: how a relation-only block gets back to full width (``"reduce"`` or
            ``"wide"``; see :class:`~artnet.models.smart.SMART`).
    """

    stage_channels = (64, 128, 256, 512)

    def __init__(
        self,
        arch: Architecture,
        num_classes: int = 400,
        shortcut: str = "3x3x3",
        dropout: float = 0.2,
        in_channels: int = 3,
        width_mult: float = 1.0,
        init: str = "xavier",
        relation_channels: str = "reduce",
    ):
        super().__init__()
        check_options(
            num_classes=num_classes,
            shortcut=shortcut,
            dropout=dropout,
            in_channels=in_channels,
            width_mult=width_mult,
            init=init,
            relation_channels=relation_channels,
        )
        if not len(arch.stages) == len(arch.depths) == len(self.stage_channels) == len(arch.bias) - 1 == len(arch.temporal_strides) - 1:
            raise ConfigError(f"inconsistent architecture: {arch}")
        self.arch = arch
        widths = [_even(c * width_mult) for c in self.stage_channels]

        stem = conv_builder(arch.stem, relation_channels)
        self.stem = stem(in_channels, widths[0], (3, 7, 7), (arch.temporal_strides[0], 2, 2), arch.bias[0])

        stages = []
        in_width = widths[0]
        for index, ((first, second), depth, width) in enumerate(zip(arch.stages, arch.depths, widths)):
            conv_a, conv_b = conv_builder(first, relation_channels), conv_builder(second, relation_channels)
            shortcut_kernel = conv_a.kernel((3, 3, 3)) if shortcut == "3x3x3" else (1, 1, 1)
            spatial_stride = 1 if index == 0 else 2
            blocks = []
            for block_index in range(depth):
                stride = (arch.temporal_strides[index + 1], spatial_stride, spatial_stride) if block_index == 0 else (1, 1, 1)
                blocks.append(PreActBlock(in_width, width, stride, conv_a, conv_b, shortcut_kernel, arch.bias[index + 1]))
                in_width = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

        self.norm = batch_norm(in_width)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_width, num_classes)
        self.reset_parameters(init)

    @property
    def num_features(self) -> int:
        return self.fc.in_features

    def reset_parameters(self, init: str = "xavier") -> None:
        check_options(init=init)
        for module in self.modules():
            if isinstance(module, (nn.Conv3d, nn.Linear)):
                if init == "xavier":
                    caffe_xavier_(module.weight)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
                else:
                    module.reset_parameters()
            elif isinstance(module, nn.BatchNorm3d):
                module.reset_parameters()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before dropout and the classifier: ``(N, num_features)``."""
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = F.relu(self.norm(x), inplace=True)
        return self.pool(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


def caffe_xavier_(weight: torch.Tensor) -> torch.Tensor:
    """Caffe's ``xavier`` filler: U(-a, a) with a = sqrt(3 / fan_in), fan_in = numel / out."""
    bound = math.sqrt(3.0 / (weight.numel() // weight.shape[0]))
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))

