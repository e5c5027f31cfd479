"""``artnet demo``: the paper's story on a laptop CPU, through the same code paths as a real run.

1. The built-in dataset (:mod:`artnet.data.synthetic`) is generated once and cached: classes
   that appearance decides, and pairs of classes that only the order of frames decides.
2. A small ARTNet (d) is trained on it with the same engine as the Kinetics recipes.
3. It is evaluated with the 25-clip protocol and the accuracy is split by class kind.

``--compare`` also trains C2D and C3D of the same size: C2D sees frames one at a time and averages
them, so on the temporal pairs it can only guess which of the two it is (50%).

``--seeds 0 1 2`` trains each model once per training seed and adds a table of the mean and range over
the seeds: a figure from one seed on one CPU is one sample of a distribution.

``--two-stream`` is the paper's Table 3 in miniature: the same ARTNet trained on optical flow
(Farneback, computed once from the dataset's videos at the recipe's frame size and cached beside it),
tested alike, and the two streams' scores fused as TSN fuses them (RGB 1, flow 1.5; the ARTNet paper
does not state its weights): RGB / Flow / Fusion, by class kind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .data import synthetic
from .data.flow import FLOW_BOUND, FlowOptions
from .data.prepare import EncodeOptions, prepare_videos
from .engine.checkpoint import load_checkpoint
from .engine.config import Config, load_config, recipe_path
from .engine.evaluate import EvalResult
from .engine.fusion import TSN_WEIGHTS, fuse_scores
from .engine.metrics import Metrics
from .engine.testing import run_test
from .engine.train import train
from .errors import DataError
from .machine import cache_dir
from .outputs import atomic_write, folder_lock
from .plots import pyplot, save_figure
from .table import format_table

COMPARED = ("artnet_r18_d", "c3d_r18", "c2d_r18")
PROTOCOL = "25x1"
FLOW_METHOD = "farneback"  # TV-L1 is upstream's, and several times slower
#: the frame height upstream's flow bound (20 pixels) is for: TSN extracts flow from 340 x 256 frames
UPSTREAM_FLOW_HEIGHT = 256


def default_recipe() -> Path:
    return recipe_path("demo")


def default_cache() -> Path:
    return cache_dir() / "synthetic"


@dataclass
class DemoResult:
    model: str
    modality: str  # RGB, Flow, or Fusion
    seed: int  # the training seed
    top1: float
    top5: float
    appearance: float  # top-1 on the appearance classes
    temporal: float  # top-1 on the temporal classes
    partner_confusions: float  # share of temporal videos called their time-reversed twin
    train_seconds: float


def run_demo(
    compare: bool = False,
    two_stream: bool = False,
    out_dir: str | Path = "runs/demo",
    data_dir: str | Path | None = None,
    recipe: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    retrain: bool = False,
    dataset_options: dict | None = None,
    seeds: Sequence[int] | None = None,
) -> list[DemoResult]:
    """Train (unless already trained in ``out_dir``) and test; ``dataset_options`` go to
    :func:`artnet.data.synthetic.generate` (the defaults make the demo's dataset). ``two_stream``: also
    the flow stream and the fusion, whose results come after the RGB ones. ``seeds``: training seeds,
    each a run of every model (default: the recipe's ``train.seed``); a seed's runs go to
    ``out_dir/seed<k>/`` unless it is the only one."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    data_dir = Path(data_dir) if data_dir else default_cache()
    print(f"built-in dataset: {data_dir} (generated on first use)", flush=True)
    dataset = synthetic.generate(data_dir, progress=True, **(dataset_options or {}))
    recipe_config = load_config(recipe or default_recipe(), overrides)
    seeds = list(seeds) if seeds else [recipe_config.train.seed]
    results = []
    for seed in seeds:
        config = dataclasses.replace(recipe_config, train=dataclasses.replace(recipe_config.train, seed=seed))
        seed_dir = out_dir if len(seeds) == 1 else out_dir / f"seed{seed}"
        names = COMPARED if compare else COMPARED[:1]
        tested = [_train_and_test(config, name, seed_dir / name, dataset.root, dataset, retrain) for name in names]
        runs = [run for run, _ in tested]
        print()
        print(results_table(runs))
        chance = f"chance: {100 / dataset.num_classes:.1f}% overall; 50% within a temporal pair."
        print(f"\n{chance} Total time {time.perf_counter() - started:.0f} s.")
        if compare:
            path = plot_results(runs, seed_dir / "demo.png")
            if path:
                print(f"plot: {path}")
        if two_stream:
            runs += _two_stream(config, tested[0], seed_dir, dataset, retrain)
            print(f"Total time {time.perf_counter() - started:.0f} s.")
        results += runs
    if len(seeds) > 1:
        print(f"\nOver the training seeds {', '.join(map(str, seeds))}: mean (min - max)")
        print(seeds_table(results))
    return results


def _train_and_test(
    config: Config, name: str, run_dir: Path, root: Path, dataset, retrain: bool
) -> tuple[DemoResult, EvalResult]:
    """Train ``name`` on the videos (or flow) under ``root`` unless ``run_dir`` holds a finished run, then test it:
    the demo's figures, and the test's scores."""
    config = dataclasses.replace(
        config,
        output_dir=str(run_dir),
        model=dataclasses.replace(config.model, name=name),
        data=dataclasses.replace(config.data, root=str(root), annotations=str(dataset.root)),
        train=dataclasses.replace(config.train, overwrite=config.train.overwrite or retrain),  # --retrain: start over
    )
    modality = {"rgb": "RGB", "flow": "Flow"}[config.data.clip.modality]
    if retrain or not (run_dir / "final.pt").exists():
        budget = f"{config.solver.max_iter} iterations of {config.solver.batch_size} clips"
        print(f"\n== training {name} ({modality}) on the CPU ({budget})", flush=True)
        train(config)
    train_seconds = load_checkpoint(run_dir / "final.pt").get("elapsed_seconds", float("nan"))
    print(f"== testing {name} ({modality}): {PROTOCOL} protocol (25 clips per video)", flush=True)
    (tested,) = run_test(config, str(run_dir / "final.pt"), protocol=PROTOCOL, out_dir=str(run_dir / f"test_{PROTOCOL}"))
    identity = dict(model=name, modality=modality, seed=config.train.seed, train_seconds=train_seconds)
    return _by_kind(dataset, tested.labels, tested.video_scores, tested.metrics, **identity), tested


def _two_stream(
    config: Config, rgb_run: tuple[DemoResult, EvalResult], out_dir: Path, dataset, retrain: bool
) -> list[DemoResult]:
    """The flow stream of the RGB run's model and the fusion of the two streams' test scores, as the tests
    returned them (printed with the RGB figures)."""
    rgb, rgb_test = rgb_run
    name = rgb.model
    started = time.perf_counter()
    flow_root = demo_flow(dataset, config.data.clip.frame_size)
    print(f"optical flow ({FLOW_METHOD}): {flow_root} ({time.perf_counter() - started:.0f} s)", flush=True)
    flow_config = dataclasses.replace(
        config, data=dataclasses.replace(config.data, clip=config.data.clip.replace(normalization="flow"))
    )
    flow, flow_test = _train_and_test(flow_config, name, out_dir / f"{name}_flow", flow_root, dataset, retrain)
    tests = ((rgb_test, name), (flow_test, f"{name}_flow"))
    fusion = fuse_scores([test.scored_videos(str(out_dir / run / f"test_{PROTOCOL}")) for test, run in tests], TSN_WEIGHTS)
    identity = dict(model=name, modality="Fusion", seed=rgb.seed, train_seconds=rgb.train_seconds + flow.train_seconds)
    fused = _by_kind(dataset, fusion.labels, fusion.scores, fusion.metrics, **identity)
    print(f"\nTwo streams (fusion: logits weighted RGB {TSN_WEIGHTS[0]:g} : flow {TSN_WEIGHTS[1]:g}, as TSN)")
    print(two_stream_table([rgb, flow, fused]))
    return [flow, fused]


def demo_flow(dataset, frame_size: tuple[int, int], method: str = FLOW_METHOD) -> Path:
    """Optical flow folders of every video of ``dataset`` at ``frame_size``, computed once and kept beside it.

    The clipping bound is upstream's (20 pixels on 256-pixel-high frames) scaled to the frame height,
    so the flow images hold motion on upstream's value scale.
    """
    height, width = frame_size
    options = FlowOptions(method=method, bound=FLOW_BOUND * height / UPSTREAM_FLOW_HEIGHT)
    folder = dataset.root.with_name(f"{dataset.root.name}-flow-{method}-{height}x{width}")
    source = {"dataset": asdict(dataset.params), "generator": synthetic.GENERATOR_VERSION, "flow": asdict(options)}
    stamp = folder / "source.json"  # written when the flow is complete
    # Held on the dataset, which stays, not on the flow folder, which may be removed: two demos at
    # once on one cache take turns, and the second finds the flow made.
    with folder_lock(dataset.root):
        if stamp.is_file() and json.loads(stamp.read_text()) != json.loads(json.dumps(source)):
            shutil.rmtree(folder)  # the flow of another dataset or of other options
        report = prepare_videos(  # resumes an interrupted run; refuses a folder of other files
            dataset.root,
            folder,
            EncodeOptions(to="flow", size=(height, width), flow=options),
            jobs=os.cpu_count() or 1,
            progress=True,
        )
        if report.failed:
            raise DataError(f"optical flow of the built-in dataset failed: {report.failed[0][1]}")
        with atomic_write(stamp, "w") as file:  # whole or absent: a killed run leaves no half stamp
            file.write(json.dumps(source, indent=2) + "\n")
    return folder


def _by_kind(
    dataset, labels: np.ndarray, video_scores: np.ndarray, metrics: Metrics, *, model: str, modality: str, seed: int,
    train_seconds: float,
) -> DemoResult:
    """The figures of a test of ``model``: ``metrics``, and its top-1 on each kind of class of the built-in ``dataset``."""
    predictions = video_scores.argmax(axis=1)
    appearance = np.isin(labels, dataset.labels("appearance"))
    temporal = np.isin(labels, dataset.labels("temporal"))
    partners = np.array([dataset.partner(int(label)) if is_temporal else -1 for label, is_temporal in zip(labels, temporal)])
    return DemoResult(
        model=model,
        modality=modality,
        seed=seed,
        top1=metrics.top1,
        top5=metrics.top5,
        appearance=100.0 * float(np.mean(predictions[appearance] == labels[appearance])),
        temporal=100.0 * float(np.mean(predictions[temporal] == labels[temporal])),
        partner_confusions=100.0 * float(np.mean(predictions[temporal] == partners[temporal])),
        train_seconds=train_seconds,
    )


def results_table(results: list[DemoResult]) -> str:
    rows = [
        (
            r.model,
            f"{r.top1:.1f}",
            f"{r.top5:.1f}",
            f"{r.appearance:.1f}",
            f"{r.temporal:.1f}",
            f"{r.partner_confusions:.1f}",
            f"{r.train_seconds:.0f}",
        )
        for r in results
    ]
    headers = ("model", "top-1", "top-5", "appearance classes", "temporal classes", "temporal -> twin", "train s")
    return format_table(headers, rows)


SUMMARISED = ("top1", "top5", "appearance", "temporal", "partner_confusions", "train_seconds")


def seeds_table(results: list[DemoResult]) -> str:
    """One row per model and modality: each figure's mean and range over the seeds it was run with."""
    groups: dict[tuple[str, str], list[DemoResult]] = {}
    for result in results:
        groups.setdefault((result.model, result.modality), []).append(result)
    rows = []
    for (model, modality), runs in groups.items():
        cells = []
        for key in SUMMARISED:
            values = [getattr(r, key) for r in runs]
            digits = 0 if key == "train_seconds" else 1
            cells.append(f"{np.mean(values):.{digits}f} ({min(values):.{digits}f} - {max(values):.{digits}f})")
        rows.append((model, modality, len(runs), *cells))
    headers = ("model", "modality", "seeds", "top-1", "top-5", "appearance classes", "temporal classes", "temporal -> twin", "train s")
    return format_table(headers, rows)


def two_stream_table(results: list[DemoResult]) -> str:
    """The paper's Table 3 shape: one model, RGB / Flow / Fusion, with the demo's split by class kind."""
    rows = [
        (
            r.model,
            r.modality,
            f"{r.top1:.1f}",
            f"{r.top5:.1f}",
            f"{(r.top1 + r.top5) / 2:.1f}",
            f"{r.appearance:.1f}",
            f"{r.temporal:.1f}",
            f"{r.partner_confusions:.1f}",
        )
        for r in results
    ]
    headers = ("model", "modality", "top-1", "top-5", "avg", "appearance classes", "temporal classes", "temporal -> twin")
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
    save_figure(fig, path)
    plt.close(fig)
    return path
