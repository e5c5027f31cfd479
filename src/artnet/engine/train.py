"""The training loop, readable top to bottom: ``artnet train CONFIG [key=value ...]``.

Iteration-based as the upstream Caffe solvers: the recipe's global batch is split over the
processes and over gradient-accumulation steps, so one recipe runs unchanged on one CPU or on
many GPUs. Every ``checkpoint_interval`` iterations the full state is written atomically, and a
run started again in the same run directory resumes from its newest checkpoint, repeating
exactly the samples, augmentations and dropout masks the interrupted run would have drawn.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data import seed_worker
from ..errors import CheckpointError, ConfigError
from ..models.tsn import consensus_forward
from .acceleration import Acceleration
from .builders import build_dataset, build_model, input_geometry, load_init_weights, set_train_mode
from .checkpoint import load_checkpoint, load_state, model_payload, save_checkpoint
from .config import Config, config_to_dict, save_config
from .distributed import DistributedEnv, ResumableSampler, all_reduce_mean, barrier, broadcast_buffers, gather_objects, init_distributed
from .evaluate import evaluate, get_protocol
from .monitor import RunMonitor
from .solver import build_optimizer, learning_rate, set_learning_rate


@dataclass(frozen=True)
class BatchPlan:
    """How the recipe's global batch is cut: processes x accumulation steps x micro-batch."""

    global_batch: int
    per_process: int
    accumulation: int
    micro_batch: int

    @classmethod
    def make(cls, global_batch: int, world_size: int, micro_batch_limit: int = 0) -> "BatchPlan":
        if global_batch % world_size:
            raise ConfigError(f"solver.batch_size={global_batch} does not split over {world_size} processes")
        per_process = global_batch // world_size
        limit = micro_batch_limit or per_process
        accumulation = next(a for a in range(math.ceil(per_process / limit), per_process + 1) if per_process % a == 0)
        return cls(global_batch, per_process, accumulation, per_process // accumulation)


@dataclass
class DataPosition:
    """Where the sample stream stands: the epoch and the samples this process consumed in it."""

    epoch: int = 0
    consumed: int = 0


def train(config: Config) -> dict:
    env = init_distributed(config.train.device)
    run_dir = config.run_dir
    seed_everything(config.train.seed + env.rank, config.train.deterministic)
    if env.device.type == "cuda":
        torch.backends.cudnn.benchmark = config.train.cudnn_benchmark and not config.train.deterministic

    # Data: the training set, and the validation set the in-training evaluation uses.
    train_set = build_dataset(config, "train")
    protocol = get_protocol(config.train.eval_protocol)
    val_set = build_dataset(config, protocol.mode, protocol)
    classes = list(train_set.classes)

    # Model, optimizer, precision.
    model = build_model(config, len(classes))
    if config.train.init and not _has_checkpoint(run_dir, config.train.resume):
        for line in load_init_weights(model, config.train.init):
            _say(env, line)
    if config.train.sync_bn:
        if env.device.type != "cuda":
            raise ConfigError("train.sync_bn needs CUDA devices (PyTorch's SyncBatchNorm does not run on CPU)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(env.device)
    set_train_mode(model, config.train.bn)
    accel = Acceleration(config.train.precision, config.train.channels_last, config.train.compile)
    accel.check_training(env.device.type)
    optimizer = build_optimizer(model, config.solver)
    scaler = accel.grad_scaler(env.device.type)
    plan = BatchPlan.make(config.solver.batch_size, env.world_size, config.solver.micro_batch)

    # Resume from the newest checkpoint of this run, if there is one.
    position, start, best_top1, elapsed = DataPosition(), 0, -1.0, 0.0
    resume_path = find_resume_checkpoint(run_dir, config.train.resume)
    if resume_path is not None:
        start, position, best_top1, elapsed = restore_training_state(resume_path, model, optimizer, scaler, env)
        if env.is_main:
            forget_after(run_dir, start)
        _say(env, f"resumed from {resume_path} at iteration {start}")

    net = accel.apply(model)
    if env.is_distributed:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    if env.is_main:
        save_config(config, run_dir / "config.yaml")
    _say(
        env,
        f"{config.model.name}: {len(train_set)} training videos, {len(classes)} classes; batch {plan.global_batch} ="
        f" {env.world_size} process(es) x {plan.accumulation} step(s) x {plan.micro_batch} clips; {config.solver.max_iter} iterations",
    )

    sampler = ResumableSampler(len(train_set), env, seed=config.train.seed)
    stream = micro_batches(train_set, sampler, position, plan.micro_batch, config, env)
    monitor = RunMonitor(run_dir, config.solver.max_iter, start, enabled=env.is_main, tensorboard=config.train.tensorboard)
    metrics = None
    started = time.perf_counter() - elapsed  # training time of this run, over its restarts
    for iteration in range(start, config.solver.max_iter):
        lr = learning_rate(iteration, config.solver)
        set_learning_rate(optimizer, lr, config.solver.caffe_momentum)

        # One iteration: accumulate the gradients of the micro-batches, then one SGD step.
        data_time = compute_time = loss_sum = 0.0
        for step in range(plan.accumulation):
            tick = time.perf_counter()
            clips, labels = next(stream)
            clips, labels = clips.to(env.device, non_blocking=True), labels.to(env.device, non_blocking=True)
            tock = time.perf_counter()
            last_step = step == plan.accumulation - 1
            sync = contextlib.nullcontext() if last_step or not env.is_distributed else net.no_sync()
            with sync:
                with accel.autocast(env.device.type):
                    logits = consensus_forward(net, accel.prepare_input(clips))
                loss = F.cross_entropy(logits.float(), labels) / plan.accumulation
                scaler.scale(loss).backward()
            loss_sum += loss.item()
            data_time += tock - tick
            compute_time += time.perf_counter() - tock
        if config.solver.clip_grad_norm > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), config.solver.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        done = iteration + 1

        clips_per_second = plan.global_batch / max(data_time + compute_time, 1e-9)
        monitor.progress(loss=loss_sum, lr=lr, clips_s=round(clips_per_second, 1), data=f"{data_time / (data_time + compute_time):.0%}")
        if done % config.train.log_interval == 0 or done == config.solver.max_iter:
            loss_mean = all_reduce_mean(loss_sum, env)
            monitor.record(
                "train",
                done,
                {
                    "loss": loss_mean,
                    "lr": lr,
                    "epoch": position.epoch,
                    "clips_per_s": clips_per_second,
                    "data_time": data_time,
                    "compute_time": compute_time,
                    "bad_samples": train_set.bad_samples(),
                },
            )

        if done == config.solver.max_iter or (config.train.eval_interval and done % config.train.eval_interval == 0):
            broadcast_buffers(model, env)
            metrics = evaluate(
                model,
                val_set,
                protocol,
                env,
                view_batch=config.test.view_batch,
                num_workers=config.data.num_workers,
                max_videos=config.train.eval_max_videos,
                accel=accel,
            ).metrics
            set_train_mode(model, config.train.bn)
            monitor.message(f"iteration {done}: validation ({protocol.name}) {metrics.summary()}")
            monitor.record("val", done, metrics.as_dict())
            if env.is_main and metrics.top1 > best_top1:
                best_top1 = metrics.top1
                save_checkpoint(run_dir / "best.pt", run_payload(model, classes, config, iteration=done, metrics=metrics.as_dict()))

        if done == config.solver.max_iter or done % config.train.checkpoint_interval == 0:
            state = {"best_top1": best_top1, "elapsed_seconds": time.perf_counter() - started}
            save_training_state(run_dir, done, model, optimizer, scaler, position, state, config, classes, env)

    bad = train_set.bad_samples()
    monitor.message(f"finished {config.solver.max_iter} iterations; {bad} bad training sample(s) skipped" + ("" if not bad else " (see log)"))
    monitor.close(plots=config.train.plots)
    if env.is_main:
        payload = run_payload(model, classes, config, iteration=config.solver.max_iter, elapsed_seconds=time.perf_counter() - started)
        save_checkpoint(run_dir / "final.pt", payload)
    barrier(env)
    return {"run_dir": str(run_dir), "metrics": None if metrics is None else metrics.as_dict(), "bad_samples": bad}


def micro_batches(dataset, sampler: ResumableSampler, position: DataPosition, size: int, config: Config, env: DistributedEnv) -> Iterator:
    """Endless ``(clips, labels)`` micro-batches, epoch after epoch, from ``position`` on.

    Order and augmentations depend on (seed, epoch, index) only, never on the global RNG, so a
    resumed run draws the same batches. The workers live across epochs (the epoch reaches them
    through the dataset's shared memory).
    """
    workers = config.data.num_workers
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=size,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        pin_memory=env.device.type == "cuda",
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(config.train.seed),
        worker_init_fn=seed_worker,
    )
    while True:
        sampler.set_epoch(position.epoch, start=position.consumed)
        dataset.set_epoch(position.epoch)
        for clips, labels, _ in loader:
            position.consumed += len(labels)
            yield clips, labels
        position.epoch += 1
        position.consumed = 0


# ----------------------------------------------------------------------------------------------
# Checkpoints of a run

_ITERATION_CHECKPOINT = re.compile(r"iter_(\d+)\.pt$")


def checkpoints_of(run_dir: Path) -> list[Path]:
    """The run's iteration checkpoints, oldest first."""
    found = [(int(m.group(1)), p) for p in (run_dir / "checkpoints").glob("iter_*.pt") if (m := _ITERATION_CHECKPOINT.search(p.name))]
    return [p for _, p in sorted(found)]


def find_resume_checkpoint(run_dir: Path, resume: str) -> Path | None:
    if resume == "never":
        return None
    if resume == "auto":
        found = checkpoints_of(run_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not path.is_file():
        raise ConfigError(f"train.resume: {path}: no such checkpoint")
    return path


def _has_checkpoint(run_dir: Path, resume: str) -> bool:
    return find_resume_checkpoint(run_dir, resume) is not None


def run_payload(model, classes: list[str], config: Config, **extra) -> dict:
    """A checkpoint of this run's model: weights, classes, how its clips are cut, the config."""
    payload = model_payload(model, classes, config.data.normalization, input=input_geometry(config), **extra)
    return {**payload, "config": config_to_dict(config)}


def save_training_state(run_dir, iteration, model, optimizer, scaler, position, state, config, classes, env) -> None:
    """Everything a resumed run needs, RNG states of every process included."""
    rng = gather_objects(_rng_state(env), env)
    if env.is_main:
        payload = run_payload(
            model,
            classes,
            config,
            iteration=iteration,
            optimizer=optimizer.state_dict(),
            scaler=scaler.state_dict(),
            data_position={"epoch": position.epoch, "consumed": position.consumed},
            **state,
            rng=rng,
            world_size=env.world_size,
        )
        save_checkpoint(run_dir / "checkpoints" / f"iter_{iteration:07d}.pt", payload)
        for old in checkpoints_of(run_dir)[: -config.train.keep_last or None]:
            old.unlink(missing_ok=True)
    barrier(env)


def restore_training_state(path: Path, model, optimizer, scaler, env) -> tuple[int, DataPosition, float, float]:
    checkpoint = load_checkpoint(path)
    if "optimizer" not in checkpoint:
        raise CheckpointError(f"{path}: holds weights only, not a training state to resume")
    load_state(model, checkpoint["state_dict"], str(path))
    optimizer.load_state_dict(checkpoint["optimizer"])
    scaler.load_state_dict(checkpoint["scaler"])
    rng = checkpoint["rng"]
    if checkpoint.get("world_size", 1) == env.world_size:
        _set_rng_state(rng[env.rank])
    position = DataPosition(**checkpoint["data_position"])
    return int(checkpoint["iteration"]), position, float(checkpoint["best_top1"]), float(checkpoint["elapsed_seconds"])


def forget_after(run_dir: Path, iteration: int) -> None:
    """A resumed run repeats the iterations after its checkpoint: drop what was logged of them
    (so curves show each iteration once) and the half-written checkpoint of a killed run."""
    log = run_dir / "log.jsonl"
    if log.is_file():
        kept = [line for line in log.read_text().splitlines() if line.strip() and json.loads(line)["iteration"] <= iteration]
        log.write_text("".join(line + "\n" for line in kept))
    for stale in (run_dir / "checkpoints").glob(".*.tmp"):
        stale.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------
# Randomness


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False


def _rng_state(env: DistributedEnv) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": _python_state()}
    if env.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(env.device)
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", np.asarray(state["numpy"]["keys"], dtype=np.uint32), *state["numpy"]["rest"]))
    random.setstate((state["python"][0], tuple(state["python"][1]), state["python"][2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _numpy_state() -> dict:
    _, keys, position, has_gauss, cached = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "rest": [int(position), int(has_gauss), float(cached)]}


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _say(env: DistributedEnv, text: str) -> None:
    if env.is_main:
        print(text, flush=True)
