"""bf16 training of the demo model on this CPU: clips/s against fp32, side by side, and the gradient.

    python benchmarks/bf16_training.py                  # the demo's model, batch and clip size
    python benchmarks/bf16_training.py --repeats 3 --batch 8
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 python benchmarks/bf16_training.py   # as on a CPU without AMX

Training steps (forward, cross-entropy, backward, an SGD step) of ``artnet demo``'s model
(its model, batch and clip size, read from the packaged ``demo`` recipe; 12 classes) in fp32, bf16 autocast and bf16 autocast + channels_last_3d,
interleaved round-robin (median over rounds), each path on its own copy of the same weights.
Before timing, each path's gradient of one batch is compared with fp32's on the same weights
and clips: the cosine of the whole gradient, and the parameter with the lowest cosine (a
kernel that computes a wrong gradient shows up there, by name); and whether ``artnet train``
trains on that path here or refuses it (``Acceleration.check_training``).

A markdown table goes to stdout, progress to stderr. Whether bf16 pays off for training is a
question of this CPU's kernels (native bf16, AMX); the accuracy it reaches is the demo's question.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from model_speed import log, machine, round_robin, training_step  # noqa: E402  (benchmarks/model_speed.py)

from artnet import create_model  # noqa: E402
from artnet.engine.acceleration import Acceleration  # noqa: E402
from artnet.demo import default_recipe  # noqa: E402
from artnet.engine.config import load_config  # noqa: E402
from artnet.errors import ConfigError  # noqa: E402
from artnet.table import format_table  # noqa: E402

DEMO = load_config(default_recipe())
DEMO_MODEL = {"name": DEMO.model.name, "width_mult": DEMO.model.width_mult, "num_classes": 12, "dropout": DEMO.model.dropout}
DEMO_CLIP = (DEMO.data.clip.clip_len, DEMO.data.clip.crop_size, DEMO.data.clip.crop_size)
PATHS = [Acceleration(), Acceleration(precision="bf16"), Acceleration(precision="bf16", channels_last=True)]


def gradients(model: nn.Module, clips: torch.Tensor, labels: torch.Tensor, accel: Acceleration) -> dict[str, torch.Tensor]:
    training_step(accel.apply(model), accel.prepare_input(clips), labels, accel)
    return {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def trains(accel: Acceleration) -> str:
    """What ``artnet train`` does with this path here: trains, or refuses (a wrong-gradient probe)."""
    try:
        accel.check_training("cpu")
    except ConfigError:
        return "refuses"
    return "trains"


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    batch, clip = DEMO.solver.batch_size, DEMO_CLIP
    parser.add_argument("--batch", type=int, default=batch, help=f"clips per batch (default {batch}, the demo's)")
    parser.add_argument("--clip", type=int, nargs=3, default=clip, metavar=("T", "H", "W"), help=f"default {' '.join(map(str, clip))}")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after one warm-up (default 5)")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    base = create_model(**DEMO_MODEL).train()
    clips = torch.randn(args.batch, 3, *args.clip)
    labels = torch.randint(0, DEMO_MODEL["num_classes"], (args.batch,))

    reference = gradients(copy.deepcopy(base), clips, labels, Acceleration())
    jobs, agreement = {}, {}
    for accel in PATHS:
        model = copy.deepcopy(base)
        grads = gradients(model, clips, labels, accel)
        # Weights only: a bias before BN has no gradient in exact arithmetic, only rounding noise.
        per_weight = {name: cosine(grads[name], reference[name]) for name in grads if grads[name].dim() > 1}
        worst = min(per_weight, key=lambda name: -2.0 if math.isnan(per_weight[name]) else per_weight[name])
        whole = cosine(torch.cat([g.flatten() for g in grads.values()]), torch.cat([g.flatten() for g in reference.values()]))
        agreement[accel.name] = (whole, worst, per_weight[worst], trains(accel))
        log(f"{accel.name}: gradient cosine {whole:.4f}, lowest {per_weight[worst]:.4f} ({worst}); artnet train: {trains(accel)}")

        runner, x = accel.apply(model), accel.prepare_input(clips)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def step(runner=runner, x=x, accel=accel, optimizer=optimizer) -> None:
            training_step(runner, x, labels, accel)
            optimizer.step()

        jobs[accel.name] = step
    seconds = round_robin(jobs, args.repeats, "training step")

    fp32 = seconds[PATHS[0].name]
    rows = [
        [
            name,
            f"{args.batch / s:.2f}",
            f"{fp32 / s:.2f}x",
            f"{agreement[name][0]:.4f}",
            f"{agreement[name][2]:.4f} ({agreement[name][1]})",
            agreement[name][3],
        ]
        for name, s in seconds.items()
    ]
    print(
        f"Demo model ({DEMO_MODEL['name']}, width {DEMO_MODEL['width_mult']}), batch {args.batch} of {'x'.join(map(str, args.clip))}"
    )
    isa_cap = os.environ.get("ONEDNN_MAX_CPU_ISA")  # oneDNN told to act as another CPU
    print(machine() + (f"; ONEDNN_MAX_CPU_ISA={isa_cap}" if isa_cap else "") + "\n")
    print(format_table(["path", "train clips/s", "vs fp32", "gradient cosine", "lowest weight cosine", "artnet train"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
