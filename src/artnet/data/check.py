"""``check-data``: scan a dataset for unreadable, missing, short, miscounted or mislabelled entries."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..errors import DataError
from ..parallel import map_parallel
from ..progress import progress_bar
from .annotations import Annotations, VideoRecord
from .readers import open_video

#: UCF101-style video names carry their class: v_<Class>_g08_c01
UCF_NAME = re.compile(r"^v_(?P<label>.+)_g\d+_c\d+$")
SEVERE = ("missing", "unreadable", "miscounted", "mislabelled")


@dataclass
class Problem:
    kind: str  # missing | unreadable | miscounted | mislabelled | short
    path: str
    detail: str  # a reader's error names the path (or a file in it) itself

    def __str__(self) -> str:
        """``kind: path: detail``, naming the path once."""
        if self.detail.startswith((f"{self.path}: ", f"{self.path.rstrip(os.sep)}{os.sep}")):
            return f"{self.kind}: {self.detail}"
        return f"{self.kind}: {self.path}: {self.detail}"


@dataclass
class CheckReport:
    total: int
    problems: list[Problem] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(p.kind == kind for p in self.problems)

    @property
    def ok(self) -> bool:
        """Every video there and usable; an empty dataset is not OK."""
        return self.total > 0 and not any(p.kind in SEVERE for p in self.problems)


def check_dataset(annotations: Annotations, *, clip_len: int = 16, decode: bool = True, jobs: int = 1, progress: bool = False) -> CheckReport:
    """Open every video (and, with ``decode``, decode every frame) and compare with its record."""
    report = CheckReport(total=len(annotations.records) + len(annotations.missing))
    report.problems += [Problem("missing", path, "not found under the dataset root") for path in annotations.missing]
    tasks = [(record, annotations.classes, clip_len, decode) for record in annotations.records]
    checked = map_parallel(check_record, tasks, jobs)
    for _, problems in progress_bar(checked, total=len(tasks), description="checking", unit="video", show=progress):
        report.problems += problems
    order = {kind: i for i, kind in enumerate(SEVERE + ("short",))}
    report.problems.sort(key=lambda p: (order[p.kind], p.path))
    return report


def check_record(record: VideoRecord, classes: list[str], clip_len: int = 16, decode: bool = True) -> list[Problem]:
    problems = []
    implied = implied_class(record.path, classes)
    if implied is not None and implied != record.label:
        problems.append(Problem("mislabelled", record.path, f"labelled {_name(classes, record.label)}, but its path says {classes[implied]!r}"))
    try:
        with open_video(record.path, size=(32, 32)) as reader:
            frames = sum(1 for _ in reader.iter_frames()) if decode else reader.num_frames
    except DataError as error:
        return problems + [Problem("unreadable", record.path, str(error))]
    if record.num_frames is not None and record.num_frames != frames:
        problems.append(Problem("miscounted", record.path, f"the list says {record.num_frames} frames, {frames} decode"))
    if frames < clip_len:
        problems.append(Problem("short", record.path, f"{frames} frames < {clip_len}: clips repeat the last frame"))
    return problems


def implied_class(path: str, classes: list[str]) -> int | None:
    """The class a path names, if any: its parent folder, or a UCF101-style ``v_<Class>_gNN_cNN`` name."""
    index = {name: i for i, name in enumerate(classes)}
    parent = os.path.basename(os.path.dirname(path.rstrip("/")))
    if parent in index:
        return index[parent]
    stem = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
    match = UCF_NAME.match(stem)
    if match and match["label"] in index:
        return index[match["label"]]
    return None


def _name(classes: list[str], label: int) -> str:
    return f"{label} ({classes[label]!r})" if 0 <= label < len(classes) else str(label)
