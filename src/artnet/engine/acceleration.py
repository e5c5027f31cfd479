"""Precision, memory format and compilation switches (provisional; replaced by the speed work)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Acceleration:
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False

    def apply(self, model: nn.Module) -> nn.Module:
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        if self.compile:
            model = torch.compile(model)
        return model

    def autocast(self, device_type: str):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=_DTYPES[self.precision])

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else x
