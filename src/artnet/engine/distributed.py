"""torch.distributed plumbing: one process per device, launched by ``torchrun`` (or alone).

``torchrun --nproc-per-node 8 -m artnet train ...`` sets RANK, WORLD_SIZE, LOCAL_RANK and the
rendezvous; a plain ``artnet train`` is a world of one. NCCL on GPUs, gloo on CPU.

A process that waits longer than ``timeout`` seconds for the others at a collective operation stops
with an error (a process that died is noticed at once: its connections close), so a run whose
process hangs or dies never leaves the others waiting for ever (:mod:`artnet.engine.faults`).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist

from ..errors import ArtnetError, ConfigError

DEVICES = ("auto", "cpu", "cuda")
# How many process groups this process has joined: each rendezvous keys its own part of torchrun's store.
_JOINS = itertools.count(1)


@dataclass(frozen=True)
class DistributedEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto", timeout: float | None = None) -> DistributedEnv:
    """Join the process group torchrun describes (if any) and pick this process's device (one of
    :data:`DEVICES`); ``timeout``: seconds a collective waits for the others (None: PyTorch's default)."""
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda:
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        wait = None if timeout is None else timedelta(seconds=timeout)
        store, _, _ = next(dist.rendezvous("env://", rank, world_size, **({} if wait is None else {"timeout": wait})))
        if wait is not None:
            store.set_timeout(wait)
        # torchrun's store outlives a group: a group joined again (a second run in one program) under the keys
        # of the first would read the addresses its processes left there, and wait on them
        store = dist.PrefixStore(f"artnet/{next(_JOINS)}", store)
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            store=store,
            rank=rank,
            world_size=world_size,
            device_id=chosen if use_cuda else None,
            timeout=wait,
        )
    return DistributedEnv(rank, world_size, local_rank, chosen)


def shutdown_distributed() -> None:
    """Leave the process group (when the run that joined it ends)."""
    if dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed_run(device: str = "auto", timeout: float | None = None) -> Iterator[DistributedEnv]:
    """:func:`init_distributed` for the length of one run: a process group it joins is left when the run
    ends, however it ends, so a program that calls the library goes on without a stale group; one the
    caller joined before stays the caller's."""
    joined_before = dist.is_initialized()
    env = init_distributed(device, timeout)
    try:
        yield env
    finally:
        if not joined_before:
            shutdown_distributed()


def barrier(env: DistributedEnv) -> None:
    if env.is_distributed:
        dist.barrier()


def gather_objects(obj: Any, env: DistributedEnv) -> list[Any]:
    """Every process's ``obj``, in rank order (on every process)."""
    if not env.is_distributed:
        return [obj]
    gathered: list[Any] = [None] * env.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, env: DistributedEnv) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not env.is_distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main_process(function: Callable[[], Any], env: DistributedEnv) -> Any:
    """``function()`` run by rank 0 alone (a decision or a check of the run folder); its result, or the
    :class:`~artnet.errors.ArtnetError` it raised, on every process (the others would wait otherwise)."""
    outcome = None
    if env.is_main:
        try:
            outcome = (function(), None)
        except ArtnetError as error:
            outcome = (None, error)
    result, error = broadcast_object(outcome, env)
    if error is not None:
        raise error
    return result


def broadcast_buffers(model: torch.nn.Module, env: DistributedEnv) -> None:
    """Give every process rank 0's buffers (BN running statistics), e.g. before an evaluation.

    With per-process BN, each process updates its running statistics from its own batches after
    DDP's broadcast at the start of a forward pass; evaluating with rank 0's makes every process
    evaluate the model the checkpoint holds.
    """
    if env.is_distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def all_reduce_mean(value: float, env: DistributedEnv) -> float:
    if not env.is_distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=env.device)
    dist.all_reduce(tensor)
    return tensor.item() / env.world_size


class ResumableSampler(torch.utils.data.Sampler[int]):
    """Shuffled, sharded, epoch-seeded indices that can start in the middle of an epoch.

    Epoch ``e`` is a permutation drawn from ``(seed, e)`` alone, cut into ``world_size`` equal
    shards (the tail wraps around so every process takes the same number of steps). A resumed
    run sets ``start`` to the number of samples this process had consumed, and sees exactly the
    indices the interrupted run would have seen.
    """

    def __init__(self, size: int, env: DistributedEnv, seed: int = 0, shuffle: bool = True):
        self.size = size
        self.env = env
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.start = 0
        self.per_rank = math.ceil(size / env.world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.start = start

    def __len__(self) -> int:
        return self.per_rank - self.start

    def __iter__(self) -> Iterator[int]:
        order = np.arange(self.size)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        total = self.per_rank * self.env.world_size
        order = np.resize(order, total)  # wrap around to make shards equal
        shard = order[self.env.rank : total : self.env.world_size]
        return iter(shard[self.start :].tolist())


def shard_indices(size: int, env: DistributedEnv) -> list[int]:
    """Evaluation shards: every index exactly once over all processes, nothing padded."""
    return list(range(env.rank, size, env.world_size))
