"""Serving on a CPU: clips/s of one model in PyTorch eager, artnet's fastest path, TorchScript and onnxruntime.

    python benchmarks/export_speed.py            # artnet_r18_d, 16x112x112 clips, batches 1 and 8
    python benchmarks/export_speed.py --quick    # smoke run: a small model and small clips, one round

One markdown table goes to stdout (progress to stderr): for each batch size, every path's clips/s
(inference: eval mode, ``torch.inference_mode``), its speed relative to PyTorch eager fp32 and the
relative error ``||y - y_eager|| / ||y_eager||`` of its logits on the same clips.

* PyTorch eager, fp32: the model as defined.
* artnet's paths: what ``acceleration: auto`` chooses on this machine for this model
  (:mod:`artnet.engine.auto_acceleration`; probed afresh, a throw-away cache; no row of its own when it
  is fp32 eager), and bf16 autocast with channels_last, the fastest switch on a CPU with native bf16
  (skipped where a bf16 3D convolution has no fast kernel), whether or not it passes auto's accuracy gate.
* TorchScript and onnxruntime: the files ``artnet export --format torchscript|onnx`` writes
  (verified on export), loaded with ``torch.jit.load`` / an onnxruntime CPU session with as many
  intra-op threads as torch uses.

The weights are random with BN statistics calibrated on random clips (as ``model_speed.py``), so
the logits are those of a sane network. The machine may be shared: the paths are timed in
interleaved rounds (each once per round, median over rounds); compare ratios within one run.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from model_speed import _calibrate_batch_norm, machine, round_robin  # noqa: E402

import artnet  # noqa: E402
from artnet.cli.parsing import parse_dims  # noqa: E402
from artnet.data import ClipSpec  # noqa: E402
from artnet.engine.acceleration import Acceleration, relative_error  # noqa: E402
from artnet.engine.auto_acceleration import ABANDON_FACTOR, choose_acceleration, kernel_slowdown, probe_clips  # noqa: E402
from artnet.interop.export import export_model, onnx_runner, torchscript_runner  # noqa: E402
from artnet.table import format_table  # noqa: E402

EAGER = "PyTorch eager, fp32"


def log(message: str) -> None:
    print(f"[export_speed] {message}", file=sys.stderr, flush=True)


def accelerated(model: torch.nn.Module, accel: Acceleration):
    runner = accel.apply(copy.deepcopy(model))

    def run(clips: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), accel.autocast("cpu"):
            return runner(accel.prepare_input(clips)).float()

    return run


def exported(runner):
    return lambda clips: torch.from_numpy(runner(clips))


def measure(name: str, clip: ClipSpec, batches: list[int], rounds: int, width_mult: float, probe_budget: float) -> str:
    torch.manual_seed(0)
    model = artnet.create_model(name, width_mult=width_mult, dropout=0.0)
    _calibrate_batch_norm(model, probe_clips(clip, batch=4, seed=1))
    model.eval()
    classes = [f"class_{i:03d}" for i in range(model.fc.out_features)]

    with tempfile.TemporaryDirectory() as folder:
        log("acceleration auto: probing this machine")
        choice = choose_acceleration(
            model, probe_clips(clip, batch=2), cache=Path(folder) / "acceleration.json", budget_s=probe_budget
        )
        log(choice.summary)
        paths = {EAGER: accelerated(model, Acceleration())}
        if choice.acceleration != Acceleration():
            paths[f"artnet auto: {choice.acceleration.name}"] = accelerated(model, choice.acceleration)
        fastest = Acceleration("bf16", channels_last=True)
        if fastest != choice.acceleration and kernel_slowdown(fastest) <= ABANDON_FACTOR:
            paths[f"artnet {fastest.name}"] = accelerated(model, fastest)
        for fmt, file, load in (("torchscript", "model.pt", torchscript_runner), ("onnx", "model.onnx", onnx_runner)):
            started = time.perf_counter()
            verification = export_model(model, classes, clip, fmt, Path(folder) / file)
            seconds = time.perf_counter() - started
            log(f"{fmt}: exported in {seconds:.0f} s; verified with {verification.runtime}: {verification.describe()}")
            label = (
                "TorchScript (torch.jit.load)" if fmt == "torchscript" else f"onnxruntime {__import__('onnxruntime').__version__}"
            )
            paths[label] = exported(load(Path(folder) / file))

        rows = []
        for batch in batches:
            clips = probe_clips(clip, batch=batch, seed=batch)
            reference = paths[EAGER](clips)
            errors = {label: relative_error(run(clips), reference) for label, run in paths.items()}
            seconds = round_robin({label: (lambda run=run: run(clips)) for label, run in paths.items()}, rounds, f"batch {batch}")
            for label in paths:
                speed = batch / seconds[label]
                rows.append([batch, label, f"{speed:.2f}", f"{seconds[EAGER] / seconds[label]:.2f}x", f"{errors[label]:.1e}"])
    shape = "x".join(map(str, clip.input_shape[1:]))
    title = f"{name} (width {width_mult:g}), {shape} clips, {rounds} rounds; {machine()}"
    table = format_table(["batch", "path", "clips/s", "vs eager", "rel. error"], rows)
    return f"{title}\n\n{table}\n\nacceleration auto: {choice.summary}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="artnet_r18_d", choices=artnet.list_models())
    parser.add_argument("--clip", default="16x112x112", help="T x H x W of a clip (default 16x112x112)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after one warm-up (default 5)")
    parser.add_argument("--quick", action="store_true", help="smoke run: width 0.125, 8x32x32 clips, batches 1 2, one round")
    args = parser.parse_args(argv)
    frames, height, width = parse_dims(args.clip, "--clip", ("T", "H", "W"), "16x112x112")
    width_mult, probe_budget = 1.0, 20.0
    if args.quick:
        (frames, height, width), args.batches, args.rounds, width_mult, probe_budget = (8, 32, 32), [1, 2], 1, 0.125, 1.0
    clip = ClipSpec(clip_len=frames, frame_size=(height, width), crop_size=min(height, width))
    print(measure(args.model, clip, args.batches, args.rounds, width_mult, probe_budget))
    return 0


if __name__ == "__main__":
    sys.exit(main())
