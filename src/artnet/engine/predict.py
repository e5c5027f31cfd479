"""``artnet predict``: class names and scores for videos, with nothing but a checkpoint.

The checkpoint carries the class names, the input normalisation and the clip geometry, so a
video file or a frame folder is all a user gives.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..data import Annotations, VideoDataset, VideoRecord
from ..data.annotations import VIDEO_EXTENSIONS
from ..errors import DataError
from ..table import format_table
from .auto_acceleration import acceleration_for
from .checkpoint import clip_spec, describe_model, load_checkpoint, model_from_checkpoint, resolve_pretrained
from .distributed import init_distributed
from .evaluate import get_protocol, score_videos

FRAME_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass
class Prediction:
    path: str
    labels: list[str]
    scores: list[float]  # softmax of the view-averaged logits, as upstream's eval_net.py
    error: str | None = None


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Video files, frame folders, and folders of videos (searched recursively), in order."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_file():
            found.append(item)
        elif item.is_dir():
            if any(p.suffix.lower() in FRAME_SUFFIXES for p in item.iterdir()):
                found.append(item)  # a folder of extracted frames is one video
            else:
                videos = sorted(p for p in item.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
                frame_dirs = sorted(d for d in item.rglob("*") if d.is_dir() and any(p.suffix.lower() in FRAME_SUFFIXES for p in d.iterdir()))
                if not videos and not frame_dirs:
                    raise DataError(f"{item}: no video files or frame folders in this folder")
                found += videos + frame_dirs
        else:
            raise DataError(f"{item}: no such video file or folder")
    return found


def predict(
    inputs: list[str],
    checkpoint: str,
    *,
    topk: int = 5,
    protocol: str = "25x10",
    device: str = "auto",
    acceleration: str = "auto",
    num_workers: int = 2,
    view_batch: int = 10,
    backend: str = "auto",
    frame_pattern: str | None = None,
) -> list[Prediction]:
    """Top-k classes of each video, its clips cut (and mirrored, or not: ``data.flip`` and its flip label map)
    as the checkpoint's model was trained.

    Videos are decoded by ``num_workers`` DataLoader processes and scored in batches of ``view_batch``
    views with the ``acceleration`` setting (``auto``: the fastest path here that stays close to
    fp32; see :mod:`artnet.engine.auto_acceleration`); the same path as ``artnet test``, without labels.
    """
    env = init_distributed(device)
    checkpoint = str(resolve_pretrained(checkpoint))  # a file, a model folder, or a Hub repository id
    payload = load_checkpoint(checkpoint)
    clip = clip_spec(payload, checkpoint)
    model = model_from_checkpoint(payload, source=checkpoint).to(env.device).eval()
    choice = acceleration_for(acceleration, model, clip, env, identity=describe_model(payload))
    if env.is_main:
        print(choice.reason, file=sys.stderr)
    accel = choice.acceleration
    model = accel.apply(model)
    classes = list(payload["classes"])
    spec = get_protocol(protocol)
    paths = expand_inputs(inputs)
    trained_data = (payload.get("config") or {}).get("data", {})  # converted weights carry no training config
    dataset = VideoDataset(
        Annotations([VideoRecord(str(p), label=-1) for p in paths], classes, source="predict"),
        clip=clip,
        mode="test",
        num_clips=spec.num_clips,
        crops=spec.crops,
        backend=backend,
        frame_pattern=frame_pattern,
        flip=trained_data.get("flip", True),
        flip_label_map=trained_data.get("flip_label_map", ()),
    )
    scores = score_videos(model, dataset, env, view_batch=view_batch, num_workers=num_workers, accel=accel)
    probabilities = torch.from_numpy(scores.view_logits).mean(dim=1).softmax(dim=1)  # upstream eval_net.py
    by_index = dict(zip(scores.indices.tolist(), probabilities))
    predictions = []
    for index, path in enumerate(map(str, paths)):
        if index in scores.unreadable:
            predictions.append(Prediction(path, [], [], error=scores.unreadable[index]))
            continue
        top, labels = by_index[index].topk(min(topk, len(classes)))
        predictions.append(Prediction(path, [classes[i] for i in labels.tolist()], [round(s, 4) for s in top.tolist()]))
    return predictions


def format_predictions(predictions: list[Prediction], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([asdict(p) for p in predictions], indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["path", "rank", "label", "score", "error"])
        for p in predictions:
            if p.error:
                writer.writerow([p.path, "", "", "", p.error])
            for rank, (label, score) in enumerate(zip(p.labels, p.scores), start=1):
                writer.writerow([p.path, rank, label, f"{score:.4f}", ""])
        return out.getvalue().rstrip("\n")
    rows = []
    for p in predictions:
        if p.error:
            rows.append([p.path, "-", f"error: {p.error}", ""])
        for rank, (label, score) in enumerate(zip(p.labels, p.scores), start=1):
            rows.append([p.path if rank == 1 else "", rank, label, f"{score:.4f}"])
    return format_table(("video", "rank", "class", "score"), rows)
