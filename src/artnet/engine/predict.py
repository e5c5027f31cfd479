"""``artnet predict``: class names and scores for videos, with nothing but a checkpoint.

The checkpoint carries the class names, the input normalisation and the clip geometry, so a
video file or a frame folder is all a user gives.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..errors import DataError
from ..table import format_table
from .builders import data_as_trained
from .checkpoint import load_checkpoint, model_from_checkpoint
from .config import DataConfig
from .distributed import init_distributed
from .evaluate import batched_view_logits, get_protocol

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv"}
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
                videos = sorted(p for p in item.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
                frame_dirs = sorted(d for d in item.rglob("*") if d.is_dir() and any(p.suffix.lower() in FRAME_SUFFIXES for p in d.iterdir()))
                if not videos and not frame_dirs:
                    raise DataError(f"{item}: no video files or frame folders in this folder")
                found += videos + frame_dirs
        else:
            raise DataError(f"{item}: no such video file or folder")
    return found


def predict(inputs: list[str], checkpoint: str, topk: int = 5, protocol: str = "25x10", device: str = "auto") -> list[Prediction]:
    from ..data import Annotations, VideoDataset, VideoRecord

    env = init_distributed(device)
    payload = load_checkpoint(checkpoint)
    model = model_from_checkpoint(payload, source=checkpoint).to(env.device).eval()
    classes = list(payload["classes"])
    data, _ = data_as_trained(DataConfig(), payload)  # the defaults stand in for what an old checkpoint lacks
    spec = get_protocol(protocol)
    paths = expand_inputs(inputs)
    records = [VideoRecord(str(p), label=-1) for p in paths]
    dataset = VideoDataset(
        Annotations(records, classes, source="predict"),
        mode="test",
        num_clips=spec.num_clips,
        crops=spec.crops,
        clip_len=data.clip_len,
        frame_stride=data.frame_stride,
        frame_size=tuple(data.frame_size),
        crop_size=data.crop_size,
        normalization=data.normalization,
    )
    errors: dict[int, str] = {}

    def items():
        for index in range(len(dataset)):
            try:
                yield dataset.load(index), -1, index
            except DataError as error:
                errors[index] = str(error)
                yield None, -1, index

    predictions = []
    with torch.no_grad():
        for index, _, logits in batched_view_logits(model, items(), view_batch=10, device=env.device):
            path = str(paths[index])
            if logits is None:
                predictions.append(Prediction(path, [], [], error=errors[index]))
                continue
            probabilities = logits.mean(dim=0).softmax(dim=0)
            scores, indices = probabilities.topk(min(topk, len(classes)))
            predictions.append(Prediction(path, [classes[i] for i in indices.tolist()], [round(s, 4) for s in scores.tolist()]))
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
