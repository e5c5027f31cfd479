"""``artnet test``: a checkpoint, a dataset's test set, a protocol -> metrics and reports.

For UCF101 and HMDB51 the paper reports the mean over the three splits, each split with its own
fine-tuned model: ``--splits 1,2,3 --checkpoint runs/ucf101_split{split}/final.pt``.

The report folder (``test_<protocol>`` beside the checkpoint, or ``out_dir``) is checked before the
evaluation (:func:`claim_report_dir`): it must be writable, and new, empty, or hold an earlier report of
``artnet test``, which the new one replaces; a folder with other files is refused unless ``force``.
The metrics are printed before the report is written, so a report that cannot be written loses nothing.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from ..table import format_table
from .auto_acceleration import acceleration_for
from .builders import build_dataset, data_as_trained
from .checkpoint import checkpoint_file, describe_model, load_checkpoint, model_from_checkpoint
from .config import Config
from .distributed import init_distributed, on_main_process
from .evaluate import EvalResult, evaluate, get_protocol
from .metrics import Metrics, claim_report_dir, write_reports
from .monitor import RunMonitor


def run_test(
    config: Config,
    checkpoint: str,
    protocol: str | None = None,
    splits: list[int] | None = None,
    out_dir: str | None = None,
    force: bool = False,
) -> list[EvalResult]:
    """Evaluate ``checkpoint`` (its path may hold ``{split}``) on the test set of each split; reports are
    written beside it (or in ``out_dir``) and the results returned, one per split. ``force``: write the
    report into a folder of other files (see the module doc)."""
    env = init_distributed(config.train.device, config.train.dist_timeout)
    protocol_spec = get_protocol(protocol or config.test.protocol)
    splits = splits or config.test.splits or [config.data.split]
    paths = {split: checkpoint_file(checkpoint.format(split=split)) for split in splits}
    report_dirs = {split: Path(out_dir) if out_dir else paths[split].parent / f"test_{protocol_spec.name}" for split in splits}
    for folder in dict.fromkeys(report_dirs.values()):  # before any evaluation: a refusal costs nothing
        on_main_process(functools.partial(claim_report_dir, folder, force, default=out_dir is None), env)
    results = []
    for split in splits:
        split_config = dataclasses.replace(config, data=dataclasses.replace(config.data, split=split))
        path = paths[split]
        payload = load_checkpoint(path)
        model = model_from_checkpoint(payload, source=str(path)).to(env.device)
        data, changed = data_as_trained(split_config.data, payload)
        choice = acceleration_for(
            config.test.acceleration, model, data.clip, env, identity=describe_model(payload), batch=config.test.view_batch
        )
        accel = choice.acceleration
        model = accel.apply(model)
        split_config = dataclasses.replace(split_config, data=data)
        dataset = build_dataset(split_config, protocol_spec.mode, protocol_spec)
        check_classes(payload.get("classes", []), list(dataset.classes), path)
        monitor = RunMonitor(path.parent, len(dataset), 0, enabled=env.is_main, tensorboard=False, unit="video")
        if payload["model"]["name"] != config.model.name:
            monitor.message(f"{path.name} holds a {payload['model']['name']}, not the {config.model.name} the config names: testing the checkpoint's model")
        if changed:
            as_trained = f"clips cut, normalised and mirrored as {path.name} was trained, not as the config says"
            monitor.message(f"{as_trained}: {', '.join(changed)}")
        monitor.message(
            f"testing {describe_model(payload)} from {path} on {len(dataset)} videos, protocol {protocol_spec.name},"
            f" normalization {data.clip.normalization}"
        )
        monitor.message(choice.reason)
        result = evaluate(
            model,
            dataset,
            env,
            view_batch=config.test.view_batch,
            num_workers=config.test.num_workers,
            accel=accel,
            progress=monitor.progress,
        )
        monitor.close(plots=False)
        if env.is_main:
            report_dir = report_dirs[split] / f"split{split}" if len(splits) > 1 else report_dirs[split]
            print(f"split {split}: {result.metrics.summary()}  -> {report_dir}" if len(splits) > 1 else f"{result.metrics.summary()}  -> {report_dir}", flush=True)
            extra = {"checkpoint": str(path), "protocol": protocol_spec.name, "model": payload["model"]}
            write_reports(report_dir, result.metrics, result.scored_videos(str(report_dir)), extra=extra)
        results.append(result)
    if env.is_main and len(splits) > 1:
        print(splits_table(splits, [r.metrics for r in results]))
    return results


def check_classes(checkpoint_classes: list[str], dataset_classes: list[str], path: Path) -> None:
    if len(checkpoint_classes) != len(dataset_classes):
        raise CheckpointError(f"{path}: a model for {len(checkpoint_classes)} classes, but the test set has {len(dataset_classes)}")
    numbered = all(name.startswith("class_") for name in checkpoint_classes)  # converted without --classes
    if not numbered and checkpoint_classes != dataset_classes:
        first = next(i for i, (a, b) in enumerate(zip(checkpoint_classes, dataset_classes)) if a != b)
        raise CheckpointError(
            f"{path}: class {first} is {checkpoint_classes[first]!r} in the checkpoint but {dataset_classes[first]!r} in the test set"
        )


def splits_table(splits: list[int], results: list[Metrics]) -> str:
    keys = ("top1", "top5", "avg", "mean_class_accuracy", "clip_top1")
    rows = [[f"split {s}", *(f"{getattr(m, k):.2f}" for k in keys), m.videos, m.missing] for s, m in zip(splits, results)]
    rows.append(["mean", *(f"{np.mean([getattr(m, k) for m in results]):.2f}" for k in keys), "", ""])
    return format_table(("split", "top-1", "top-5", "avg", "mean class", "clip top-1", "videos", "missing"), rows)
