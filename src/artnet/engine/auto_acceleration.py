"""``acceleration: auto``: the fastest way to run a model on this machine that stays close to fp32.

Which path pays off depends on the machine. On a CPU with native bf16 (AVX512-BF16, AMX), bf16
autocast with channels_last runs a 3D CNN several times as fast as fp32; on an AVX2-only CPU the
same bf16 path goes through PyTorch's reference 3D convolution and is tens of times slower. So,
on first use on a machine, :func:`choose_acceleration` times the candidates on the model to be
run and keeps their speeds::

    choice = resolve_acceleration("auto", model, probe_clips(ClipSpec()), batch=10)   # 10 clips a call
    print(choice.reason)       # one line: what was chosen, how much faster, at what error, why
    runner = choice.acceleration.apply(model)

How it chooses:

1. Candidates, in order of how far they depart from fp32 eager: fp32, fp32 + channels_last,
   bf16, bf16 + channels_last, then fp16 and fp16 + channels_last where the device has fp16
   kernels (CUDA; a CPU whose oneDNN has native fp16). ``compile`` is never probed: compiling
   takes a minute or more.
2. The probe's batch is the run's (the caller's ``batch``: ``artnet test``'s view batch), or
   fewer where one fp32 call of that many clips would take more than :data:`PROBE_CALL_S`
   (:func:`probe_batch`): which path is fastest depends on the batch (at a batch of two,
   autocast's casts of the weights on every call can cost a small model what bf16 saves).
3. A reduced precision whose one 3D convolution runs more than :data:`ABANDON_FACTOR` times
   slower than fp32's has no fast kernel here and is dropped before the model runs; so is a
   candidate whose first call on the probe batch takes more than :data:`ABANDON_FACTOR` times
   fp32's first call.
4. Accuracy gate: the candidate's logits on the probe batch must be within :data:`MAX_ERROR` of
   fp32's by :func:`~artnet.engine.acceleration.relative_error`, i.e.
   ``||y - y_fp32||_F / ||y_fp32||_F`` over the whole ``(N, K)`` logits of the same weights and
   clips (NaN or infinite logits fail).
5. The survivors of 3., inaccurate ones too (a speed is of the architecture, an error of the
   weights), run in interleaved rounds (each once per round, so that a busy neighbour slows all
   alike), ``rounds`` of them or fewer once ``budget_s`` is spent (at least :data:`MIN_ROUNDS`);
   a candidate's time is its median.
6. Walking the candidates that pass 4. in the order of 1., one replaces the pick only when it
   runs at least :data:`CLEAR_GAIN` times as fast as the pick: fp32 stays unless something is
   clearly faster, and of two close candidates the more exact one wins.

The speeds (not the choice) are cached in ``acceleration.json`` under
:func:`artnet.machine.cache_dir`, keyed by :func:`probe_key`: what decides which kernels run
(:func:`artnet.machine.kernel_identity`: the CPU's name and kernel ISA flags, or the GPU's name
and compute capability, and torch's version), the model (its class and parameter count, or a name
the caller gives) and the run's input shape. The accuracy gate depends on the weights (random
weights amplify rounding, trained ones do not), so with cached speeds it runs again for the
weights at hand (:func:`gate`: a call of each timed path on the few example clips), and the
choice is made from the cached speeds and these errors. Writes are atomic; an unreadable or
corrupt file is ignored and rewritten. ``reprobe=True`` or ``ARTNET_REPROBE=1`` probes again and
replaces the entry.

With several processes on one machine (torchrun), let one process choose and broadcast the
choice: processes probing side by side would time each other's contention.

``train.precision: auto`` is :func:`choose_training_precision`: fp32 or bf16 autocast, by the same
kernel check, the training gradient check of :meth:`Acceleration.check_training` and timed
training steps, cached under a key of its own.
"""

from __future__ import annotations

import copy
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..data.clip import ClipSpec
from ..errors import OutputError
from ..machine import cache_dir, device_name, kernel_identity
from ..outputs import atomic_write
from .acceleration import Acceleration, parse_setting, relative_error
from .distributed import DistributedEnv, on_main_process

ABANDON_FACTOR = 5.0  # dropped at once when this many times slower than fp32 (no fast kernel: far slower than this)
MAX_ERROR = 1e-2  # relative error of the logits against fp32
CLEAR_GAIN = 1.10  # a less exact candidate must be this many times as fast as the pick
MIN_ROUNDS = 2
PROBE_CALL_S = 0.5  # the probe batch grows towards the run's while one fp32 call on it stays under this
CACHE_FILE = "acceleration.json"
CACHE_FORMAT = 2  # 2: the speeds of every path, not the choice (the accuracy gate is of the weights)
REPROBE_ENV = "ARTNET_REPROBE"

FP32 = Acceleration()

# time_call(stage, acceleration, call) -> (call's output, seconds); stage: "kernel", "first call" or "round"
TimeCall = Callable[[str, Acceleration, Callable[[], torch.Tensor]], "tuple[torch.Tensor, float]"]


def measure(stage: str, accel: Acceleration, call: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    """Wall seconds of ``call()``, waiting for the GPU to finish it."""
    start = time.perf_counter()
    out = call()
    if out.is_cuda:
        torch.cuda.synchronize(out.device)
    return out, time.perf_counter() - start


@dataclass(frozen=True)
class Trial:
    """What became of one candidate."""

    acceleration: Acceleration
    verdict: str  # "ok" | "slow" | "inaccurate" | "failed" | "unchecked" (fp32's own logits overflow)
    speedup: float = math.nan  # fp32's median seconds over this one's ("ok" and "inaccurate": both were timed)
    error: float = math.nan  # relative error of its logits against fp32's
    note: str = ""  # why it was dropped

    def describe(self) -> str:
        if self.verdict == "ok":
            precise = self.acceleration.precision == "fp32"
            return f"{self.acceleration.name} {self.speedup:.2f}x" + ("" if precise else f" at {self.error:.0e}")
        if self.verdict == "inaccurate":
            return f"{self.acceleration.name} {self.speedup:.2f}x: {self.note}"
        return f"{self.acceleration.name}: {self.note}"


@dataclass(frozen=True)
class Choice:
    acceleration: Acceleration
    reason: str  # one line for the log: the summary, and where it came from (probed, cached, as set)
    summary: str = ""  # what was chosen and why: the speed-up, the error, what the others did
    trials: tuple[Trial, ...] = ()  # empty when the choice was given


def resolve_acceleration(setting: str, model: nn.Module, example: torch.Tensor, **options) -> Choice:
    """The acceleration a user's setting asks for: ``"auto"`` -> :func:`choose_acceleration`
    (``options`` go there), anything else is parsed (:meth:`Acceleration.parse`) and used as set."""
    accel = parse_setting(setting)
    if accel is not None:
        return Choice(accel, f"acceleration: {accel.name} (as set)", "as set")
    return choose_acceleration(model, example, **options)


def acceleration_for(
    setting: str, model: nn.Module, clip: ClipSpec, env: DistributedEnv, identity: str | None = None, batch: int | None = None
) -> Choice:
    """What ``test`` / ``predict`` run ``model`` with on ``clip`` clips, ``batch`` of them per call: the
    main process resolves the setting (probing on a first ``auto``), every process gets its choice
    (probes side by side would time each other's contention)."""
    return on_main_process(
        lambda: resolve_acceleration(setting, model, probe_clips(clip).to(env.device), identity=identity, batch=batch), env
    )


def probe_clips(clip: ClipSpec, batch: int = 2, seed: int = 0, contrast: int = 128) -> torch.Tensor:
    """A probe batch of ``clip.input_shape`` clips: random pixels (within ``contrast`` of mid-grey; 128: the
    whole range), normalised as the model's inputs are, so that its activations have the scale they have in use."""
    if not 1 <= contrast <= 128:
        raise ValueError(f"contrast {contrast}: pixels lie within 1 to 128 of mid-grey")
    channels, frames, height, width = clip.input_shape
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, frames, height, width, channels)
    pixels = torch.randint(128 - contrast, 128 + contrast, shape, dtype=torch.uint8, generator=generator)
    return clip.normalize(pixels)


def probe_key(model: nn.Module, example: torch.Tensor, identity: str | None = None, batch: int | None = None) -> str:
    """The cache key: kernels (device, ISA, torch version) | the model | the run's input shape
    (``batch`` clips of ``example``'s, default as many as it has)."""
    model_identity = identity or f"{type(model).__name__} with {sum(p.numel() for p in model.parameters())} parameters"
    shape = (batch or len(example), *example.shape[1:])
    return f"{kernel_identity(example.device)} | {model_identity} | input {'x'.join(map(str, shape))}"


def candidates(device: torch.device) -> list[Acceleration]:
    """What is probed on ``device``, in order of departure from fp32 eager."""
    precisions = ["fp32", "bf16", "fp16"]
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        precisions.remove("bf16")
    if device.type == "cpu" and not _cpu_has_fp16_kernels():
        precisions.remove("fp16")  # bf16 is probed everywhere: the kernel check drops it in milliseconds
    return [Acceleration(precision, channels_last) for precision in precisions for channels_last in (False, True)]


def _cpu_has_fp16_kernels() -> bool:
    try:  # a private query: oneDNN's native fp16 (AVX512-FP16, AMX-FP16); without it fp16 is emulated
        return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):
        return False


def choose_acceleration(
    model: nn.Module,
    example: torch.Tensor,
    *,
    batch: int | None = None,
    identity: str | None = None,
    cache: str | Path | None = None,
    reprobe: bool | None = None,
    time_call: TimeCall = measure,
    rounds: int = 5,
    budget_s: float = 20.0,
) -> Choice:
    """The acceleration to run ``model`` with on its device (see the module's doc for how).

    Args:
        model: the model to be run, on its device (left as it was: its train/eval mode and
            memory format are restored or untouched; channels_last is probed on a copy).
        example: a few probe clips, e.g. :func:`probe_clips`: the accuracy gate's batch, repeated
            to the probe's batch for the timing. Moved to the model's device.
        batch: the clips per call of the run (default: as many as ``example`` has). Which path is
            fastest depends on it: a small batch leaves autocast's per-call cost of casting the
            weights unamortised. The timing runs at this batch or at :func:`probe_batch`'s, the smaller.
        identity: names the model in the cache key (default: its class and parameter count).
        cache: the cache file (default ``<cache_dir()>/acceleration.json``).
        reprobe: probe even when the speeds are cached (default: ``$ARTNET_REPROBE`` set and not 0).
        time_call: how a call is timed (tests give a fake clock).
        rounds, budget_s: at most this many timed rounds, fewer once this many seconds are spent.
    """
    device = next(model.parameters()).device
    example = example.to(device)
    batch = batch or len(example)
    key = probe_key(model, example, identity, batch)
    accelerations = candidates(device)
    path, entries, cached = _open_cache(cache, reprobe, key, accelerations)

    started = time.perf_counter()
    if cached is not None:
        speeds, probed = cached
        trials = gate(model, example, speeds)
        origin = f"speeds cached in {path} ({probed}), accuracy checked on these weights; {REPROBE_ENV}=1 probes again"
    else:
        timed_batch = batch if batch <= len(example) else probe_batch(model, example, batch, time_call)
        trials = probe(model, repeat_clips(example, timed_batch), accelerations, time_call, rounds, budget_s)
        origin = f"probed in {time.perf_counter() - started:.0f} s at batch {timed_batch}"
        if any(trial.verdict == "unchecked" for trial in trials):
            origin += ", not cached: these weights overflow, others of the same model may not"
        else:
            origin += _store_speeds(path, entries, key, trials, timed_batch)
    pick = pick_fastest(trials)
    summary = summarize(pick, trials, device_name(device))
    return Choice(pick.acceleration, f"acceleration auto: {summary}; {origin}", summary, tuple(trials))


def probe_batch(model: nn.Module, example: torch.Tensor, batch: int, time_call: TimeCall = measure) -> int:
    """The clips a probe call takes: ``batch``, or fewer where one fp32 call of so many would take
    more than :data:`PROBE_CALL_S` (from the fastest of up to five calls on ``example`` after a warm-up
    one, fewer once they have taken PROBE_CALL_S: a neighbour's burst on shared cores slows some calls
    many times over); at least ``len(example)``."""
    was_training = model.training
    model.eval()
    try:

        def run() -> torch.Tensor:
            with torch.inference_mode():
                return model(example)

        run()
        timed: list[float] = []
        while len(timed) < 5 and sum(timed) < PROBE_CALL_S:
            timed.append(time_call("size", FP32, run)[1])
        seconds = min(timed)
    finally:
        model.train(was_training)
    fitting = int(PROBE_CALL_S * len(example) / seconds) if seconds > 0 else batch
    return max(len(example), min(batch, fitting))


def repeat_clips(example: torch.Tensor, batch: int) -> torch.Tensor:
    """``batch`` clips: ``example``'s, over again (a path's speed and error are the same on copies)."""
    return example[torch.arange(batch, device=example.device) % len(example)]


class _Runs:
    """Calls of ``model`` on ``example`` under each acceleration, channels_last ones on a copy of the model."""

    def __init__(self, model: nn.Module, example: torch.Tensor):
        self.example = example
        self.layouts: dict[bool, nn.Module] = {False: model}

    def __call__(self, accel: Acceleration) -> Callable[[], torch.Tensor]:
        if accel.channels_last not in self.layouts:
            self.layouts[accel.channels_last] = accel.apply(copy.deepcopy(self.layouts[False]))  # apply() converts in place
        net, x = self.layouts[accel.channels_last], accel.prepare_input(self.example)

        def run() -> torch.Tensor:
            with torch.inference_mode(), accel.autocast(self.example.device.type):
                return net(x)

        return run


def _judged(accel: Acceleration, logits: torch.Tensor, reference: torch.Tensor, speedup: float = math.nan) -> Trial:
    """Step 4 of the module's doc: ``accel``'s logits against fp32's, a timed path's speed-up kept either way."""
    error = relative_error(logits, reference)
    if error <= MAX_ERROR:
        return Trial(accel, "ok", speedup=speedup, error=error)
    problem = f"rel. error {error:.1e} > {MAX_ERROR:g}" if math.isfinite(error) else "logits overflow"
    return Trial(accel, "inaccurate", speedup=speedup, error=error, note=problem)


def _failed(accel: Acceleration, failure: Exception) -> Trial:
    return Trial(accel, "failed", note=f"failed ({type(failure).__name__}: {' '.join(str(failure).split())[:120]})")


def _unchecked(accelerations: list[Acceleration]) -> list[Trial]:
    return [Trial(FP32, "ok", speedup=1.0, error=0.0)] + [
        Trial(accel, "unchecked", note="not tried: fp32's logits are not finite") for accel in accelerations[1:]
    ]


def probe(
    model: nn.Module,
    example: torch.Tensor,
    accelerations: list[Acceleration],
    time_call: TimeCall = measure,
    rounds: int = 5,
    budget_s: float = 20.0,
) -> list[Trial]:
    """Steps 3-5 of the module's doc: one :class:`Trial` per acceleration (the first must be fp32).
    Every path with a fast kernel is timed, an inaccurate one too: its speed holds for other weights."""
    if accelerations[0] != FP32:
        raise ValueError("the first candidate is the fp32 reference")
    was_training = model.training
    runs = _Runs(model, example)
    model.eval()
    try:
        jobs = {FP32: runs(FP32)}
        reference, fp32_first = time_call("first call", FP32, jobs[FP32])
        if not torch.isfinite(reference).all():
            return _unchecked(accelerations)
        trials: dict[Acceleration, Trial] = {}
        logits = {FP32: reference}
        for accel in accelerations[1:]:
            try:
                if accel.precision != FP32.precision:
                    slowdown = kernel_slowdown(accel, example.device, time_call)
                    if slowdown > ABANDON_FACTOR:
                        note = f"no fast kernel (a 3D convolution {slowdown:.0f}x slower than fp32)"
                        trials[accel] = Trial(accel, "slow", note=note)
                        continue
                run = runs(accel)
                output, first = time_call("first call", accel, run)
                if first > ABANDON_FACTOR * fp32_first:
                    trials[accel] = Trial(accel, "slow", note=f"first call {first / fp32_first:.0f}x as long as fp32's")
                    continue
            # A precision the device lacks, a kernel that is missing, memory for a second copy: whatever
            # stops a candidate here only rules it out; the fp32 reference above is not guarded.
            except Exception as failure:  # noqa: BLE001
                trials[accel] = _failed(accel, failure)
                continue
            jobs[accel], logits[accel] = run, output

        seconds = _median_seconds(jobs, time_call, rounds, budget_s)
    finally:
        model.train(was_training)
    for accel in jobs:
        trials[accel] = _judged(accel, logits[accel], reference, seconds[FP32] / seconds[accel])
    return [trials[accel] for accel in accelerations]


def _median_seconds(jobs: dict[Acceleration, Callable[[], torch.Tensor]], time_call: TimeCall, rounds: int, budget_s: float) -> dict[Acceleration, float]:
    """Step 5 of the module's doc: each job once per round (a busy neighbour slows all alike), ``rounds``
    rounds or fewer once ``budget_s`` is spent (at least MIN_ROUNDS); each job's median seconds."""
    seconds: dict[Acceleration, list[float]] = {accel: [] for accel in jobs}
    started = time.perf_counter()
    for round_index in range(max(rounds, MIN_ROUNDS)):
        if round_index >= MIN_ROUNDS and time.perf_counter() - started > budget_s:
            break
        for accel, run in jobs.items():
            seconds[accel].append(time_call("round", accel, run)[1])
    return {accel: statistics.median(times) for accel, times in seconds.items()}


def gate(model: nn.Module, example: torch.Tensor, speeds: list[Trial]) -> list[Trial]:
    """Step 4 of the module's doc for the weights at hand, on cached speeds (``speeds``: a probe's
    trials of another model of the same architecture): each timed path's logits on ``example``
    against fp32's; the paths the probe dropped as slow or failed stay dropped."""
    was_training = model.training
    runs = _Runs(model, example)
    model.eval()
    try:
        reference = runs(FP32)()
        if not torch.isfinite(reference).all():
            return _unchecked([trial.acceleration for trial in speeds])
        judged = {FP32: _judged(FP32, reference, reference, speedup=1.0)}
        for trial in speeds[1:]:
            if math.isfinite(trial.speedup):
                accel = trial.acceleration
                try:
                    judged[accel] = _judged(accel, runs(accel)(), reference, trial.speedup)
                except Exception as failure:  # noqa: BLE001  (as in probe: it only rules the path out)
                    judged[accel] = _failed(accel, failure)
    finally:
        model.train(was_training)
    return [judged.get(trial.acceleration, trial) for trial in speeds]


def kernel_slowdown(accel: Acceleration, device: torch.device | str = "cpu", time_call: TimeCall = measure, rounds: int = 3) -> float:
    """How many times longer one 3D convolution takes under ``accel`` than in fp32 in the same
    layout (best of interleaved rounds after a warm-up): tens where the precision has no fast kernel."""
    conv = nn.Conv3d(32, 32, 3, padding=1, bias=False).to(device)
    clips = torch.randn(1, 32, 4, 16, 16, device=device)
    reference = Acceleration(channels_last=accel.channels_last)
    calls = {}
    for path in (reference, accel):
        layer, x = path.apply(copy.deepcopy(conv)), path.prepare_input(clips)

        def call(layer=layer, x=x, path=path) -> torch.Tensor:
            with torch.inference_mode(), path.autocast(torch.device(device).type):
                return layer(x)

        calls[path] = call
    best = {path: math.inf for path in calls}
    for round_index in range(rounds + 1):
        for path, call in calls.items():
            seconds = time_call("kernel", path, call)[1]
            if round_index:  # round 0 warms up
                best[path] = min(best[path], seconds)
    return best[accel] / best[reference]


def pick_fastest(trials: list[Trial]) -> Trial:
    """Step 6 of the module's doc: ``trials`` in order of departure from fp32, the first fp32."""
    pick = trials[0]
    for trial in trials[1:]:
        if trial.verdict == "ok" and trial.speedup >= CLEAR_GAIN * pick.speedup:
            pick = trial
    return pick


def summarize(pick: Trial, trials: list[Trial], where: str) -> str:
    """``bf16 + channels_last, 2.61x fp32 at rel. error 4e-03 on <CPU> (fp32 + channels_last 1.20x, ...)``."""
    if pick.acceleration == FP32:
        head = f"fp32 on {where}"
    else:
        head = f"{pick.acceleration.name}, {pick.speedup:.2f}x fp32 at rel. error {pick.error:.0e} on {where}"
    others = [trial.describe() for trial in trials if trial is not pick and trial.acceleration != FP32]
    return head + (f" (others: {'; '.join(others)}; a path must beat the more exact pick before it by {CLEAR_GAIN:.2f}x)" if others else "")


# --- training: ``train.precision: auto`` -------------------------------------------------------

TRAINING_PRECISIONS = ("fp32", "bf16")  # fp16 trains with a loss scaler and can underflow: a setting to make by hand


def choose_training_precision(
    model: nn.Module,
    example: torch.Tensor,
    *,
    channels_last: bool = False,
    identity: str | None = None,
    cache: str | Path | None = None,
    reprobe: bool | None = None,
    time_call: TimeCall = measure,
    rounds: int = 3,
    budget_s: float = 20.0,
) -> Choice:
    """``train.precision: auto``: bf16 autocast where it trains right and clearly faster here, else fp32.

    bf16 is ruled out where its 3D convolution has no fast kernel (:func:`kernel_slowdown`) or, on a
    CPU, computes wrong weight gradients (:meth:`Acceleration.check_training`: oneDNN's AVX-512
    kernel without AMX). Otherwise a training step (forward, cross-entropy, backward) of a copy of
    ``model``, in its training mode, on ``example`` (a batch of the run's size, e.g.
    :func:`probe_clips`) is timed in both precisions in interleaved rounds, and bf16 is the pick
    when it is at least CLEAR_GAIN times as fast. There is no accuracy gate on the weights: a
    training's result is not fp32's in any precision, and the gradient check is of the kernels.
    The speeds are cached beside the inference probe's, under a key of their own.
    """
    device = next(model.parameters()).device
    example = example.to(device)
    candidates = [Acceleration(precision, channels_last) for precision in TRAINING_PRECISIONS]
    key = f"training | {probe_key(model, example, identity)}"
    path, entries, cached = _open_cache(cache, reprobe, key, candidates)
    started = time.perf_counter()
    if cached is not None:
        speeds, probed = cached
        trials = [Trial(t.acceleration, "ok", speedup=t.speedup) if math.isfinite(t.speedup) else t for t in speeds]
        origin = f"speeds cached in {path} ({probed}); {REPROBE_ENV}=1 probes again"
    else:
        trials = _probe_training(model, example, candidates, time_call, rounds, budget_s)
        origin = f"probed in {time.perf_counter() - started:.0f} s at batch {len(example)}"
        origin += _store_speeds(path, entries, key, trials, len(example))
    pick = pick_fastest(trials)
    where = device_name(device)
    if pick.acceleration.precision == "fp32":
        head = f"fp32 on {where}"
    else:
        head = f"{pick.acceleration.precision}, {pick.speedup:.2f}x fp32 a training step on {where}"
    others = [
        f"{t.acceleration.precision} {t.speedup:.2f}x, under the {CLEAR_GAIN:.2f}x it must gain" if t.verdict == "ok" else f"{t.acceleration.precision}: {t.note}"
        for t in trials
        if t is not pick and t.acceleration.precision != "fp32"
    ]
    summary = head + (f" ({'; '.join(others)})" if others else "")
    return Choice(pick.acceleration, f"precision auto: {summary}; {origin}", summary, tuple(trials))


def _probe_training(
    model: nn.Module, example: torch.Tensor, candidates: list[Acceleration], time_call: TimeCall, rounds: int, budget_s: float
) -> list[Trial]:
    """The trials of :func:`choose_training_precision`: the kernel and gradient checks, then the timed steps."""
    trials: dict[Acceleration, Trial] = {}
    jobs = {}
    for accel in candidates:
        if accel.precision != "fp32":
            slowdown = kernel_slowdown(accel, example.device, time_call)
            if slowdown > ABANDON_FACTOR:
                trials[accel] = Trial(accel, "slow", note=f"no fast kernel (a 3D convolution {slowdown:.0f}x slower than fp32)")
                continue
            fault = accel.training_fault(example.device.type)
            if fault is not None:
                trials[accel] = Trial(accel, "failed", note=fault)
                continue
        jobs[accel] = _training_step(model, example, accel)
    for accel, run in list(jobs.items()):
        try:
            time_call("first call", accel, run)  # the warm-up (and oneDNN's kernel creation)
        except Exception as failure:  # noqa: BLE001  (as in probe: it only rules the path out; fp32 is not guarded)
            if accel.precision == "fp32":
                raise
            trials[accel] = _failed(accel, failure)
            del jobs[accel]
    seconds = _median_seconds(jobs, time_call, rounds, budget_s)
    for accel in jobs:
        trials[accel] = Trial(accel, "ok", speedup=seconds[candidates[0]] / seconds[accel])
    return [trials[accel] for accel in candidates]


def _training_step(model: nn.Module, example: torch.Tensor, accel: Acceleration) -> Callable[[], torch.Tensor]:
    """One training step of a copy of ``model`` (its modes kept: frozen BN stays frozen) under ``accel``."""
    net = accel.apply(copy.deepcopy(model))
    x = accel.prepare_input(example)
    labels = torch.zeros(len(example), dtype=torch.long, device=example.device)

    def step() -> torch.Tensor:
        net.zero_grad(set_to_none=True)
        with accel.autocast(example.device.type):
            logits = net(x)
        F.cross_entropy(logits.float(), labels).backward()
        return logits.detach()

    return step


# --- the cache --------------------------------------------------------------------------------


def _open_cache(
    cache: str | Path | None, reprobe: bool | None, key: str, accelerations: list[Acceleration]
) -> tuple[Path, dict[str, dict], tuple[list[Trial], str] | None]:
    """The cache file (``cache``, default ``<cache_dir()>/acceleration.json``), its entries, and the
    speeds cached under ``key`` for ``accelerations`` (None when asked to probe again: ``reprobe``,
    default ``$ARTNET_REPROBE`` set and not 0)."""
    path = Path(cache) if cache is not None else cache_dir() / CACHE_FILE
    if reprobe is None:
        reprobe = os.environ.get(REPROBE_ENV, "") not in ("", "0")
    entries = _read_cache(path)
    return path, entries, None if reprobe else _cached_speeds(entries.get(key), accelerations)


def _read_cache(path: Path) -> dict[str, dict]:
    """The cached speeds; a missing, unreadable or corrupt file counts as empty (and is rewritten)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("choices"), dict):
        return {}
    return data["choices"]


def _speed_entry(trial: Trial) -> dict:
    """What the cache keeps of a probe's trial: its speed-up, or why it was dropped (not its error: that is of the weights)."""
    if math.isfinite(trial.speedup):
        return {"speedup": trial.speedup}
    return {"verdict": trial.verdict, "note": trial.note}


def _cached_speeds(entry: object, accelerations: list[Acceleration]) -> tuple[list[Trial], str] | None:
    """The cached trials (speeds only) of ``accelerations`` and when they were probed, or None when
    the entry is missing, malformed or of other candidates."""
    if not isinstance(entry, dict) or not isinstance(entry.get("speeds"), dict) or not isinstance(entry.get("probed"), str):
        return None
    speeds = entry["speeds"]
    if set(speeds) != {accel.name for accel in accelerations}:
        return None
    trials = []
    for accel in accelerations:
        value = speeds[accel.name]
        if not isinstance(value, dict):
            return None
        speedup = value.get("speedup")
        if isinstance(speedup, (int, float)) and not isinstance(speedup, bool) and math.isfinite(speedup) and speedup > 0:
            trials.append(Trial(accel, "timed", speedup=float(speedup)))
        elif value.get("verdict") in ("slow", "failed") and isinstance(value.get("note"), str):
            trials.append(Trial(accel, value["verdict"], note=value["note"]))
        else:
            return None
    if not math.isfinite(trials[0].speedup):
        return None
    return trials, entry["probed"]


def _store_speeds(path: Path, entries: dict[str, dict], key: str, trials: list[Trial], batch: int) -> str:
    """Cache a probe's speeds under ``key``; what the log line says of it (a failed write leaves the choice standing)."""
    entries[key] = {
        "speeds": {trial.acceleration.name: _speed_entry(trial) for trial in trials},
        "probed": f"probed at batch {batch} on {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
    }
    try:
        _write_cache(path, entries)
        return f", speeds cached in {path}"
    except OSError as error:
        return f", not cached ({error.strerror}: {path})"
    except OutputError as error:  # a write that failed (a full disk)
        return f", not cached ({error})"


def _write_cache(path: Path, entries: dict[str, dict]) -> None:
    """Replace the file atomically: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as file:
        json.dump({"format": CACHE_FORMAT, "choices": entries}, file, indent=2, sort_keys=True)
        file.write("\n")
