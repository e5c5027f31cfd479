"""Model speed on this CPU: clips/s, GMACs per clip and achieved GMAC/s, side by side.

    python benchmarks/model_speed.py                          # every variant, r3d_18, r2plus1d_18, fast paths
    python benchmarks/model_speed.py --quick                  # smoke run: small clips, one repeat, no compile
    python benchmarks/model_speed.py --models artnet_r18_d r3d_18 --repeats 5 --no-fast-paths

Two markdown tables go to stdout (progress goes to stderr):

1. fp32 eager: forward (inference: eval mode, ``torch.inference_mode``) and forward+backward
   (a training step without the optimizer: train mode, cross-entropy, ``backward``) of every
   artnet variant and of torchvision's ``r3d_18`` and ``r2plus1d_18`` (no weights). Achieved
   GMAC/s is the forward MACs per clip times clips/s; for forward+backward it counts the
   conventional 3x the forward MACs (the backward pass computes gradients for inputs and weights).
2. Fast CPU paths of one model (``--fast-model``, default ``artnet_r18_d``) through
   :class:`artnet.engine.acceleration.Acceleration`: bf16 autocast, channels_last_3d, both,
   and ``torch.compile``, for inference and a training step, each with its speed-up over fp32
   eager and the relative error ``||y - y_fp32|| / ||y_fp32||`` of its logits on the same clips.

The machine may be shared: measurements are interleaved round-robin (every model once per
round, median over rounds) so that a busy neighbour slows every row alike. Compare ratios
between rows of one run, not figures between runs.

A path whose convolutions have no fast kernel on this CPU (PyTorch runs bf16/fp16 3D
convolutions through a slow reference kernel where oneDNN lacks them, e.g. AVX2-only x86)
would take hours at full size: a one-convolution probe detects it, and that path is then
measured at batch 2 on 8x56x56 clips, beside fp32 eager at the same size (marked in the table).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

import artnet  # noqa: E402
from artnet.cli.parsing import parse_dims  # noqa: E402
from artnet.engine.acceleration import Acceleration, relative_error  # noqa: E402
from artnet.engine.auto_acceleration import choose_acceleration, kernel_slowdown, probe_clips  # noqa: E402
from artnet.engine.checkpoint import clip_spec, load_checkpoint, model_from_checkpoint  # noqa: E402
from artnet.machine import cpu_name  # noqa: E402
from artnet.models.complexity import count_parameters, profile  # noqa: E402
from artnet.table import format_table  # noqa: E402

TORCHVISION_MODELS = ("r3d_18", "r2plus1d_18")
PEER = "r3d_18"
TARGET_MODEL, TARGET_GMACS_RATIO, TARGET_SPEEDUP, TARGET_ERROR = "artnet_r18_d", 0.9, 2.5, 1e-2
CALIBRATION_CLIPS = 4
SLOW_PATH_FACTOR = 3.0  # a path whose probe convolution is this much slower than fp32 is measured small (20-50x seen)
SMALL_BATCH, SMALL_CLIP = 2, (8, 56, 56)  # BN in training mode needs a few values per channel
AUTO_GATE_CLIPS = 2  # the accuracy gate's clips; the timing runs at the benchmark's batch, as artnet test's does

FP32 = Acceleration()
FAST_PATHS = [
    FP32,
    Acceleration(channels_last=True),
    Acceleration(precision="bf16"),
    Acceleration(precision="bf16", channels_last=True),
    Acceleration(compile=True),
    Acceleration(channels_last=True, compile=True),
]


def log(message: str) -> None:
    print(f"[model_speed] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    cpu = cpu_name()
    tunables = os.environ.get("GLIBC_TUNABLES")  # malloc settings change the cost of large activations
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch threads, "
        f"{torch.backends.cpu.get_cpu_capability()}; torch {torch.__version__}"
        + (f"; GLIBC_TUNABLES={tunables}" if tunables else "")
    )


# --- models and their cost ---------------------------------------------------------------


def build(name: str, **options) -> nn.Module:
    if name in TORCHVISION_MODELS:
        from torchvision.models import video

        return getattr(video, name)(weights=None, num_classes=options.get("num_classes", 400))
    return artnet.create_model(name, **options)


def gmacs_per_clip(name: str, clip: tuple[int, int, int]) -> float:
    """Forward GMACs of one clip: artnet's own counter, or the same FlopCounterMode on meta tensors."""
    if name not in TORCHVISION_MODELS:
        return sum(stage.macs for stage in profile(name, clip)) / 1e9
    with torch.device("meta"):
        model, clips = build(name).eval(), torch.empty(1, 3, *clip)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(clips)
    return counter.get_total_flops() / 2 / 1e9


# --- what is timed -------------------------------------------------------------------------


def inference(model: nn.Module, clips: torch.Tensor, accel: Acceleration) -> torch.Tensor:
    with torch.inference_mode(), accel.autocast("cpu"):
        return model(clips)


def training_step(model: nn.Module, clips: torch.Tensor, labels: torch.Tensor, accel: Acceleration) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    with accel.autocast("cpu"):
        logits = model(clips)
        loss = F.cross_entropy(logits, labels)
    loss.backward()
    return logits.detach()


def round_robin(jobs: dict[str, Callable[[], object]], repeats: int, label: str, warm_up: bool = True) -> dict[str, float]:
    """Median seconds per job over ``repeats`` rounds that call every job once (after a warm-up round)."""
    times: dict[str, list[float]] = {key: [] for key in jobs}
    for round_index in range(0 if warm_up else 1, repeats + 1):
        for key, job in jobs.items():
            start = time.perf_counter()
            job()
            seconds = time.perf_counter() - start
            if round_index:
                times[key].append(seconds)
            log(f"{label} {key}: {f'round {round_index}/{repeats}' if round_index else 'warm-up'} {seconds:.2f} s")
    return {key: statistics.median(values) for key, values in times.items()}


# --- table 1: every model, fp32 eager ------------------------------------------------------


def model_table(names: list[str], batch: int, clip: tuple[int, int, int], repeats: int, train_repeats: int, judge: bool) -> str:
    clips = torch.randn(batch, 3, *clip)
    labels = torch.randint(0, 400, (batch,))
    models = {}
    for name in names:
        log(f"building {name}")
        models[name] = build(name)
    gmacs = {name: gmacs_per_clip(name, clip) for name in names}

    for model in models.values():
        model.eval()
    forward = round_robin({n: (lambda m=m: inference(m, clips, FP32)) for n, m in models.items()}, repeats, "forward")
    for model in models.values():
        model.train()
    backward = round_robin(
        {n: (lambda m=m: training_step(m, clips, labels, FP32)) for n, m in models.items()}, train_repeats, "forward+backward"
    )
    for model in models.values():
        model.zero_grad(set_to_none=True)

    def achieved(name: str) -> float:  # forward+backward GMAC/s
        return 3 * gmacs[name] * batch / backward[name]

    headers = ["model", "params (M)", "GMACs/clip", "fwd clips/s", "fwd GMAC/s", "fwd+bwd clips/s", "fwd+bwd GMAC/s"]
    rows = [
        [
            name,
            f"{count_parameters(models[name]) / 1e6:.2f}",
            f"{gmacs[name]:.2f}",
            f"{batch / forward[name]:.2f}",
            f"{gmacs[name] * batch / forward[name]:.1f}",
            f"{batch / backward[name]:.2f}",
            f"{achieved(name):.1f}",
        ]
        for name in names
    ]
    if PEER in names:
        headers.append(f"fwd+bwd GMAC/s vs {PEER}")
        for name, row in zip(names, rows):
            row.append(f"{achieved(name) / achieved(PEER):.2f}x")
    text = format_table(headers, rows)
    if judge and TARGET_MODEL in names and PEER in names:
        ratio = achieved(TARGET_MODEL) / achieved(PEER)
        verdict = "holds" if ratio >= TARGET_GMACS_RATIO else "misses"
        text += (
            f"\n\nTarget: {TARGET_MODEL} reaches >= {TARGET_GMACS_RATIO}x the achieved fwd+bwd GMAC/s of {PEER}: "
            f"{ratio:.2f}x, {verdict}. Per clip it trains {backward[PEER] / backward[TARGET_MODEL]:.2f}x as fast as {PEER}."
        )
    return text


# --- table 2: fast paths of one model ------------------------------------------------------


@dataclass
class PathResult:
    seconds: float
    eager_seconds: float  # fp32 eager, same clips, same run
    error: float
    batch: int
    clip: tuple[int, int, int]
    first_call: float  # seconds of the first call (compilation, when compiled)


def measure_paths(
    name: str, mode: str, paths: list[Acceleration], batch: int, clip: tuple[int, int, int], repeats: int
) -> dict[Acceleration, PathResult]:
    """Time fp32 eager and every path of one mode side by side, on the same weights and clips."""
    torch.manual_seed(0)
    base = build(name, dropout=0.0)  # no dropout: training logits of different paths are comparable
    clips = torch.randn(batch, 3, *clip)
    labels = torch.randint(0, 400, (batch,))
    _calibrate_batch_norm(base, torch.randn(CALIBRATION_CLIPS, 3, *clip))
    base.train(mode == "training")

    jobs, outputs, first_calls = {}, {}, {}
    for accel in [FP32] + [p for p in paths if p != FP32]:
        model = accel.apply(copy.deepcopy(base))
        x = accel.prepare_input(clips)
        if mode == "inference":
            job = lambda m=model, x=x, a=accel: inference(m, x, a)  # noqa: E731
        else:
            job = lambda m=model, x=x, a=accel: training_step(m, x, labels, a)  # noqa: E731
        log(f"{mode} {accel.name}: first call{' (compiling)' if accel.compile else ''}")
        start = time.perf_counter()
        outputs[accel] = job().float()  # the first call is the warm-up
        first_calls[accel] = time.perf_counter() - start
        jobs[accel] = job
    seconds = round_robin({a.name: job for a, job in jobs.items()}, repeats, f"{mode} {'x'.join(map(str, clip))}", warm_up=False)
    return {
        accel: PathResult(
            seconds[accel.name], seconds[FP32.name], relative_error(outputs[accel], outputs[FP32]), batch, clip, first_calls[accel]
        )
        for accel in paths
    }


def _calibrate_batch_norm(model: nn.Module, clips: torch.Tensor) -> None:
    """BN running statistics of random clips of the measured size: eval-mode logits of a sane network."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = None  # cumulative average: one batch sets the statistics
        m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(clips)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def fast_path_table(
    name: str, batch: int, clip: tuple[int, int, int], repeats: int, compile: bool, small_clip: tuple[int, int, int], judge: bool
) -> str:
    paths = [p for p in FAST_PATHS if compile or not p.compile]
    slowdowns = {p: kernel_slowdown(p) for p in paths if p.precision != "fp32"}
    slow = [p for p, factor in slowdowns.items() if factor > SLOW_PATH_FACTOR]
    for p in slow:
        log(f"{p.name}: a 3D convolution runs {slowdowns[p]:.0f}x slower than fp32 here; measured at batch {SMALL_BATCH}")
    rows, best = [], None
    for mode in ("inference", "training"):
        results = measure_paths(name, mode, [p for p in paths if p not in slow], batch, clip, repeats)
        if slow:
            results.update(measure_paths(name, mode, slow, SMALL_BATCH, small_clip, 1))
        for accel in paths:
            result = results[accel]
            speedup = result.eager_seconds / result.seconds
            note = f"batch {result.batch}, {'x'.join(map(str, result.clip))}"
            if accel in slow:
                note += f", beside fp32 at that size (no fast kernel: a conv3d {slowdowns[accel]:.0f}x slower)"
            if accel.compile:
                note += f"; first call {result.first_call:.0f} s"
            rows.append([mode, accel.name, f"{result.batch / result.seconds:.2f}", f"{speedup:.2f}x", f"{result.error:.1e}", note])
            if mode == "inference" and result.error <= TARGET_ERROR and (best is None or speedup > best[1]):
                best = (accel.name, speedup, result.error)
    text = format_table(["mode", "path", "clips/s", "vs fp32 eager", "rel. error", "measured at"], rows)
    if not judge:
        return text
    verdict = "holds" if best[1] >= TARGET_SPEEDUP else "misses"
    text += (
        f"\n\nTarget: the fastest inference path at rel. error <= {TARGET_ERROR:g} reaches >= {TARGET_SPEEDUP}x "
        f"fp32 eager: {best[0]}, {best[1]:.2f}x at {best[2]:.1e}, {verdict}."
    )
    return text


# --- what `acceleration: auto` picks ------------------------------------------------------


def auto_choice(name: str, clip: tuple[int, int, int], batch: int, checkpoint: str | None = None) -> str:
    """What ``acceleration: auto`` picks here for ``batch`` clips per call, probed afresh (a throw-away
    cache): for the random weights of the fast-path table (BN calibrated as there), or for a trained
    checkpoint at its clip size."""
    if checkpoint:
        payload = load_checkpoint(checkpoint)
        model = model_from_checkpoint(payload, source=checkpoint)
        example = probe_clips(clip_spec(payload), batch=AUTO_GATE_CLIPS)
        what = f"{checkpoint} ({payload['model']['name']}, trained weights)"
    else:
        torch.manual_seed(0)
        model = build(name, dropout=0.0)
        _calibrate_batch_norm(model, torch.randn(CALIBRATION_CLIPS, 3, *clip))
        example, what = torch.randn(AUTO_GATE_CLIPS, 3, *clip), f"{name} (random weights)"
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        choice = choose_acceleration(model, example, batch=batch, cache=Path(folder) / "acceleration.json")
    shape = "x".join(map(str, example.shape[2:]))
    return f"`acceleration: auto` for {what}, {shape}, batch {batch}, in {time.perf_counter() - started:.0f} s: {choice.reason}"


# --- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    choices = artnet.list_models() + list(TORCHVISION_MODELS)
    parser.add_argument("--batch", type=int, default=8, help="clips per batch (default 8)")
    parser.add_argument("--clip", default="16x112x112", help="T x H x W of a clip (default 16x112x112)")
    parser.add_argument("--models", nargs="+", choices=choices, default=choices, metavar="NAME", help="default: all")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed rounds after one warm-up (default 3; forward+backward: one less, at least 1)"
    )
    parser.add_argument("--fast-model", default=TARGET_MODEL, choices=artnet.list_models(), help="model of the fast-path table")
    parser.add_argument("--no-fast-paths", action="store_true", help="only the fp32 eager table")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile paths (minutes of compiling)")
    parser.add_argument("--no-auto", action="store_true", help="leave out what `acceleration: auto` picks")
    parser.add_argument("--auto-checkpoint", default=None, metavar="CKPT", help="what auto picks for this trained model (default: the random weights of --fast-model)")
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 2, 8x56x56 clips, one repeat, no compile")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.clip, args.repeats, args.no_compile = 2, "8x56x56", 1, True
    try:
        clip = parse_dims(args.clip, "--clip", ("T", "H", "W"), "16x112x112")
    except ValueError as error:
        parser.error(str(error))
    if args.batch < 1 or args.repeats < 1:
        parser.error("--batch and --repeats must be at least 1")
    small_clip = tuple(min(a, b) for a, b in zip(clip, SMALL_CLIP if not args.quick else (4, 32, 32)))

    print(f"Machine: {machine()}\n")
    print(f"## fp32 eager, batch {args.batch}, {args.clip} clips\n")
    judge = not args.quick  # one round on small clips says nothing about the targets
    print(model_table(args.models, args.batch, clip, args.repeats, max(1, args.repeats - 1), judge), flush=True)
    if not args.no_fast_paths:
        print(f"\n## Fast CPU paths of {args.fast_model}, batch {args.batch}, {args.clip} clips\n")
        print(fast_path_table(args.fast_model, args.batch, clip, args.repeats, not args.no_compile, small_clip, judge), flush=True)
    if not args.no_auto:
        print(f"\n{auto_choice(args.fast_model, clip, args.batch, args.auto_checkpoint)}", flush=True)
    if not judge:
        print("\n(--quick: a smoke run; the targets are judged by full runs only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
