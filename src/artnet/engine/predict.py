"""``artnet predict``: class names and scores for videos, with nothing but a checkpoint.

The checkpoint carries the class names, the input normalisation and the clip geometry, so a
video file or a frame folder is all a user gives. ``--timeline``: the scores of a window sliding
over one video, however long (:meth:`Predictor.timeline`).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ..data import Annotations, VideoDataset, VideoRecord
from ..data.annotations import VIDEO_EXTENSIONS
from ..data.sampling import clip_span
from ..data.windows import VideoWindows
from ..errors import DataError
from ..table import format_table
from .auto_acceleration import acceleration_for
from .checkpoint import describe_model, flip_settings, load_model
from .distributed import init_distributed
from .evaluate import batched_view_logits, get_protocol, score_videos

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


class Predictor:
    """A checkpoint's model, loaded once with what its weights expect (class names, the clip contract)
    and run with the ``acceleration`` setting (``auto``: the fastest path here that stays close to
    fp32, probed at ``view_batch`` clips a call; see :mod:`artnet.engine.auto_acceleration`): ``artnet
    predict``, its ``--timeline`` and ``artnet serve`` ask one."""

    def __init__(self, checkpoint: str | Path, *, device: str = "auto", acceleration: str = "auto", view_batch: int = 10):
        self.env = init_distributed(device)
        loaded = self.loaded = load_model(checkpoint, self.env.device)  # a file, a model folder, or a Hub repository id
        self.checkpoint, self.payload, self.clip, self.classes = loaded.source, loaded.payload, loaded.clip, loaded.classes
        choice = acceleration_for(acceleration, loaded.model, self.clip, self.env, identity=describe_model(self.payload), batch=view_batch)
        if self.env.is_main:
            print(choice.reason, file=sys.stderr)
        self.accel = choice.acceleration
        # channels_last converts loaded.model in place and compile wraps it: loaded.model stays an eager fp32
        # module, which an Explainer can share
        self.model = self.accel.apply(loaded.model)
        self.flip_settings = flip_settings(self.payload, self.checkpoint)

    def predict(
        self,
        inputs: list[str],
        *,
        topk: int = 5,
        protocol: str = "25x10",
        num_workers: int = 2,
        view_batch: int = 10,
        backend: str = "auto",
        frame_pattern: str | None = None,
        progress=None,
    ) -> list[Prediction]:
        """Top-k classes of each video, its clips cut and mirrored (or not: :attr:`flip_settings`) as the
        model was trained, decoded by ``num_workers`` DataLoader processes and scored in batches of
        ``view_batch`` views: the path of ``artnet test``, without labels. ``progress(1)`` is called after
        each video."""
        spec = get_protocol(protocol)
        paths = expand_inputs(inputs)
        dataset = VideoDataset(
            Annotations([VideoRecord(str(p), label=-1) for p in paths], self.classes, source="predict"),
            clip=self.clip,
            mode="test",
            num_clips=spec.num_clips,
            crops=spec.crops,
            backend=backend,
            frame_pattern=frame_pattern,
            flip=self.flip_settings.flip,
            flip_label_map=self.flip_settings.flip_label_map,
        )
        scores = score_videos(
            self.model, dataset, self.env, view_batch=view_batch, num_workers=num_workers, accel=self.accel, progress=progress
        )
        probabilities = torch.from_numpy(scores.view_logits).mean(dim=1).softmax(dim=1)  # upstream eval_net.py
        by_index = dict(zip(scores.indices.tolist(), probabilities))
        predictions = []
        for index, path in enumerate(map(str, paths)):
            if index in scores.unreadable:
                predictions.append(Prediction(path, [], [], error=scores.unreadable[index]))
                continue
            labels, top = self._top(by_index[index], topk)
            predictions.append(Prediction(path, labels, top))
        return predictions

    @torch.no_grad()
    def timeline(
        self,
        video: str | Path,
        *,
        step: int | None = None,
        num_workers: int = 2,
        view_batch: int = 10,
        backend: str = "auto",
        frame_pattern: str | None = None,
        progress=None,
    ) -> Timeline:
        """Class probabilities of every window of ``video``: a clip (centre crop) every ``step`` frames
        (default: one clip span, windows side by side). The video is decoded once, in order, by
        ``num_workers`` DataLoader processes (each a contiguous share), never all in memory; windows
        are scored in batches of ``view_batch``. ``progress(1)`` is called after each window."""
        if Path(video).is_dir() and not any(p.suffix.lower() in FRAME_SUFFIXES for p in Path(video).iterdir()):
            raise DataError(f"{video}: a timeline is of one video (a file or a frame folder), not a folder of videos")
        step = step or clip_span(self.clip.clip_len, self.clip.frame_stride)
        windows = VideoWindows(video, self.clip, step, backend=backend, frame_pattern=frame_pattern)
        loader = torch.utils.data.DataLoader(windows, batch_size=None, num_workers=min(num_workers, len(windows)))
        probabilities = np.zeros((len(windows), len(self.classes)), np.float32)
        was_training = self.model.training
        self.model.eval()
        for window, _, logits in batched_view_logits(self.model, loader, view_batch, self.env.device, self.accel):
            probabilities[window] = logits.softmax(dim=1)[0].numpy()
            if progress is not None:
                progress(1)
        self.model.train(was_training)
        first_last = windows.indices[:, [0, -1]]
        return Timeline(str(video), self.classes, windows.frame_rate, windows.num_frames, first_last, probabilities)

    def _top(self, probabilities: torch.Tensor, topk: int) -> tuple[list[str], list[float]]:
        top, labels = probabilities.topk(min(topk, len(self.classes)))
        return [self.classes[i] for i in labels.tolist()], [round(s, 4) for s in top.tolist()]


@dataclass
class Timeline:
    """What a model says over the course of one video: a probability vector per window."""

    path: str
    classes: list[str]
    frame_rate: Fraction | None  # of the video (None: a frame folder)
    num_frames: int
    frames: np.ndarray  # (windows, 2): the first and last frame of each window
    probabilities: np.ndarray  # (windows, classes): softmax of each window's logits

    def seconds(self, frame) -> np.ndarray | None:
        """Frame indices as seconds from the start; None where the frame rate is unknown."""
        return None if self.frame_rate is None else np.asarray(frame, dtype=np.float64) / float(self.frame_rate)

    def top(self, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, scores)``, each ``(windows, k)``: the top-k classes of every window."""
        labels = np.argsort(-self.probabilities, axis=1, kind="stable")[:, : min(k, len(self.classes))]
        return labels, np.take_along_axis(self.probabilities, labels, axis=1)

    def to_dict(self, topk: int = 5) -> dict:
        labels, scores = self.top(topk)
        start, end = self.seconds(self.frames[:, 0]), self.seconds(self.frames[:, 1] + 1)
        if start is None:
            start = end = [None] * len(self.frames)
        return {
            "path": self.path,
            "frame_rate": None if self.frame_rate is None else float(self.frame_rate),
            "num_frames": self.num_frames,
            "windows": [
                {
                    "first_frame": int(first),
                    "last_frame": int(last),
                    "start_s": None if s is None else round(float(s), 3),
                    "end_s": None if e is None else round(float(e), 3),
                    "labels": [self.classes[i] for i in row],
                    "scores": [round(float(v), 4) for v in values],
                }
                for (first, last), s, e, row, values in zip(self.frames, start, end, labels, scores)
            ],
        }


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
    """Top-k classes of each video (see :meth:`Predictor.predict`)."""
    predictor = Predictor(checkpoint, device=device, acceleration=acceleration, view_batch=view_batch)
    options = dict(num_workers=num_workers, view_batch=view_batch, backend=backend, frame_pattern=frame_pattern)
    return predictor.predict(inputs, topk=topk, protocol=protocol, **options)


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


def format_timeline(timeline: Timeline, fmt: str, topk: int = 5) -> str:
    """A timeline as JSON, CSV (a row per window and rank) or a table (a row per window)."""
    record = timeline.to_dict(topk)
    if fmt == "json":
        return json.dumps(record, indent=2)
    windows = record["windows"]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["window", "first_frame", "last_frame", "start_s", "end_s", "rank", "label", "score"])
        for number, w in enumerate(windows):
            span = [number, w["first_frame"], w["last_frame"], w["start_s"], w["end_s"]]
            for rank, (label, score) in enumerate(zip(w["labels"], w["scores"]), start=1):
                writer.writerow([*span, rank, label, f"{score:.4f}"])
        return out.getvalue().rstrip("\n")
    rows = [
        [number, f"{w['first_frame']}-{w['last_frame']}", "" if w["start_s"] is None else f"{w['start_s']:.2f}-{w['end_s']:.2f}"]
        + [", ".join(f"{label} {score:.2f}" for label, score in zip(w["labels"], w["scores"]))]
        for number, w in enumerate(windows)
    ]
    return format_table(("window", "frames", "seconds", f"top {topk}"), rows)
