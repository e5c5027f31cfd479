"""Parameters and multiply-accumulates, per stage, counted without running real arithmetic.

Operations are counted by ``torch.utils.flop_counter.FlopCounterMode`` on meta tensors, so a
full-size count costs milliseconds. The counter covers convolutions and matrix products (the
linear layers); BN, ReLU, the energy square and pooling are not counted (as in the paper's
and most papers' conventions). It reports FLOPs = 2 x MACs; this module reports **MACs**.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .registry import create_model

STAGES = ("stem", "layer1", "layer2", "layer3", "layer4", "fc")
STAGE_LABELS = {"stem": "conv1", "layer1": "conv2_x", "layer2": "conv3_x", "layer3": "conv4_x", "layer4": "conv5_x", "fc": "head"}


def count_parameters(model: nn.Module) -> int:
    """Trainable and frozen parameters; buffers (BN running statistics) are not parameters."""
    return sum(p.numel() for p in model.parameters())


@dataclass
class StageCost:
    stage: str
    output_shape: tuple[int, ...]  # per clip: (C, T, H, W) or (num_classes,)
    params: int
    macs: int


def profile(name: str, clip_size: tuple[int, int, int] = (16, 112, 112), **options) -> list[StageCost]:
    """Per-stage output shape, parameters and MACs of one clip through variant ``name``."""
    with torch.device("meta"):
        model = create_model(name, **options).eval()
        clip = torch.empty(1, options.get("in_channels", 3), *clip_size)
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        getattr(model, stage).register_forward_hook(lambda _m, _i, out, stage=stage: shapes.__setitem__(stage, tuple(out.shape[1:])))
        for stage in STAGES
    ]
    counter = FlopCounterMode(display=False, depth=None)
    try:
        with counter, torch.no_grad():
            model(clip)
    except RuntimeError as error:
        raise ValueError(f"{name}: a {'x'.join(map(str, clip_size))} clip does not survive the strides ({error})") from None
    finally:
        for hook in hooks:
            hook.remove()
    flops = counter.get_flop_counts()
    prefix = type(model).__name__
    return [
        StageCost(
            stage,
            shapes[stage],
            count_parameters(getattr(model, stage)) + (count_parameters(model.norm) if stage == "fc" else 0),
            int(sum(flops.get(f"{prefix}.{stage}", {}).values()) // 2),
        )
        for stage in STAGES
    ]
