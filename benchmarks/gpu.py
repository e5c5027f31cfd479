"""One NVIDIA GPU, as it is: training and test speed of every variant and fast path, whether the
data loader keeps up, and a DDP step, in at most 8 minutes.

    python benchmarks/gpu.py                              # writes gpu_benchmark.json beside the table
    python benchmarks/gpu.py --budget 300 --out run.json
    python benchmarks/gpu.py --dry-run --out dry.json     # CPU, tiny sizes: every code path but CUDA's (the tests run it)

One markdown table goes to stdout (progress to stderr), every cell to the JSON file:

* ``train``: clips/s of a training step (forward, cross-entropy, backward, SGD step) at the
  paper's per-GPU batch (28 clips of 16x112x112) and the peak GPU memory, per model (every artnet
  variant, torchvision's ``r3d_18`` and ``r2plus1d_18``, no weights) and path: fp32 (cuDNN's
  TF32 convolutions, PyTorch's default), bf16 and fp16 autocast, with and without
  ``channels_last`` and ``torch.compile``; the note gives the speed-up over the model's fp32.
* ``test 25x10``: videos/s of the model alone on upstream's test (25 clips x 10 crops = 250
  views per video, in forward passes of 50 views).
* ``data``: DataLoader throughput from prepared MP4 (H.264, GOP 16) and JPEG frame folders made
  here with every CPU core (the built-in dataset at 320x240, then ``artnet.data.prepare``), one
  worker per core: clips/s in training mode (batches of 28) and videos/s in 25x10 test mode,
  beside what the GPU consumes in the fastest measured path of ``artnet_r18_d``: "starved" when
  the loader is the slower.
* ``DDP``: a one-process NCCL ``DistributedDataParallel`` training step of ``artnet_r18_d``,
  beside the same step without DDP.

Time budget: the cells run in order of importance (``artnet_r18_d``'s eager paths, every
model's fp32 and bf16 + channels_last, the test, the data, DDP, compiled paths, then the rest);
a cell starts only when its estimate fits in what is left of ``--budget``; the others are
"skipped" in the JSON and counted under the table. The estimate is the median time of the cells
of its kind so far, or a first guess; a compiled cell's time is mostly its compilation, which
varies with the path and the model, so a compiled cell is estimated by the longest compiled cell
so far (training or test). A cell still running at the budget's end is stopped there ("over
budget"): a compilation that outgrows its estimate cannot take the run past ``--budget``. Every
cell is guarded: an out-of-memory, a compile failure or any other error becomes that cell's
result, not the end of the run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

import artnet  # noqa: E402
from artnet.data import ClipSpec  # noqa: E402
from artnet.engine.acceleration import Acceleration  # noqa: E402
from artnet.machine import cpu_name  # noqa: E402
from artnet.table import format_table  # noqa: E402

MAIN_MODEL = "artnet_r18_d"
TORCHVISION_MODELS = ("r3d_18", "r2plus1d_18")
EAGER_PATHS = [Acceleration(precision, channels_last) for precision in ("fp32", "bf16", "fp16") for channels_last in (False, True)]
COMPILED_PATHS = [Acceleration(a.precision, a.channels_last, compile=True) for a in EAGER_PATHS]
FP32, BF16_CL = Acceleration(), Acceleration("bf16", channels_last=True)
VIEWS_PER_VIDEO = 25 * 10


def log(message: str) -> None:
    print(f"[gpu] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Setup:
    """Sizes, iterations and devices: the real run, or the dry run's CPU miniature."""

    device: str
    batch: int = 28  # the paper's clips per GPU
    clip: ClipSpec = field(default_factory=ClipSpec)  # the paper's: 16 x 112 x 112 crops of 128 x 170 frames
    model_options: dict = field(default_factory=dict)  # artnet variants only
    warmup: int = 3  # steps before timing (cuDNN autotuning, allocator)
    min_steps: int = 5
    target_seconds: float = 2.0  # keep timing until this many seconds (or max_steps)
    max_steps: int = 50
    view_batch: int = 50
    # the data section: the built-in dataset at this size, prepared at clip.frame_size, one worker per core
    videos_per_class: int = 4
    video_frames: int = 96
    video_size: tuple[int, int] = (240, 320)
    loader_batches: int = 32  # timed batches (at least 4 per worker)
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    ddp_backend: str = "nccl"
    compile_options: dict = field(default_factory=dict)
    # first guesses of a cell's seconds, until cells of its kind have been measured
    guesses: dict = field(
        default_factory=lambda: {
            "train": 15.0,
            "train compiled": 150.0,
            "test": 10.0,
            "test compiled": 100.0,
            "data prepare": 90.0,
            "data": 30.0,
            "DDP": 20.0,
        }
    )


GPU_SETUP = Setup(device="cuda:0")
DRY_SETUP = Setup(
    device="cpu",
    batch=2,
    clip=ClipSpec(clip_len=8, frame_size=(40, 52), crop_size=32),
    model_options={"width_mult": 0.125, "depths": (1, 1, 1, 1)},
    warmup=1,
    min_steps=1,
    target_seconds=0.0,
    max_steps=1,
    view_batch=125,
    videos_per_class=2,
    video_frames=12,
    video_size=(40, 52),
    loader_batches=2,
    workers=min(2, os.cpu_count() or 1),
    ddp_backend="gloo",
    compile_options={"backend": "eager"},  # Dynamo's tracing without Inductor's minutes of code generation
    guesses={
        "train": 2.0,
        "train compiled": 10.0,
        "test": 2.0,
        "test compiled": 10.0,
        "data prepare": 10.0,
        "data": 5.0,
        "DDP": 2.0,
    },
)


@dataclass
class Cell:
    section: str  # train | test 25x10 | data | DDP
    model: str
    path: str
    kind: str  # for the time estimate: train, train compiled, test, test compiled, data prepare, data, DDP
    status: str = "skipped"  # ok | out of memory | failed | over budget | skipped
    value: float | None = None
    unit: str = ""
    peak_gib: float | None = None
    note: str = ""
    seconds: float = 0.0  # wall time of the cell


class Budget:
    def __init__(self, seconds: float, guesses: dict[str, float]):
        self.deadline = time.monotonic() + seconds
        self.guesses = guesses
        self.spent: dict[str, list[float]] = {}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def estimate(self, kind: str) -> float:
        """Seconds a cell of ``kind`` will take: see the module's doc."""
        if kind.endswith(" compiled"):
            compiled = [seconds for done, spent in self.spent.items() if done.endswith(" compiled") for seconds in spent]
            return max(compiled) if compiled else self.guesses[kind]
        spent = self.spent.get(kind)
        return statistics.median(spent) if spent else self.guesses[kind]

    def record(self, kind: str, seconds: float) -> None:
        self.spent.setdefault(kind, []).append(seconds)


class OverBudget(BaseException):
    """The budget's end came during a cell. Not an Exception: no ``except Exception`` on the way may keep it."""


@contextlib.contextmanager
def stop_after(seconds: float):
    """Raise :class:`OverBudget` in this thread once ``seconds`` have passed (SIGALRM: Unix, the main thread;
    elsewhere no limit). Python runs the handler between bytecodes, so a compilation, which waits on its
    workers in Python, stops there; a CUDA kernel runs to its end first."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame) -> None:
        raise OverBudget

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_cell(cell: Cell, budget: Budget, measure: Callable[[], tuple[float, str]], device: torch.device) -> Cell:
    """Run one measurement if it fits in the budget, and stop it at the budget's end; whatever goes
    wrong becomes the cell's status."""
    estimate = budget.estimate(cell.kind)
    if estimate > budget.left():
        log(f"skip {cell.section} {cell.model} {cell.path}: about {estimate:.0f} s, {budget.left():.0f} s left")
        return cell
    log(f"{cell.section} {cell.model} {cell.path}")
    started = time.monotonic()
    gpu_memory = device.type == "cuda" and cell.section != "data"
    if gpu_memory:
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with stop_after(budget.left()):
            value, note = measure()
        cell.value, cell.note, cell.status = value, note, "ok"
    except OverBudget:
        stopped = f"stopped at the budget's end after {time.monotonic() - started:.0f} s (estimated {estimate:.0f} s)"
        cell.status, cell.note = "over budget", stopped
    except torch.OutOfMemoryError:
        cell.status = "out of memory"
    except Exception as error:  # noqa: BLE001  (a compile failure, a missing kernel: the cell's result)
        cell.status, cell.note = "failed", f"{type(error).__name__}: {' '.join(str(error).split())[:160]}"
    finally:
        if gpu_memory:
            cell.peak_gib = torch.cuda.max_memory_allocated(device) / 2**30
        release(device)
    cell.seconds = time.monotonic() - started
    budget.record(cell.kind, cell.seconds)
    log(f"  -> {cell.status} {'' if cell.value is None else f'{cell.value:.1f} {cell.unit}'} ({cell.seconds:.0f} s)")
    return cell


def release(device: torch.device) -> None:
    torch._dynamo.reset()  # compiled graphs hold memory and would be reused by the next model's guards
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_step(step: Callable[[], None], setup: Setup, device: torch.device) -> float:
    """Mean seconds of ``step`` after ``warmup`` steps: ``min_steps``, then more until ``target_seconds``."""
    for _ in range(setup.warmup):
        step()
    synchronize(device)
    steps, started = 0, time.perf_counter()
    while steps < setup.min_steps or (time.perf_counter() - started < setup.target_seconds and steps < setup.max_steps):
        step()
        steps += 1
        if steps >= setup.min_steps:
            synchronize(device)
    synchronize(device)
    return (time.perf_counter() - started) / steps


# --- models -------------------------------------------------------------------------------------


def build(name: str, setup: Setup) -> nn.Module:
    if name in TORCHVISION_MODELS:
        from torchvision.models import video

        return getattr(video, name)(weights=None, num_classes=400)
    return artnet.create_model(name, num_classes=400, **setup.model_options)


def train_speed(name: str, accel: Acceleration, setup: Setup, device: torch.device) -> float:
    """Clips/s of a training step: forward, cross-entropy, backward, SGD step (with fp16's loss scaling)."""
    model = build(name, setup).to(device).train()
    runner = accel.apply(model, **setup.compile_options)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = accel.grad_scaler(device.type)
    clips = accel.prepare_input(torch.randn(setup.batch, *setup.clip.input_shape, device=device))
    labels = torch.randint(0, 400, (setup.batch,), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with accel.autocast(device.type):
            loss = F.cross_entropy(runner(clips).float(), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return setup.batch / seconds_per_step(step, setup, device)


def test_speed(name: str, accel: Acceleration, setup: Setup, device: torch.device) -> float:
    """Videos/s of the model on 25x10 views: forward passes of ``view_batch`` views, eval mode."""
    model = build(name, setup).to(device).eval()
    runner = accel.apply(model, **setup.compile_options)
    views = accel.prepare_input(torch.randn(setup.view_batch, *setup.clip.input_shape, device=device))

    def step() -> None:
        with torch.inference_mode(), accel.autocast(device.type):
            runner(views)

    return 1.0 / (seconds_per_step(step, setup, device) * math.ceil(VIEWS_PER_VIDEO / setup.view_batch))


def ddp_speed(name: str, accel: Acceleration, setup: Setup, device: torch.device, work: Path) -> float:
    """Clips/s of the training step of :func:`train_speed` through a one-process DDP group."""
    import torch.distributed as dist

    store = work / f"ddp-store-{time.monotonic_ns()}"
    dist.init_process_group(setup.ddp_backend, init_method=f"file://{store}", rank=0, world_size=1)
    try:
        model = build(name, setup).to(device).train()
        net = nn.parallel.DistributedDataParallel(accel.apply(model), device_ids=[device.index] if device.type == "cuda" else None)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        scaler = accel.grad_scaler(device.type)
        clips = accel.prepare_input(torch.randn(setup.batch, *setup.clip.input_shape, device=device))
        labels = torch.randint(0, 400, (setup.batch,), device=device)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with accel.autocast(device.type):
                loss = F.cross_entropy(net(clips).float(), labels)
            scaler.scale(loss).backward()  # the gradients' all-reduce
            scaler.step(optimizer)
            scaler.update()

        return setup.batch / seconds_per_step(step, setup, device)
    finally:
        dist.destroy_process_group()


# --- data ---------------------------------------------------------------------------------------


def prepare_data(setup: Setup, work: Path) -> dict[str, list[str]]:
    """The built-in dataset at ``video_size``, prepared as MP4 and as JPEG frames, with every core."""
    from artnet.data.prepare import EncodeOptions, prepare_videos
    from artnet.data.synthetic import generate

    jobs = os.cpu_count() or 1
    height, width = setup.video_size
    raw = generate(work / "raw", clips_per_class=setup.videos_per_class, num_frames=setup.video_frames, height=height, width=width, workers=jobs)
    sets = {}
    for label, options in (("prepared MP4", EncodeOptions(to="video", gop=16, size=setup.clip.frame_size)), ("prepared JPEG", EncodeOptions(to="frames", quality=90, size=setup.clip.frame_size))):
        report = prepare_videos(raw.root, work / label.split()[1].lower(), options, jobs=jobs)
        if report.failed:
            raise RuntimeError(f"{label}: {len(report.failed)} videos failed, e.g. {report.failed[0]}")
        sets[label] = sorted(report.frames)
    return sets


def loader_speed(paths: list[str], mode: str, setup: Setup) -> float:
    """Clips/s (train: batches of ``batch`` clips) or videos/s (25x10 test) out of a DataLoader, one worker per core.

    The first ``3 x workers`` batches are not timed: worker start-up, first opens, and the batches
    the workers prefetch, which would otherwise arrive at once."""
    from artnet.data import VideoDataset, VideoRecord

    records = [VideoRecord(path, 0) for path in paths]
    common = {"clip": setup.clip}
    if mode == "train":
        dataset, batch_size = VideoDataset(records, mode="train", **common), setup.batch
    else:
        dataset, batch_size = VideoDataset(records, mode="test", num_clips=25, crops="10crop", **common), None
    untimed, timed = 3 * setup.workers, max(setup.loader_batches, 4 * setup.workers)
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=(untimed + timed) * (batch_size or 1))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=setup.workers, pin_memory=torch.cuda.is_available())
    batches = iter(loader)
    for _ in range(untimed):
        next(batches)
    started = time.perf_counter()
    for _ in range(timed):
        next(batches)
    seconds = time.perf_counter() - started
    del batches
    return timed * (batch_size or 1) / seconds


# --- the plan -----------------------------------------------------------------------------------


def plan(dry_run: bool) -> list[tuple[str, str, Acceleration | str]]:
    """(section, model, path) in order of importance; the dry run keeps a few cells of each kind."""
    others = [name for name in artnet.list_models() + list(TORCHVISION_MODELS) if name != MAIN_MODEL]
    compiled = [Acceleration("bf16", True, True), Acceleration("fp32", True, True), Acceleration("fp16", True, True)]
    compiled += [accel for accel in COMPILED_PATHS if accel not in compiled]
    data = [("data", "prepare", "")] + [("data", source, mode) for source in ("prepared MP4", "prepared JPEG") for mode in ("train", "test 25x10")]
    ddp = [("DDP", MAIN_MODEL, "fastest eager path")]
    main_eager = [("train", MAIN_MODEL, accel) for accel in EAGER_PATHS]
    if dry_run:
        others_fp32 = [("train", name, FP32) for name in ("c2d_r18", "r3d_18")]  # a 2D artnet variant, a torchvision model
        tests = [("test 25x10", MAIN_MODEL, accel) for accel in (FP32, BF16_CL, compiled[0])]
        return main_eager + others_fp32 + tests + data + ddp + [("train", MAIN_MODEL, compiled[0])]
    cells = main_eager + [("train", name, accel) for name in others for accel in (FP32, BF16_CL)]
    cells += [("test 25x10", MAIN_MODEL, accel) for accel in (FP32, Acceleration(channels_last=True), BF16_CL, Acceleration("fp16", True))]
    cells += data + ddp
    cells += [("train", MAIN_MODEL, accel) for accel in compiled] + [("test 25x10", MAIN_MODEL, compiled[0])]
    cells += [("train", name, accel) for name in others for accel in EAGER_PATHS if accel not in (FP32, BF16_CL)]
    cells += [("test 25x10", name, BF16_CL) for name in others]
    cells += [("train", name, accel) for name in others for accel in compiled]
    return cells


def run(setup: Setup, budget_seconds: float, dry_run: bool, work: Path) -> list[Cell]:
    device = torch.device(setup.device)
    torch.backends.cudnn.benchmark = True  # as the training engine does on GPUs
    budget = Budget(budget_seconds, setup.guesses)
    cells: list[Cell] = []
    data_sets: dict[str, list[str]] = {}

    def fastest(section: str, eager: bool = False) -> Cell | None:
        """The fastest measured cell of the main model in a section (eager paths only if asked)."""
        done = [c for c in cells if (c.section, c.model, c.status) == (section, MAIN_MODEL, "ok")]
        done = [c for c in done if not (eager and Acceleration.parse(c.path).compile)]
        return max(done, key=lambda c: c.value) if done else None

    for section, model, path in plan(dry_run):
        if section in ("train", "test 25x10"):
            accel = path
            kind = ("train" if section == "train" else "test") + (" compiled" if accel.compile else "")
            speed = train_speed if section == "train" else test_speed
            unit = "clips/s" if section == "train" else "videos/s"
            cell = Cell(section, model, accel.name, kind, unit=unit)

            def measure(speed=speed, model=model, accel=accel) -> tuple[float, str]:
                return speed(model, accel, setup, device), ""

        elif section == "data" and model == "prepare":
            cell = Cell("data", "built-in dataset", f"{setup.video_size[1]}x{setup.video_size[0]} -> MP4 and JPEG", "data prepare", unit="s")

            def measure() -> tuple[float, str]:
                started = time.perf_counter()
                data_sets.update(prepare_data(setup, work))
                return time.perf_counter() - started, f"{len(next(iter(data_sets.values())))} videos, {os.cpu_count()} processes"

        elif section == "data":
            mode = path
            cell = Cell("data", model, f"{mode}, {setup.workers} workers", "data", unit="clips/s" if mode == "train" else "videos/s")

            def measure(model=model, mode=mode) -> tuple[float, str]:
                if model not in data_sets:
                    raise RuntimeError("no prepared data (the prepare cell did not run)")
                speed = loader_speed(data_sets[model], mode, setup)
                gpu = fastest("train" if mode == "train" else "test 25x10")
                if gpu is None:
                    return speed, "no GPU figure to compare"
                verdict = "keeps up" if speed >= gpu.value else "starved"
                consumer = device.type.upper()
                return speed, f"the {consumer} takes {gpu.value:.1f} {gpu.unit} ({MAIN_MODEL}, {gpu.path}): {verdict} ({speed / gpu.value:.2f}x)"

        else:  # DDP
            best = fastest("train", eager=True)
            accel = Acceleration.parse(best.path) if best is not None else FP32
            cell = Cell("DDP", model, f"{setup.ddp_backend}, 1 process, {accel.name}", "DDP", unit="clips/s")

            def measure(model=model, accel=accel) -> tuple[float, str]:
                speed = ddp_speed(model, accel, setup, device, work)
                plain = next((c for c in cells if c.section == "train" and c.model == model and c.path == accel.name and c.status == "ok"), None)
                return speed, f"{speed / plain.value:.2f}x the step without DDP" if plain else ""

        cells.append(run_cell(cell, budget, measure, device))

    for cell in cells:  # the speed-up over the model's own fp32
        if cell.section in ("train", "test 25x10") and cell.status == "ok" and cell.path != FP32.name:
            base = next((c for c in cells if (c.section, c.model, c.path, c.status) == (cell.section, cell.model, FP32.name, "ok")), None)
            if base is not None:
                cell.note = f"{cell.value / base.value:.2f}x fp32" + (f"; {cell.note}" if cell.note else "")
    return cells


# --- report -------------------------------------------------------------------------------------


def machine(setup: Setup) -> dict:
    info = {
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": setup.device,
    }
    if torch.device(setup.device).type == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            compute_capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            tf32_convolutions=torch.backends.cudnn.allow_tf32,
        )
    return info


def table(cells: list[Cell]) -> str:
    rows = []
    for c in cells:
        if c.status == "skipped":
            continue
        result = f"{c.value:.1f} {c.unit}" if c.status == "ok" else c.status
        peak = "" if c.peak_gib is None else f"{c.peak_gib:.1f}"
        rows.append([c.section, c.model, c.path, result, peak, c.note])
    return format_table(["section", "model", "path", "result", "peak GiB", "note"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=None, help="seconds for all cells (default 420; dry run 120)")
    parser.add_argument("--out", default="gpu_benchmark.json", help="the JSON file (default gpu_benchmark.json)")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, gloo: every code path but CUDA's")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu.py: error: no CUDA device; run it on a machine with an NVIDIA GPU, or with --dry-run", file=sys.stderr)
        return 2
    setup = DRY_SETUP if args.dry_run else GPU_SETUP
    budget = args.budget if args.budget is not None else (120.0 if args.dry_run else 420.0)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="artnet-gpu-bench-") as work:
        cells = run(setup, budget, args.dry_run, Path(work))
    elapsed = time.monotonic() - started
    info = machine(setup)

    where = info.get("gpu", f"{info['cpu']} (dry run)")
    print(f"Machine: {where}; {info['cpus']} CPUs ({info['cpu']}); torch {info['torch']}" + (f", CUDA {info['cuda']}, cuDNN {info['cudnn']}" if "cuda" in info else ""))
    print(f"batch {setup.batch}, {'x'.join(map(str, setup.clip.input_shape[1:]))} clips; {elapsed:.0f} s\n")
    print(table(cells))
    skipped = [c for c in cells if c.status == "skipped"]
    if skipped:
        print(f"\n{len(skipped)} cells skipped for the time budget ({budget:.0f} s); see {args.out}")
    payload = {"machine": info, "dry_run": args.dry_run, "budget_s": budget, "elapsed_s": elapsed, "batch": setup.batch, "clip": setup.clip.to_dict(), "cells": [asdict(c) for c in cells]}
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
