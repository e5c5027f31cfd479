"""Switches for faster training and inference: precision, memory format, compilation.

One small object serves the training engine, ``predict`` and ``benchmarks/model_speed.py``
alike; the engine reads it from the config keys ``precision``, ``channels_last`` and
``compile``::

    accel = Acceleration.from_config(config)      # e.g. Acceleration(channels_last=True, compile=True)
    runner = accel.apply(model)                   # call this one; keep `model` for the optimizer and checkpoints
    with accel.autocast("cpu"):
        logits = runner(accel.prepare_input(clips))
        loss = criterion(logits, labels)
    accel.grad_scaler("cpu").scale(loss).backward()   # (the scaler's step/update as usual)

No switch changes the model's parameters, their names or ``state_dict`` keys: ``apply`` moves
the weights to another memory layout in place, and ``compile`` wraps the same module
(``runner._orig_mod is model``; the wrapper's own ``state_dict`` would prefix every key with
``_orig_mod.``, hence: save ``model``). Reduced precision is autocast: the weights stay fp32
and the optimizer steps fp32 weights.

A setting is written as the parts of its name joined by ``+``: ``fp32``, ``bf16+channels_last``,
``fp32+channels_last+compile`` (:meth:`Acceleration.parse`); ``auto`` stands for the choice
:mod:`artnet.engine.auto_acceleration` makes by timing the paths on this machine.

Which switch pays off depends on the CPU; ``python benchmarks/model_speed.py`` measures them
side by side. On a CPU without native bf16/fp16 convolutions (e.g. AVX2-only x86), PyTorch
runs reduced-precision 3D convolutions through a slow reference kernel: keep ``fp32`` there.
Training in reduced precision is refused (:meth:`Acceleration.check_training`) where a probe
finds this machine's convolution weight gradients wrong in that precision.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from dataclasses import dataclass, fields
from typing import Any, ContextManager, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_SWITCHES = ("channels_last", "compile")
AUTO = "auto"


@dataclass(frozen=True)
class Acceleration:
    """How to run a model fast; the defaults run it exactly as defined (fp32, eager, NCDHW).

    Args:
        precision: ``"fp32"``, or ``"bf16"`` / ``"fp16"`` autocast (matrix products and
            convolutions in reduced precision, reductions and BN in fp32).
        channels_last: weights and clips in ``torch.channels_last_3d`` (NDHWC) layout.
        compile: wrap the model in ``torch.compile`` (TorchInductor; on CPU it needs a C++
            compiler, and the first call compiles for a minute or more).
    """

    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in _SWITCHES:
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Acceleration:
        """Read the keys ``precision``, ``channels_last`` and ``compile``; other keys are ignored."""
        return cls(**{f.name: config[f.name] for f in fields(cls) if f.name in config})

    @classmethod
    def parse(cls, setting: str) -> Acceleration:
        """``"bf16+channels_last"`` (or its :attr:`name`, ``"bf16 + channels_last"``) -> the switch.

        At most one precision (default fp32) and each switch at most once, in any order.
        """
        parts = [part.strip().lower() for part in str(setting).split("+")]
        precisions = [part for part in parts if part in PRECISIONS]
        unknown = [part for part in parts if part not in PRECISIONS and part not in _SWITCHES]
        if unknown or len(precisions) > 1 or len(set(parts)) < len(parts):
            if AUTO in unknown:
                problem = f"{AUTO!r} stands alone"
            elif unknown:
                problem = f"unknown part {unknown[0]!r}" if unknown[0] else "an empty part"
            else:
                problem = "two precisions" if len(set(precisions)) > 1 else "a part given twice"
            raise ConfigError(
                f"acceleration {setting!r}: {problem}; write {AUTO!r}, or a precision ({', '.join(PRECISIONS)}) "
                f"and switches ({', '.join(_SWITCHES)}) joined by '+', e.g. 'bf16+channels_last'"
            )
        return cls(precisions[0] if precisions else "fp32", **{name: name in parts for name in _SWITCHES})

    @property
    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]

    @property
    def name(self) -> str:
        """``"fp32"``, ``"bf16 + channels_last + compile"``: for logs and tables."""
        return " + ".join([self.precision] + [name for name in _SWITCHES if getattr(self, name)])

    def apply(self, model: nn.Module, **compile_options: Any) -> nn.Module:
        """The model to call: weights in the chosen layout, compiled if asked (in place for the layout).

        ``compile_options`` go to ``torch.compile`` (e.g. ``mode="max-autotune"``, ``backend="eager"``).
        """
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        if self.compile:
            model = torch.compile(model, **compile_options)
        return model

    def prepare_input(self, clips: torch.Tensor) -> torch.Tensor:
        """Clips ``(N, C, T, H, W)`` in the layout the model was given; a view-free no-op otherwise."""
        if self.channels_last and clips.dim() == 5:
            return clips.contiguous(memory_format=torch.channels_last_3d)
        return clips

    def autocast(self, device_type: str = "cpu") -> ContextManager:
        """A context for the forward pass (and loss); the backward pass runs outside it."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        # torch.autocast merely warns and disables itself for a dtype the device lacks: make it an error.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                return torch.autocast(device_type, dtype=self.dtype)
            except (RuntimeError, UserWarning) as error:
                raise ConfigError(f"precision={self.precision!r} is not supported on {device_type}: {error}") from None

    def training_fault(self, device_type: str = "cpu") -> str | None:
        """Why this precision cannot train here (its kernels compute wrong gradients; a probe, cached), or None."""
        if self.precision == "fp32" or device_type != "cpu":
            return None
        agreement = _conv_weight_gradient_agreement(self.dtype, self.channels_last)
        if agreement > 0.99:  # NaN fails
            return None
        return (
            f"its {self.precision} 3D convolution computes wrong weight gradients "
            f"(cosine {agreement:.2f} to fp32 on a probe; a oneDNN kernel)"
        )

    def check_training(self, device_type: str = "cpu") -> None:
        """Raise ConfigError if this precision computes wrong gradients here (:meth:`training_fault`)."""
        fault = self.training_fault(device_type)
        if fault is not None:
            raise ConfigError(f"precision={self.precision!r} cannot train on this CPU: {fault}; train with precision='fp32'")

    def grad_scaler(self, device_type: str = "cpu") -> torch.amp.GradScaler:
        """Loss scaling for fp16 training (its small range underflows gradients); a no-op otherwise."""
        return torch.amp.GradScaler(device_type, enabled=self.precision == "fp16")


@functools.cache
def _conv_weight_gradient_agreement(dtype: torch.dtype, channels_last: bool) -> float:
    """Cosine of a Conv3d's weight gradient under ``dtype`` autocast to the fp32 one, on CPU.

    The probe's geometry is one the networks meet in their deeper stages: two frames under a
    kernel three frames deep (padding 1). On AVX-512 CPUs without AMX, oneDNN's bf16 kernel for it
    (avx512_core_bf16, and avx512_core, which emulates bf16) returns weight gradients that are
    wrong, and different from call to call; its forward and input gradients are right.
    """
    generator = torch.Generator().manual_seed(0)
    # Two clips: the fault shows with one thread and with several; a batch of one comes out right with some
    # thread counts and wrong with others, so it would pass the probe on one machine and fail it on the next.
    x = torch.randn(2, 16, 2, 8, 8, generator=generator)
    weight = torch.randn(16, 16, 3, 3, 3, generator=generator)
    upstream = torch.randn(2, 16, 2, 8, 8, generator=generator)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    gradients = []
    for enabled in (False, True):
        w = weight.clone().requires_grad_()
        with torch.autocast("cpu", dtype=dtype, enabled=enabled):
            y = F.conv3d(x, w, padding=1)
        y.float().backward(upstream)
        gradients.append(w.grad.flatten())
    return F.cosine_similarity(*gradients, dim=0).item()


def parse_setting(setting: str) -> Acceleration | None:
    """A user's acceleration setting: None for ``"auto"`` (chosen per machine), else the switch it names."""
    if str(setting).strip().lower() == AUTO:
        return None
    return Acceleration.parse(setting)


def relative_error(y: torch.Tensor, reference: torch.Tensor) -> float:
    """``||y - reference|| / ||reference||`` (Frobenius norms over the whole tensor, in fp64).

    Of logits ``(N, K)``: how far a fast path's scores are from fp32's on the same clips; NaN or
    infinity when ``y`` overflowed.
    """
    y, reference = y.detach().to("cpu", torch.float64), reference.detach().to("cpu", torch.float64)
    return ((y - reference).norm() / reference.norm()).item()
