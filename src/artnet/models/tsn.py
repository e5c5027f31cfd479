"""Temporal Segment Networks consensus: one backbone over several clips of a video.

TSN (and ARTNet+TSN) averages the *logits* of the segments before the softmax (upstream:
``fc -> Reshape(-1, 1, S, C) -> AVE Pooling over S -> SoftmaxWithLoss``). Test-time view
averaging (25 clips x 10 crops) is the same operation over views instead of segments.
"""

from __future__ import annotations

import torch
from torch import nn


def consensus_forward(model: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """``(N, S, C, T, H, W)`` clips -> ``(N, num_classes)``: the mean of the S clips' logits.

    A plain ``(N, C, T, H, W)`` batch passes straight through, so one call serves both.
    """
    if clips.dim() == 5:
        return model(clips)
    batch, segments = clips.shape[:2]
    return model(clips.flatten(0, 1)).unflatten(0, (batch, segments)).mean(dim=1)
