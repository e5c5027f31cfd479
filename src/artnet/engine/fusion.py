"""Late fusion of saved test scores: the paper's two-stream rows (RGB, Flow, Fusion).

``artnet test`` writes each video's scores (the logits averaged over its views) to ``scores.npz``;
:func:`fuse_scores` combines several such files (:func:`load_scores`), or the :class:`~artnet.engine.metrics.ScoredVideos`
of tests just run, checked to hold the same videos with the same labels and classes in the same order,
as a weighted mean of their scores.

Upstream fuses logits: TSN's and ARTNet's ``tools/eval_scores.py`` average each file's views without a
softmax (``default_aggregation_func(..., normalization=False)``) and add the files up weighted by
``--score_weights``; TSN's README fuses RGB and flow at ``1 1.5``. The ARTNet paper does not state its
fusion weights. A weighted mean ranks the classes as upstream's weighted sum does (dividing by the
weights' sum changes no argmax) and keeps the scores on the inputs' scale, so a fused file fuses again.
``softmax=True`` fuses each file's class probabilities instead, for streams whose logits differ in scale.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..table import format_table
from .metrics import Metrics, ScoredVideos, compute_metrics, write_reports

#: TSN's RGB : flow weights (its README's ``eval_scores.py ... --score_weights 1 1.5``)
TSN_WEIGHTS = (1.0, 1.5)
KEYS = ("video_ids", "labels", "scores", "classes")


@dataclass
class Fusion:
    sources: list[ScoredVideos]  # aligned: every source's videos in the first one's order
    weights: list[float]
    softmax: bool
    scores: np.ndarray  # (N, K): the weighted mean
    metrics: Metrics

    @property
    def video_ids(self) -> list[str]:
        return self.sources[0].video_ids

    @property
    def labels(self) -> np.ndarray:
        return self.sources[0].labels

    @property
    def classes(self) -> list[str]:
        return self.sources[0].classes

    def table(self) -> str:
        """Each file's accuracy and the fusion's, as the paper's two-stream rows."""
        keys = ("top1", "top5", "avg", "mean_class_accuracy")
        rows = [
            [s.source, f"{w:g}", *(f"{getattr(s.metrics(), k):.2f}" for k in keys)] for s, w in zip(self.sources, self.weights)
        ]
        rows.append(["fusion" + (" (softmax)" if self.softmax else ""), "", *(f"{getattr(self.metrics, k):.2f}" for k in keys)])
        return format_table(("scores", "weight", "top-1", "top-5", "avg", "mean class"), rows)

    def write_reports(self, out_dir: str | Path) -> Path:
        """``artnet test``'s reports of the fused scores (``metrics.json``, ``per_class.csv``, ``scores.npz``, ...)."""
        fused = [{"scores": s.source, "weight": w} for s, w in zip(self.sources, self.weights)]
        scored = ScoredVideos("fusion", self.video_ids, self.labels, self.scores, self.classes, self.sources[0].missing_ids)
        return write_reports(out_dir, self.metrics, scored, extra={"fused": fused, "softmax": self.softmax})


def load_scores(path: str | Path) -> ScoredVideos:
    """A ``scores.npz`` written by ``artnet test`` (or by :meth:`Fusion.write_reports`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such score file (artnet test writes scores.npz into its report folder)")
    try:
        with np.load(path, allow_pickle=False) as saved:
            absent = [key for key in KEYS if key not in saved.files]
            if absent:
                raise DataError(f"{path}: not a score file of artnet test (no {absent[0]!r})")
            ids, labels, scores, classes = (saved[key] for key in KEYS)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable score file ({error})") from None
    if scores.ndim != 2 or scores.shape != (len(ids), len(classes)) or labels.shape != (len(ids),):
        raise DataError(f"{path}: scores of shape {scores.shape} do not fit {len(ids)} videos and {len(classes)} classes")
    ids = [str(i) for i in ids]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"{path}: video {duplicate!r} is scored twice")
    missing = []
    beside = path.with_name("metrics.json")
    if beside.is_file():
        missing = list(json.loads(beside.read_text()).get("missing_videos", []))
    return ScoredVideos(str(path), ids, labels.astype(np.int64), scores.astype(np.float64), [str(c) for c in classes], missing)


def fuse_scores(files: Sequence[ScoredVideos], weights: Sequence[float] | None = None, *, softmax: bool = False) -> Fusion:
    """The weighted mean of the sources' scores (logits, or their softmax; in float64), video by video."""
    if len(files) < 2:
        raise ConfigError("fusion needs two score files or more")
    weights = [1.0] * len(files) if weights is None else [float(w) for w in weights]
    if len(weights) != len(files):
        raise ConfigError(f"{len(weights)} weight(s) for {len(files)} score files: give one per file")
    if any(w < 0 for w in weights) or not sum(weights) > 0:
        raise ConfigError(f"fusion weights must be >= 0 and not all 0, got {' '.join(f'{w:g}' for w in weights)}")
    aligned = [files[0]] + [_aligned(files[0], other) for other in files[1:]]
    scores = [np.asarray(f.scores, np.float64) for f in aligned]  # a test's own float32 logits fuse as its score file's do
    terms = [_softmax(s) if softmax else s for s in scores]
    fused = sum(w * t for w, t in zip(weights, terms)) / sum(weights)
    metrics = compute_metrics(fused, aligned[0].labels, missing=len(aligned[0].missing_ids))
    return Fusion(aligned, weights, softmax, fused, metrics)


def _aligned(first: ScoredVideos, other: ScoredVideos) -> ScoredVideos:
    """``other`` with its videos in ``first``'s order; an error naming both sources if they do not score the same test."""
    where = f"{first.source} and {other.source}"
    if other.classes != first.classes:
        if len(other.classes) != len(first.classes):
            raise DataError(f"{where}: {len(first.classes)} and {len(other.classes)} classes; fuse scores of the same test set")
        index = next(i for i, (a, b) in enumerate(zip(first.classes, other.classes)) if a != b)
        raise DataError(f"{where}: class {index} is {first.classes[index]!r} in one, {other.classes[index]!r} in the other")
    position = {video: i for i, video in enumerate(other.video_ids)}
    only_first = [v for v in first.video_ids if v not in position]
    only_other = sorted(set(other.video_ids) - set(first.video_ids))
    if only_first or only_other:
        parts = [
            f"{len(ids)} only in {source} (e.g. {ids[0]!r})"
            for ids, source in ((only_first, first.source), (only_other, other.source))
            if ids
        ]
        raise DataError(f"{where}: not the same videos: {'; '.join(parts)}")
    order = np.array([position[v] for v in first.video_ids], dtype=np.int64)
    labels = other.labels[order]
    if not np.array_equal(labels, first.labels):
        i = int(np.flatnonzero(labels != first.labels)[0])
        raise DataError(f"{where}: video {first.video_ids[i]!r} has label {first.labels[i]} in one, {labels[i]} in the other")
    return ScoredVideos(other.source, list(first.video_ids), labels, other.scores[order], other.classes, other.missing_ids)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
