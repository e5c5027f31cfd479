"""SGD as the upstream Caffe solvers, scheduled by iteration.

* Parameter groups follow the released prototxts' ``param { lr_mult decay_mult }``: conv and fc
  weights at lr x1 with weight decay; biases at lr x``bias_lr_mult`` (2 upstream) without decay;
  BN scale and shift at lr x1 without decay.
* ``multistep`` (Kinetics: /10 at 70k, 140k, 180k, 220k) and ``step`` (fine-tuning: /10 every
  ``stepsize``) policies, optional linear warm-up and linear lr scaling with the batch size.
* Caffe's momentum keeps the learning rate inside the velocity (``v = mu v + lr g``); PyTorch keeps
  it outside (``v = mu v + g; w -= lr v``). The two agree while the lr is constant; at an lr
  step Caffe's velocity still carries the old rate. ``caffe_momentum`` rescales PyTorch's momentum
  buffers by ``lr_old / lr_new`` at each change, which makes the updates identical.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import InvalidValue

if TYPE_CHECKING:
    from .config import SolverConfig

LR_POLICIES = ("multistep", "step")


def parameter_groups(model: nn.Module, solver: SolverConfig) -> list[dict]:
    decay, no_decay, biases = [], [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                no_decay.append(param)
            elif name == "bias":
                biases.append(param)
            else:
                decay.append(param)
    groups = [
        {"params": decay, "weight_decay": solver.weight_decay, "lr_mult": 1.0, "name": "weights"},
        {"params": biases, "weight_decay": 0.0, "lr_mult": solver.bias_lr_mult, "name": "biases"},
        {"params": no_decay, "weight_decay": 0.0, "lr_mult": 1.0, "name": "batchnorm"},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, solver: SolverConfig) -> torch.optim.SGD:
    return torch.optim.SGD(parameter_groups(model, solver), lr=base_lr(solver), momentum=solver.momentum)


def base_lr(solver: SolverConfig) -> float:
    if solver.reference_batch:
        return solver.base_lr * solver.batch_size / solver.reference_batch
    return solver.base_lr


def check_schedule(solver: SolverConfig) -> None:
    """An :class:`~artnet.errors.InvalidValue` for a schedule :func:`learning_rate` cannot follow, or that
    would not do what it says within ``max_iter`` (a drop never reached, a warm-up longer than the run)."""
    if solver.lr_policy not in LR_POLICIES:
        raise InvalidValue("lr_policy", f"must be {' or '.join(map(repr, LR_POLICIES))}, got {solver.lr_policy!r}")
    if solver.lr_policy == "multistep":
        steps = solver.lr_steps
        if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
            raise InvalidValue("lr_steps", f"must increase, got {steps}")
        if steps and steps[0] < 1:
            raise InvalidValue("lr_steps", f"must be positive iterations, got {steps}")
        if steps and steps[-1] >= solver.max_iter:
            raise InvalidValue(
                "lr_steps",
                f"{steps} reach max_iter ({solver.max_iter}), where a drop never applies: give steps below it, or [] for no drop",
                related=("max_iter",),
            )
    if solver.lr_policy == "step" and solver.lr_stepsize < 1:
        raise InvalidValue("lr_stepsize", f"must be a positive number of iterations for lr_policy step, got {solver.lr_stepsize}", related=("lr_policy",))
    if not 0 <= solver.warmup_iters < solver.max_iter:
        raise InvalidValue("warmup_iters", f"must be at least 0 and below max_iter ({solver.max_iter}), got {solver.warmup_iters}", related=("max_iter",))
    if not 0 < solver.warmup_factor <= 1:
        raise InvalidValue("warmup_factor", f"must be above 0 and at most 1, got {solver.warmup_factor}")
    if not 0 < solver.gamma <= 1:
        raise InvalidValue("gamma", f"must be above 0 and at most 1 (the factor of each drop), got {solver.gamma}")


def learning_rate(iteration: int, solver: SolverConfig) -> float:
    """The learning rate of (0-based) ``iteration``, as Caffe's ``GetLearningRate`` plus warm-up
    (a schedule :func:`check_schedule` accepts; a :class:`SolverConfig` is checked when made)."""
    if solver.lr_policy == "multistep":
        drops = sum(iteration >= step for step in solver.lr_steps)
    else:
        drops = iteration // solver.lr_stepsize
    lr = base_lr(solver) * solver.gamma**drops
    if iteration < solver.warmup_iters:
        alpha = iteration / solver.warmup_iters
        lr *= solver.warmup_factor * (1 - alpha) + alpha
    return lr


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float, caffe_momentum: bool) -> None:
    for group in optimizer.param_groups:
        new = lr * group["lr_mult"]
        old = group["lr"]
        if caffe_momentum and old != new and new > 0:
            for param in group["params"]:
                buffer = optimizer.state.get(param, {}).get("momentum_buffer")
                if buffer is not None:
                    buffer.mul_(old / new)
        group["lr"] = new
