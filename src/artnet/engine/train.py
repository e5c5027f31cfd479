"""The training loop, readable top to bottom: ``artnet train CONFIG [key=value ...]``.

Iteration-based as the upstream Caffe solvers: the recipe's global batch is split over the
processes and over gradient-accumulation steps, so one recipe runs unchanged on one CPU or on
many GPUs. Every ``checkpoint_interval`` iterations the full state is written atomically, and a
run started again in the same run directory resumes from its newest checkpoint, repeating
exactly the samples, augmentations and dropout masks the interrupted run would have drawn
(see :mod:`artnet.engine.checkpoint`). A run never writes over another (:func:`claim_run_dir`), and
one that a fault stops (a killed DataLoader worker, a lost process, a full disk) says so in one line
and how to resume (:mod:`artnet.engine.faults`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import nn
from torch.nn import functional as F

from ..data import seed_worker
from ..errors import ConfigError, DivergedError
from ..models.tsn import consensus_forward
from ..outputs import output_folder, refuse_replacing
from .acceleration import AUTO, PRECISIONS, Acceleration
from .auto_acceleration import choose_training_precision, probe_clips
from .builders import build_dataset, build_model, load_init_weights, set_train_mode
from .checkpoint import RunCheckpoints, Trainables, TrainingState, capture_rng, load_checkpoint, model_payload, seed_everything
from .config import Config, config_to_dict, save_config, written_by_artnet
from .distributed import (
    DistributedEnv,
    ResumableSampler,
    all_reduce_mean,
    barrier,
    broadcast_buffers,
    distributed_run,
    gather_objects,
    on_main_process,
)
from .evaluate import evaluate, get_protocol
from .faults import stopping_run
from .monitor import RunMonitor
from .solver import build_optimizer, learning_rate, set_learning_rate
from .threads import core_watch


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


# What a run writes in its folder (RunCheckpoints, RunMonitor, save_config): all a new run would replace.
RUN_FILES = ("config.yaml", "log.jsonl", "best.pt", "final.pt", "checkpoints", "tensorboard", "loss.png", "accuracy.png")


def train(config: Config) -> dict:
    """Train as ``config`` says (one process, or each of those torchrun started); what the run reached.
    A process group this call joins is left when it returns or fails."""
    with distributed_run(config.train.device, config.train.dist_timeout) as env:
        return _train(config, env)


def _train(config: Config, env: DistributedEnv) -> dict:
    checkpoints = RunCheckpoints(config.run_dir, config.train.keep_last)
    resume_from = on_main_process(lambda: claim_run_dir(config, checkpoints), env)  # first: a refusal costs nothing
    seed_everything(config.train.seed + env.rank, config.train.deterministic)
    if env.device.type == "cuda":
        torch.backends.cudnn.benchmark = config.train.cudnn_benchmark and not config.train.deterministic

    # Data: the training set, and the validation set the in-training evaluation uses.
    train_set = build_dataset(config, "train")
    protocol = get_protocol(config.train.eval_protocol)
    val_set = build_dataset(config, protocol.mode, protocol)
    classes = list(train_set.classes)

    # Model (fresh, or the weights to fine-tune from), optimizer, precision.
    model = build_model(config, len(classes))
    if config.train.init and resume_from is None:
        for line in load_init_weights(model, config.train.init):
            _say(env, line)
    if config.train.sync_bn:
        if env.device.type != "cuda":
            raise ConfigError("train.sync_bn needs CUDA devices (PyTorch's SyncBatchNorm does not run on CPU)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(env.device)
    set_train_mode(model, config.train.bn)
    plan = BatchPlan.make(config.solver.batch_size, env.world_size, config.solver.micro_batch)
    resumed = load_checkpoint(resume_from) if resume_from is not None else None  # read once: precision auto and restore
    if config.train.precision == AUTO:  # resolved once: the checkpoints and config.yaml say what ran
        precision = _auto_precision(config, model, plan, env, resumed)
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, precision=precision))
    accel = Acceleration(config.train.precision, config.train.channels_last, config.train.compile)
    accel.check_training(env.device.type)
    trainables = Trainables(model, build_optimizer(model, config.solver), accel.grad_scaler(env.device.type))

    def payload(**extra) -> dict:  # what best.pt, final.pt and the iteration checkpoints say about the model
        return model_payload(model, classes, config.data.clip, config.data.flip_settings, config=config_to_dict(config), **extra)

    # Resume from the newest checkpoint of this run, if there is one.
    state = TrainingState()
    if resume_from is not None:
        state = checkpoints.restore(resume_from, trainables, env.rank, env.world_size, checkpoint=resumed)
        if env.is_main:
            checkpoints.forget_after(state.iteration)
        _say(env, f"resumed from {resume_from} at iteration {state.iteration}")

    net = accel.apply(model)
    if env.is_distributed:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    if env.is_main:
        save_config(config, config.run_dir / "config.yaml")
    _say(
        env,
        f"{config.model.name}: {len(train_set)} training videos, {len(classes)} classes; batch {plan.global_batch} ="
        f" {env.world_size} process(es) x {plan.accumulation} step(s) x {plan.micro_batch} clips; {config.solver.max_iter} iterations",
    )

    stream = micro_batches(train_set, ResumableSampler(len(train_set), env, seed=config.train.seed), state, plan.micro_batch, config, env)
    monitor = RunMonitor(config.run_dir, config.solver.max_iter, state.iteration, enabled=env.is_main, tensorboard=config.train.tensorboard)
    metrics = None
    started = time.perf_counter() - state.elapsed_seconds  # training time of this run, over its restarts
    cores = core_watch()  # fewer threads while other work shares the cores
    with stopping_run(lambda: how_to_go_on(checkpoints, state)):
        for iteration in range(state.iteration, config.solver.max_iter):
            lr = learning_rate(iteration, config.solver)
            set_learning_rate(trainables.optimizer, lr, config.solver.caffe_momentum)

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
                    trainables.scaler.scale(loss).backward()
                loss_sum += loss.item()
                data_time += tock - tick
                compute_time += time.perf_counter() - tock
            mean_loss = all_reduce_mean(loss_sum, env)  # every process sees a non-finite loss of any, and stops with it
            if not math.isfinite(mean_loss):
                # the loss of this iteration is that of the weights of the one before: their checkpoint is no good
                raise DivergedError(diverged(checkpoints, iteration + 1, f"the training loss is {mean_loss}", bad_from=iteration))
            if config.solver.clip_grad_norm > 0:
                trainables.scaler.unscale_(trainables.optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.solver.clip_grad_norm)
            trainables.scaler.step(trainables.optimizer)
            trainables.scaler.update()
            trainables.optimizer.zero_grad(set_to_none=True)
            state.iteration = done = iteration + 1
            if cores is not None and (change := cores.check()):
                _say(env, change)

            clips_per_second = plan.global_batch / max(data_time + compute_time, 1e-9)
            monitor.progress(loss=loss_sum, lr=lr, clips_s=round(clips_per_second, 1), data=f"{data_time / (data_time + compute_time):.0%}")
            if done % config.train.log_interval == 0 or done == config.solver.max_iter:
                monitor.record(
                    "train",
                    done,
                    {
                        "loss": mean_loss,
                        "lr": lr,
                        "epoch": state.epoch,
                        "clips_per_s": clips_per_second,
                        "data_time": data_time,
                        "compute_time": compute_time,
                        "bad_samples": train_set.bad_samples(),
                    },
                )

            evaluating = done == config.solver.max_iter or (config.train.eval_interval and done % config.train.eval_interval == 0)
            saving = done == config.solver.max_iter or done % config.train.checkpoint_interval == 0
            if (evaluating or saving) and not all(torch.isfinite(p).all() for p in model.parameters()):
                # a step can overflow the weights while the loss before it was finite: never a checkpoint of them
                raise DivergedError(diverged(checkpoints, done, "the weights are no longer finite numbers", bad_from=done))

            if evaluating:
                broadcast_buffers(model, env)
                metrics = evaluate(
                    model,
                    val_set,
                    env,
                    view_batch=config.test.view_batch,
                    num_workers=config.data.num_workers,
                    max_videos=config.train.eval_max_videos,
                    accel=accel,
                ).metrics
                set_train_mode(model, config.train.bn)
                monitor.message(f"iteration {done}: validation ({protocol.name}) {metrics.summary()}")
                monitor.record("val", done, metrics.as_dict())
                if env.is_main and metrics.top1 > state.best_top1:
                    state.best_top1 = metrics.top1
                    checkpoints.save_weights("best.pt", payload(iteration=done, metrics=metrics.as_dict()))

            if saving:
                state.elapsed_seconds = time.perf_counter() - started
                rng = gather_objects(capture_rng(env.device), env)  # every process's, for an exact resume
                if env.is_main:
                    checkpoints.save_state(trainables, state, payload(), rng)
                barrier(env)

        bad = train_set.bad_samples()
        monitor.message(f"finished {config.solver.max_iter} iterations; {bad} bad training sample(s) skipped" + ("" if not bad else " (see log)"))
        monitor.close(plots=config.train.plots)
        if env.is_main:
            checkpoints.save_weights("final.pt", payload(iteration=config.solver.max_iter, elapsed_seconds=time.perf_counter() - started))
        barrier(env)
    return {"run_dir": str(config.run_dir), "metrics": None if metrics is None else metrics.as_dict(), "bad_samples": bad}


def claim_run_dir(config: Config, checkpoints: RunCheckpoints) -> Path | None:
    """The checkpoint the run resumes from (None: it starts afresh), once sure it writes over nothing of value.

    The run folder must be writable, and new or empty; or hold this run, which ``train.resume=auto``
    resumes from its newest iteration checkpoint (``train.resume=PATH`` inside it, from that one); or
    hold a run that ``artnet train`` started and that stopped before its first checkpoint, which starts
    again. Anything else is refused before any work (a finished run with ``train.resume=never``, a trained
    run with no iteration checkpoint left, files of the user's) unless ``train.overwrite=true``, which
    removes the previous run's files (:data:`RUN_FILES`, nothing else) first.
    """
    run_dir = output_folder(config.run_dir)
    resume = config.train.resume
    resume_from = checkpoints.resume_point(resume)
    inside = resume_from is not None and resume_from.resolve().is_relative_to(run_dir.resolve())
    found = [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]
    if config.train.overwrite:
        if inside and resume != "auto":
            raise ConfigError(f"train.overwrite=true would delete {resume_from}, which train.resume resumes from")
        resume_from = None if inside else resume_from
    elif inside:
        return resume_from  # this run, continued
    else:
        weights = [p for p in found if p.suffix == ".pt"] + checkpoints.iterations()
        restartable = not weights and written_by_artnet(run_dir / "config.yaml")
        if not restartable:
            elsewhere = "or choose another output_dir"
            if weights and resume == "never":
                what, how = "a trained run", f"train.resume=never would write over it: add train.overwrite=true to replace it, {elsewhere}"
            elif weights and resume == "auto":
                what, how = "a trained run and no iteration checkpoint to resume", f"add train.overwrite=true to train it again there, {elsewhere}"
            else:
                what, how = "a trained run" if weights else "files a new run would replace", f"add train.overwrite=true to replace them, {elsewhere}"
            refuse_replacing(run_dir, found, what, how)
    for path in found:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return resume_from


def how_to_go_on(checkpoints: RunCheckpoints, state: TrainingState) -> str:
    """What a stopped run says last: where the same command resumes from."""
    saved = checkpoints.iterations()
    where = f"from iteration {checkpoints.iteration_of(saved[-1])} ({saved[-1]})" if saved else "from the start (no checkpoint yet)"
    return f"training stopped at iteration {state.iteration}: the same command resumes {where}"


def diverged(checkpoints: RunCheckpoints, iteration: int, what: str, bad_from: int) -> str:
    """Why a run stopped that diverged, and how to go on: from its last good checkpoint (one before
    iteration ``bad_from``, whose weights gave a finite loss), more gently."""
    good = [path for path in checkpoints.iterations() if checkpoints.iteration_of(path) < bad_from]
    stopped = f"iteration {iteration}: {what}: the run diverged and stopped"
    gently = "a lower solver.base_lr (or solver.clip_grad_norm)"
    if not good:
        return f"{stopped}; no good checkpoint was written yet: train again with {gently} and train.overwrite=true"
    last = f"iteration {checkpoints.iteration_of(good[-1])}"
    return f"{stopped}; to go on from its last good checkpoint ({last}), add train.resume={good[-1]} and {gently}"


def micro_batches(dataset, sampler: ResumableSampler, position: TrainingState, size: int, config: Config, env: DistributedEnv) -> Iterator:
    """Endless ``(clips, labels)`` micro-batches, epoch after epoch, from the run's position on
    (``position.epoch`` and ``position.consumed``, which it keeps up to date).

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


def _auto_precision(config: Config, model: nn.Module, plan: BatchPlan, env: DistributedEnv, resumed: dict | None) -> str:
    """``train.precision: auto``: a resumed run keeps the precision it started with (``resumed``, its
    checkpoint, says which); a new one is chosen by the main process on as many probe clips as a step takes."""
    if resumed is not None:
        recorded = resumed.get("config", {}).get("train", {}).get("precision")
        if recorded in PRECISIONS:
            _say(env, f"precision auto: {recorded}, as the run was started")
            return recorded
    clips_per_step = plan.micro_batch * config.data.clip.num_segments  # TSN: every segment of every video is a clip
    example = probe_clips(config.data.clip, batch=clips_per_step).to(env.device)
    choice = on_main_process(lambda: choose_training_precision(model, example, channels_last=config.train.channels_last), env)
    _say(env, choice.reason)
    return choice.acceleration.precision


def _say(env: DistributedEnv, text: str) -> None:
    if env.is_main:
        print(text, flush=True)
