"""Classification metrics as the paper reports them, and the reports written beside a test.

* overall (instance-level) top-1 and top-5 and their mean, the paper's "avg" (``eval_scores.py``);
* mean class accuracy (``eval_net.py``);
* clip-level accuracy: each clip's crops averaged, before clips are averaged into a video.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import OutputError
from ..outputs import atomic_write, not_an_input, output_folder, refuse_replacing
from ..plots import pyplot, save_figure

REPORT_FILES = ("metrics.json", "per_class.csv", "scores.npz", "confusion.png")  # what write_reports writes


@dataclass
class Metrics:
    top1: float
    top5: float
    avg: float
    mean_class_accuracy: float
    clip_top1: float | None  # top-1 of single clips; None where only video scores are known (a fusion)
    videos: int
    missing: int

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        missing = f", {self.missing} without prediction" if self.missing else ""
        clips = f"  clip top-1 {self.clip_top1:.2f}" if self.clip_top1 is not None else ""
        return (
            f"top-1 {self.top1:.2f}  top-5 {self.top5:.2f}  avg {self.avg:.2f}  mean class {self.mean_class_accuracy:.2f}"
            f"{clips}  ({self.videos} videos{missing})"
        )


@dataclass
class ScoredVideos:
    """What a test says of each video, named: what a report's ``scores.npz`` holds and fusion combines."""

    source: str  # where the scores come from: a score file, or the report folder of the test that made them
    video_ids: list[str]
    labels: np.ndarray  # (N,)
    scores: np.ndarray  # (N, K): the logits averaged over each video's views
    classes: list[str]
    missing_ids: list[str] = field(default_factory=list)  # videos of the test set without a prediction

    def metrics(self) -> Metrics:
        return compute_metrics(self.scores, self.labels, missing=len(self.missing_ids))


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return 100.0 * float(np.mean((top == labels[:, None]).any(axis=1)))


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Accuracy of each class (rows: true class); NaN for a class with no test video."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * np.diag(matrix) / totals


def compute_metrics(video_scores: np.ndarray, labels: np.ndarray, clip_scores: np.ndarray | None = None, missing: int = 0) -> Metrics:
    """``video_scores`` (N, K); ``clip_scores`` (N, clips, K) or None."""
    num_classes = video_scores.shape[1]
    matrix = confusion_matrix(video_scores.argmax(axis=1), labels, num_classes)
    top1, top5 = topk_accuracy(video_scores, labels, 1), topk_accuracy(video_scores, labels, 5)
    clip_top1 = None
    if clip_scores is not None and clip_scores.size:
        clips = clip_scores.shape[1]
        clip_top1 = topk_accuracy(clip_scores.reshape(-1, num_classes), np.repeat(labels, clips), 1)
    return Metrics(
        top1=top1,
        top5=top5,
        avg=(top1 + top5) / 2,
        mean_class_accuracy=float(np.nanmean(per_class_accuracy(matrix))) if len(labels) else float("nan"),
        clip_top1=clip_top1,
        videos=len(labels),
        missing=missing,
    )


def write_reports(
    out_dir: str | Path, metrics: Metrics, scored: ScoredVideos, *, extra: dict | None = None, plot: bool = True
) -> Path:
    """:data:`REPORT_FILES` of ``scored`` measured as ``metrics``: ``metrics.json`` (with ``extra``),
    ``per_class.csv``, ``scores.npz`` (ids, labels, logits) and ``confusion.png``, each written whole or
    not at all."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "metrics.json", "w") as file:
        json.dump({**metrics.as_dict(), **(extra or {}), "missing_videos": list(scored.missing_ids)}, file, indent=2)
    labels, classes = scored.labels, scored.classes
    matrix = confusion_matrix(scored.scores.argmax(axis=1), labels, len(classes))
    accuracy = per_class_accuracy(matrix)
    with atomic_write(out / "per_class.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["class_index", "class", "videos", "correct", "accuracy"])
        for index, name in enumerate(classes):
            total = int(matrix[index].sum())
            writer.writerow([index, name, total, int(matrix[index, index]), "" if total == 0 else f"{accuracy[index]:.2f}"])
    with atomic_write(out / "scores.npz") as file:
        ids = np.array(scored.video_ids)
        np.savez_compressed(file, video_ids=ids, labels=labels, scores=scored.scores, classes=np.array(classes))
    if plot:
        plot_confusion(matrix, classes, out / "confusion.png")
    return out


def claim_report_dir(folder: Path, force: bool = False, default: bool = False, inputs: Iterable[str | Path] = ()) -> Path:
    """``folder`` for a report of :func:`write_reports` (``artnet test``'s, ``artnet fuse``'s), before the work:
    writable, and new, empty, or holding only earlier reports (which are replaced); other files are refused
    unless ``force``, and a report file that is one of ``inputs`` (a fused ``scores.npz``) always is.
    ``default``: the folder was not named by ``--out``."""
    how = "--out chooses another report folder" if default else "choose another --out"
    if folder.is_dir() and not force:
        foreign = [entry for entry in sorted(folder.iterdir()) if not _report_part(entry)]
        how_to_allow = f"--force writes the report there all the same, or {how}"
        refuse_replacing(folder, foreign, "files that are not an artnet test report", how_to_allow)
    for name in REPORT_FILES:
        not_an_input(folder / name, inputs)
    try:
        return output_folder(folder)
    except OutputError as error:
        raise OutputError(f"{error}; {how}") from None


def _report_part(path: Path) -> bool:
    """A file of a report of :func:`write_reports`, or a split's report folder."""
    if path.is_dir():
        return path.name.startswith("split") and path.name[5:].isdigit() and all(_report_part(p) for p in path.iterdir())
    if path.name == "metrics.json":
        try:
            written = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            return False
        if not isinstance(written, dict) or "top1" not in written:
            return False
        return {"checkpoint", "protocol"} <= written.keys() or "fused" in written  # artnet test's, or artnet fuse's
    return path.name in REPORT_FILES


def plot_confusion(matrix: np.ndarray, classes: list[str], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.25 * len(classes), 40)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    if len(classes) <= 60:
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion (rows normalised)")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
