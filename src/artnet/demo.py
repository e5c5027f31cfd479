"""``artnet demo``: the paper's story on a laptop CPU, through the same code paths as a real run.

1. The built-in dataset (:mod:`artnet.data.synthetic`) is generated once and cached: classes
   that appearance decides, and pairs of classes that only the order of frames decides.
2. A small ARTNet (d) is trained on it with the same engine as the Kinetics recipes.
3. It is evaluated with the 25-clip protocol and the accuracy is split by class kind.

``--compare`` also trains C2D and C3D of the same size: C2D sees frames one at a time and averages
them, so on the temporal pairs it can only guess which of the two it is (50%).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import synthetic
from .engine.checkpoint import load_checkpoint
from .engine.config import load_config, recipe_path
from .engine.evaluate import EvalResult
from .engine.testing import run_test
from .engine.train import train
from .machine import cache_dir
from .plots import pyplot
from .table import format_table

COMPARED = ("artnet_r18_d", "c3d_r18", "c2d_r18")
PROTOCOL = "25x1"


def default_recipe() -> Path:
    return recipe_path("demo")


def default_cache() -> Path:
    return cache_dir() / "synthetic"


@dataclass
class DemoResult:
    model: str
    top1: float
    top5: float
    appearance: float  # top-1 on the appearance classes
    temporal: float  # top-1 on the temporal classes
    partner_confusions: float  # share of temporal videos called their time-reversed twin
    train_seconds: float


def run_demo(
    compare: bool = False,
    out_dir: str | Path = "runs/demo",
    data_dir: str | Path | None = None,
    recipe: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    retrain: bool = False,
    dataset_options: dict | None = None,
) -> list[DemoResult]:
    """Train (unless already trained in ``out_dir``) and test; ``dataset_options`` go to
    :func:`artnet.data.synthetic.generate` (the defaults make the demo's dataset)."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    data_dir = Path(data_dir) if data_dir else default_cache()
    print(f"built-in dataset: {data_dir} (generated on first use)", flush=True)
    dataset = synthetic.generate(data_dir, progress=True, **(dataset_options or {}))
    results = []
    for name in COMPARED if compare else COMPARED[:1]:
        run_dir = out_dir / name
        config = load_config(recipe or default_recipe(), overrides)
        config = dataclasses.replace(
            config,
            output_dir=str(run_dir),
            model=dataclasses.replace(config.model, name=name),
            data=dataclasses.replace(config.data, root=str(dataset.root), annotations=str(dataset.root)),
            train=dataclasses.replace(config.train, overwrite=config.train.overwrite or retrain),  # --retrain: start over
        )
        if retrain or not (run_dir / "final.pt").exists():
            print(f"\n== training {name} on the CPU ({config.solver.max_iter} iterations of {config.solver.batch_size} clips)", flush=True)
            train(config)
        train_seconds = load_checkpoint(run_dir / "final.pt").get("elapsed_seconds", float("nan"))
        print(f"== testing {name}: {PROTOCOL} protocol (25 clips per video)", flush=True)
        (tested,) = run_test(config, str(run_dir / "final.pt"), protocol=PROTOCOL, out_dir=str(run_dir / f"test_{PROTOCOL}"))
        results.append(_by_kind(name, tested, dataset, train_seconds))
    print()
    print(results_table(results))
    print(f"\nchance: {100 / dataset.num_classes:.1f}% overall; 50% within a temporal pair. Total time {time.perf_counter() - started:.0f} s.")
    if compare:
        path = plot_results(results, out_dir / "demo.png")
        if path:
            print(f"plot: {path}")
    return results


def _by_kind(name: str, tested: EvalResult, dataset, train_seconds: float) -> DemoResult:
    metrics, labels = tested.metrics, tested.labels
    predictions = tested.video_scores.argmax(axis=1)
    appearance = np.isin(labels, dataset.labels("appearance"))
    temporal = np.isin(labels, dataset.labels("temporal"))
    partners = np.array([dataset.partner(int(label)) if is_temporal else -1 for label, is_temporal in zip(labels, temporal)])
    return DemoResult(
        model=name,
        top1=metrics.top1,
        top5=metrics.top5,
        appearance=100.0 * float(np.mean(predictions[appearance] == labels[appearance])),
        temporal=100.0 * float(np.mean(predictions[temporal] == labels[temporal])),
        partner_confusions=100.0 * float(np.mean(predictions[temporal] == partners[temporal])),
        train_seconds=train_seconds,
    )


def results_table(results: list[DemoResult]) -> str:
    rows = [
        (r.model, f"{r.top1:.1f}", f"{r.top5:.1f}", f"{r.appearance:.1f}", f"{r.temporal:.1f}", f"{r.partner_confusions:.1f}", f"{r.train_seconds:.0f}")
        for r in results
    ]
    headers = ("model", "top-1", "top-5", "appearance classes", "temporal classes", "temporal -> twin", "train s")
    return format_table(headers, rows)


def plot_results(results: list[DemoResult], path: Path) -> Path | None:
    plt = pyplot()
    if plt is None:
        return None
    fig, axis = plt.subplots(figsize=(7, 4))
    positions = np.arange(len(results))
    axis.bar(positions - 0.2, [r.appearance for r in results], 0.4, label="appearance classes")
    axis.bar(positions + 0.2, [r.temporal for r in results], 0.4, label="temporal classes")
    axis.axhline(50, color="grey", linestyle="--", linewidth=1, label="chance within a temporal pair")
    axis.set_xticks(positions, [r.model for r in results])
    axis.set_ylabel("top-1 accuracy (%)")
    axis.set_ylim(0, 100)
    axis.set_title("Built-in dataset: what appearance decides, and what only motion decides")
    axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
