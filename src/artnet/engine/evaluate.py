"""Video-level evaluation: every view of a video through the model, logits averaged.

Protocols (``clips x crops`` per video):

* ``1clip``: the centre clip, centre crop (upstream's in-training validation);
* ``25x10``: upstream's test: 25 uniformly spaced clips x 10 crops (4 corners + centre, and
  their flips) = 250 views; logits averaged over crops, then over clips, no softmax (with the
  dataset's ``flip=False``, 5 crops: no mirrored view);
* ``10x3`` and ``25x1``: cheaper variants;
* ``val``: the training-time validation of a TSN recipe: the centre clip of each segment.

Each video is decoded once for all its views, views of several videos are batched together, and
with several processes each video is evaluated by exactly one of them. The dataset says how its views
are laid out (``views_per_clip``) and puts the logits of mirrored views in label order
(``views_in_label_order``: a flip label map), so the model knows nothing of the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from ..data.datasets import Unreadable, VideoDataset
from ..errors import ConfigError
from .acceleration import Acceleration
from .distributed import DistributedEnv, gather_objects, shard_indices
from .metrics import Metrics, ScoredVideos, compute_metrics


@dataclass(frozen=True)
class Protocol:
    name: str
    num_clips: int
    crops: str  # center | 3crop | 10crop
    mode: str = "test"  # the dataset mode that yields its views


PROTOCOLS = {
    "1clip": Protocol("1clip", 1, "center"),
    "25x10": Protocol("25x10", 25, "10crop"),
    "10x3": Protocol("10x3", 10, "3crop"),
    "25x1": Protocol("25x1", 25, "center"),
    "val": Protocol("val", 1, "center", mode="val"),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ConfigError(f"unknown test protocol {name!r}; choose from {', '.join(PROTOCOLS)}") from None


@dataclass
class VideoScores:
    """What the model said about each video: the logits of its views, or why it has none."""

    indices: np.ndarray  # dataset indices of the videos with a prediction, sorted
    labels: np.ndarray
    view_logits: np.ndarray  # (N, V, K)
    unreadable: dict[int, str]  # dataset index -> why the video could not be read

    def clip_scores(self, views_per_clip: int) -> np.ndarray:
        """``(N, clips, K)``: each clip's views (crops) averaged (upstream: logits, no softmax)."""
        n, views, k = self.view_logits.shape
        return self.view_logits.reshape(n, math.ceil(views / views_per_clip), views_per_clip, k).mean(axis=2)


@dataclass
class EvalResult:
    indices: np.ndarray  # dataset indices of the videos with a prediction, sorted
    labels: np.ndarray
    video_scores: np.ndarray  # (N, K) averaged logits
    clip_scores: np.ndarray  # (N, clips, K): crops averaged
    missing: list[int]  # dataset indices of videos that could not be read
    metrics: Metrics
    video_ids: list[str] = field(default_factory=list)  # of the videos with a prediction, as ``indices``
    missing_ids: list[str] = field(default_factory=list)  # of the videos that could not be read
    classes: list[str] = field(default_factory=list)

    def scored_videos(self, source: str) -> ScoredVideos:
        """The videos' scores with their ids and class names: what the report's ``scores.npz`` holds, and fusion takes."""
        return ScoredVideos(source, self.video_ids, self.labels, self.video_scores, self.classes, self.missing_ids)


def _as_views(clip: torch.Tensor) -> torch.Tensor:
    return clip.unsqueeze(0) if clip.dim() == 4 else clip


def batched_view_logits(
    model: nn.Module, items: Iterable, view_batch: int, device: torch.device, accel: Acceleration = Acceleration()
) -> Iterator[tuple[int, int, torch.Tensor | Unreadable]]:
    """``(views | Unreadable, label, index)`` items -> ``(index, label, logits (V, K) | Unreadable)``.

    Views of consecutive videos share forward passes of ``view_batch`` clips, under ``accel``'s
    autocast and in its input memory format.
    """
    queue: list[tuple[torch.Tensor, int, int]] = []

    def flush():
        if not queue:
            return
        views = torch.cat([v for v, _, _ in queue])
        outputs = []
        for chunk in views.split(view_batch):
            with accel.autocast(device.type):
                outputs.append(model(accel.prepare_input(chunk.to(device, non_blocking=True))).float().cpu())
        logits = torch.cat(outputs)
        for (views_i, label, index), part in zip(queue, logits.split([len(v) for v, _, _ in queue])):
            yield index, label, part
        queue.clear()

    queued = 0
    for clip, label, index in items:
        if isinstance(clip, Unreadable):
            yield int(index), int(label), clip
            continue
        views = _as_views(torch.as_tensor(clip))
        queue.append((views, int(label), int(index)))
        queued += len(views)
        if queued >= view_batch:
            yield from flush()
            queued = 0
    yield from flush()


def view_outputs(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    indices: list[int],
    device: torch.device,
    *,
    view_batch: int = 10,
    num_workers: int = 2,
    accel: Acceleration = Acceleration(),
) -> Iterator[tuple[int, int, torch.Tensor | Unreadable]]:
    """``(index, label, outputs (V, ...) | Unreadable)`` of the videos ``indices`` of ``dataset`` (yielding
    ``(views | Unreadable, label, index)``), in order, decoded by ``num_workers`` DataLoader processes
    and run through ``model`` (see :func:`batched_view_logits`). What test, predict and extract share."""
    shard = torch.utils.data.Subset(dataset, indices)
    loader = torch.utils.data.DataLoader(shard, batch_size=None, shuffle=False, num_workers=num_workers)
    yield from batched_view_logits(model, loader, view_batch, device, accel)


@torch.no_grad()
def score_videos(
    model: nn.Module,
    dataset: VideoDataset,
    env: DistributedEnv,
    *,
    view_batch: int = 10,
    num_workers: int = 2,
    max_videos: int = 0,
    accel: Acceleration = Acceleration(),
    progress=None,
) -> VideoScores:
    """Every view of every video of ``dataset`` (yielding ``(views | Unreadable, label, index)``) through
    the model, decoded by ``num_workers`` DataLoader processes; each video scored by exactly one
    process, the same result returned on every process. The logits of mirrored views come in label
    order (:meth:`VideoDataset.views_in_label_order`)."""
    was_training = model.training
    model.eval()
    size = len(dataset) if not max_videos else min(max_videos, len(dataset))
    records = []
    outputs = view_outputs(
        model, dataset, shard_indices(size, env), env.device, view_batch=view_batch, num_workers=num_workers, accel=accel
    )
    for index, label, logits in outputs:
        records.append((index, label, logits if isinstance(logits, Unreadable) else dataset.views_in_label_order(logits.numpy())))
        if progress is not None:
            progress(1)
    model.train(was_training)

    records = sorted((r for part in gather_objects(records, env) for r in part), key=lambda r: r[0])
    found = [r for r in records if not isinstance(r[2], Unreadable)]
    return VideoScores(
        indices=np.array([r[0] for r in found], dtype=np.int64),
        labels=np.array([r[1] for r in found], dtype=np.int64),
        view_logits=np.stack([r[2] for r in found]) if found else np.zeros((0, 1, 1), np.float32),
        unreadable={r[0]: r[2].reason for r in records if isinstance(r[2], Unreadable)},
    )


def evaluate(model: nn.Module, dataset: VideoDataset, env: DistributedEnv, **options) -> EvalResult:
    """Score ``dataset`` (its mode and views: a :class:`Protocol`'s; see :func:`score_videos` for
    ``options``) and measure it against its labels.

    Logits are averaged over the crops of a clip, then over the clips of a video.
    """
    scores = score_videos(model, dataset, env, **options)
    clip_scores = scores.clip_scores(dataset.views_per_clip)
    video_scores = clip_scores.mean(axis=1)
    missing = sorted(scores.unreadable)
    metrics = compute_metrics(video_scores, scores.labels, clip_scores, missing=len(missing))
    records = dataset.records
    return EvalResult(
        scores.indices,
        scores.labels,
        video_scores,
        clip_scores,
        missing,
        metrics,
        video_ids=[records[i].video_id for i in scores.indices],
        missing_ids=[records[i].video_id for i in missing],
        classes=list(dataset.classes or []),
    )
