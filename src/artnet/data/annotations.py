"""Annotation files -> one list of :class:`VideoRecord` (path, label, optional frame count).

Formats: Kinetics-400 CSV, UCF101 ``classInd.txt`` + ``{train,test}list0N.txt``, HMDB51
``<class>_test_splitN.txt``, and plain lists (upstream ``<path> <num_frames> <label>`` or
``<path> <label>``). A malformed line fails with ``file:line: what is wrong``. A file holds one line
format, set by its first line: a line of another (a ``<path> <label>`` line among ``<path> <num_frames>
<label>`` lines, a class name among index labels, a CSV row with more or fewer columns than the header)
fails too, rather than be read as something else. A file that lists no video is an error. Entries
whose video (file or frame folder) is not under ``root`` are dropped, counted in
``Annotations.missing`` and fail the load above ``max_missing_ratio``.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import DataError
from ..outputs import atomic_write

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".3gp", ".ogv", ".wmv"})
HMDB51_SPLIT_VALUES = {"0": None, "1": "train", "2": "test"}
HMDB51_CLASS_ORDERS = ("upstream", "alphabetical")
SPLITS = (1, 2, 3)  # of the formats with numbered splits (UCF101, HMDB51)


@dataclass(frozen=True)
class VideoRecord:
    path: str  # a video file or a frame folder, resolved against the dataset root
    label: int
    num_frames: int | None = None

    @property
    def video_id(self) -> str:
        return _stem(os.path.basename(self.path.rstrip("/")))


@dataclass
class Annotations:
    records: list[VideoRecord]
    classes: list[str]
    source: str
    missing: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def write_list(self, path: str | os.PathLike, relative_to: str | os.PathLike | None = None) -> None:
        """Write the upstream list format ``<path> <num_frames> <label>`` (``<path> <label>`` without counts).

        Every record has a frame count or none has: a list holds one format.
        """
        counted = [record.num_frames is not None for record in self.records]
        if any(counted) and not all(counted):
            uncounted = self.records[counted.index(False)]
            raise DataError(f"{uncounted.path}: no frame count, unlike other entries; a list holds one format")
        lines = []
        for record in self.records:
            video = os.path.relpath(record.path, relative_to) if relative_to is not None else record.path
            if any(c.isspace() for c in video):
                raise DataError(f"{record.path}: the list format cannot hold a path with spaces")
            counts = "" if record.num_frames is None else f" {record.num_frames}"
            lines.append(f"{video}{counts} {record.label}\n")
        with atomic_write(path, "w") as file:  # a killed run leaves the old list or none, never a truncated one
            file.write("".join(lines))


def kinetics400_classes() -> list[str]:
    """The 400 Kinetics class names in the canonical (sorted) order of the official CSVs and val lists."""
    return _package_names("kinetics400_classes.txt")


def hmdb51_classes(order: str = "upstream") -> list[str]:
    """HMDB51 class names: ``"upstream"`` (the order of upstream's ``class_list.txt``) or ``"alphabetical"``."""
    names = _package_names("hmdb51_classes.txt")
    if order == "alphabetical":
        return sorted(names)
    if order not in HMDB51_CLASS_ORDERS:
        raise DataError(f"unknown HMDB51 class order {order!r}: use {' or '.join(map(repr, HMDB51_CLASS_ORDERS))}")
    return names


@dataclass(frozen=True)
class AnnotationFormat:
    """What a format reads and which lists a dataset of it has (for :func:`dataset_lists`)."""

    name: str
    annotations: str | None  # what ``annotations`` names for it; None: the videos' folders are the annotation
    splits: bool = False  # numbered splits (SPLITS), each with a train and a test subset
    several: bool = False  # ``annotations`` may name several files, one list each (Kinetics CSVs, list files)

    def test_set(self, root: str | None, annotations: str | None, test_annotations: str | None) -> tuple[str | None, str | None]:
        """``(root, annotations)`` of the test set, where a config names its own test annotations
        (``test_annotations``; none: the training set's, with the test subset): the file that describes it,
        or, for a format whose folders are the annotation, the root of its ``<class>/<video>`` tree."""
        if not test_annotations:
            return root, annotations
        if self.annotations is None:
            return test_annotations, None
        return root, test_annotations


FORMATS: dict[str, AnnotationFormat] = {
    f.name: f
    for f in (
        AnnotationFormat("ucf101", "the split folder (classInd.txt, trainlist0N.txt, testlist0N.txt)", splits=True),
        AnnotationFormat("hmdb51", "the split folder (<class>_test_splitN.txt)", splits=True),
        AnnotationFormat("kinetics", "a Kinetics CSV (label,youtube_id,time_start,time_end,split)", several=True),
        AnnotationFormat("list", "a list file ('<path> <num_frames> <label>' lines)", several=True),
        AnnotationFormat("folders", None),
    )
}
KINDS = tuple(FORMATS)


def annotation_format(kind: str) -> AnnotationFormat:
    if kind not in FORMATS:
        raise DataError(f"unknown annotation kind {kind!r}: use one of {', '.join(KINDS)}")
    return FORMATS[kind]


def load_annotations(
    kind: str,
    *,
    root: str | os.PathLike | None,
    annotations: str | os.PathLike | None = None,
    split: int = 1,
    subset: str | None = None,
    classes: Sequence[str] | str | os.PathLike | None = None,
    class_order: str = "upstream",
    max_missing_ratio: float = 0.0,
) -> Annotations:
    """One entry point for every format, ``kind`` in :data:`KINDS`; each takes the options that apply to it.

    ``root`` is the folder holding the videos (or frame folders); ``None`` keeps paths as written and
    checks nothing on disk. ``annotations`` is what describes the videos (see :data:`FORMATS`): the
    split folder of UCF101 / HMDB51 (with ``split`` and ``subset``, train by default), a Kinetics CSV
    (``subset``: the rows of one ``split`` value; all rows by default) or a list file; ``folders``
    reads ``root/<class>/<video>``. ``classes`` names the classes of a Kinetics CSV, a list or a folder
    tree; ``class_order`` orders HMDB51's.
    """
    spec = annotation_format(kind)
    if spec.annotations is not None and not annotations:
        raise DataError(f"the {kind} format needs its annotations: {spec.annotations}")
    if kind == "ucf101":
        return load_ucf101(root, splits_dir=annotations, split=split, subset=subset or "train", max_missing_ratio=max_missing_ratio)
    if kind == "hmdb51":
        return load_hmdb51(
            root, splits_dir=annotations, split=split, subset=subset or "train", class_order=class_order, max_missing_ratio=max_missing_ratio
        )
    if kind == "kinetics":
        return load_kinetics(root, csv_file=annotations, subset=subset, classes=classes, max_missing_ratio=max_missing_ratio)
    if kind == "list":
        return load_list(root, list_file=annotations, classes=classes, max_missing_ratio=max_missing_ratio)
    return load_folders(root, classes=classes)


def dataset_lists(kind: str, root: str | os.PathLike, annotations: Sequence[str | os.PathLike] = (), *, splits: Sequence[int] = (1, 2, 3), **options) -> list[tuple[str, Annotations]]:
    """Every list of a dataset, named: UCF101 / HMDB51 train and test of each split, one per Kinetics CSV or
    list file, or the folder tree. ``options`` are those of :func:`load_annotations`."""
    spec = annotation_format(kind)
    sources = list(annotations)
    if spec.annotations is not None and not sources:
        raise DataError(f"the {kind} format needs its annotations: {spec.annotations}")
    if spec.splits:
        return [
            (f"{kind}_{subset}_split{split}", load_annotations(kind, root=root, annotations=sources[0], split=split, subset=subset, **options))
            for split in splits
            for subset in ("train", "test")
        ]
    if spec.several:
        prefix = "kinetics_" if kind == "kinetics" else ""
        return [(f"{prefix}{Path(source).stem}", load_annotations(kind, root=root, annotations=source, **options)) for source in sources]
    return [(kind, load_annotations(kind, root=root, **options))]


def load_ucf101(
    root: str | os.PathLike | None,
    *,
    splits_dir: str | os.PathLike,
    split: int = 1,
    subset: str = "train",
    max_missing_ratio: float = 0.0,
) -> Annotations:
    """UCF101: ``classInd.txt`` (1-based) + ``trainlist0N.txt`` / ``testlist0N.txt``; labels 0-based.

    As upstream, a video's class is its folder in the list (``ApplyEyeMakeup/v_..._c01.avi``); the
    1-based label of a train line must agree with it.
    """
    splits_dir = Path(splits_dir)
    _check_split(split)
    if subset not in ("train", "test"):
        raise DataError(f"UCF101 subset must be 'train' or 'test', not {subset!r}")
    class_file = splits_dir / "classInd.txt"
    by_index: dict[int, str] = {}
    for where, fields in _fields(class_file):
        if len(fields) != 2 or not fields[0].isdigit():
            raise DataError(f"{where}: expected '<index> <class>', got {' '.join(fields)!r}")
        by_index[int(fields[0])] = fields[1]
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise DataError(f"{class_file}: class indices must run 1..{len(by_index)} without gaps")
    classes = [by_index[i] for i in range(1, len(by_index) + 1)]
    label_of = {name: i for i, name in enumerate(classes)}

    list_file = splits_dir / f"{subset}list{split:02d}.txt"
    entries = []
    line_format = _LineFormat({1: "<class>/<video>", 2: "<class>/<video> <label>"})
    for where, fields in _fields(list_file):
        line_format.check(where, fields)
        video = fields[0]
        folder = video.split("/")[0] if "/" in video else None
        if folder is None:
            raise DataError(f"{where}: {video!r} has no class folder ('<class>/<video>')")
        if folder not in label_of:
            raise DataError(f"{where}: unknown class {folder!r} (not in {class_file.name})")
        label = label_of[folder]
        if len(fields) == 2:
            if not fields[1].isdigit():
                raise DataError(f"{where}: label {fields[1]!r} is not a number")
            if int(fields[1]) - 1 != label:
                raise DataError(f"{where}: label {fields[1]} does not match the class folder {folder!r} (class {label + 1})")
        entries.append((video, label, None, ()))
    return _finish(entries, classes, f"ucf101 split {split} {subset} ({list_file})", root, max_missing_ratio)


def load_hmdb51(
    root: str | os.PathLike | None,
    *,
    splits_dir: str | os.PathLike,
    split: int = 1,
    subset: str = "train",
    class_order: str = "upstream",
    class_list: str | os.PathLike | None = None,
    max_missing_ratio: float = 0.0,
) -> Annotations:
    """HMDB51: ``<class>_test_split{1,2,3}.txt`` files of ``<video> <0|1|2>`` (1 train, 2 test, 0 unused).

    Class indices follow upstream's ``class_list.txt`` (shipped with artnet; not alphabetical) by default,
    ``class_order="alphabetical"`` sorts them, and ``class_list`` reads the order from a file.
    """
    splits_dir = Path(splits_dir)
    _check_split(split)
    if subset not in ("train", "test"):
        raise DataError(f"HMDB51 subset must be 'train' or 'test', not {subset!r}")
    if class_list is not None:
        classes = _class_names(class_list)
    else:
        classes = hmdb51_classes(class_order)
    label_of = {name: i for i, name in enumerate(classes)}

    suffix = f"_test_split{split}.txt"
    if not splits_dir.is_dir():
        raise DataError(f"{splits_dir}: HMDB51 split folder not found")
    files = {f.name[: -len(suffix)]: f for f in splits_dir.iterdir() if f.name.endswith(suffix)}
    for name in sorted(files):
        if name not in label_of:
            raise DataError(f"{files[name]}: unknown class {name!r}")
    absent = [name for name in classes if name not in files]
    if absent:
        raise DataError(f"{splits_dir}: no split {split} file for class(es) {', '.join(absent)}")

    entries = []
    for name in classes:
        for where, fields in _fields(files[name]):
            if len(fields) != 2 or fields[1] not in HMDB51_SPLIT_VALUES:
                raise DataError(f"{where}: expected '<video> <0|1|2>', got {' '.join(fields)!r}")
            if HMDB51_SPLIT_VALUES[fields[1]] == subset:
                entries.append((fields[0], label_of[name], None, ()))
    return _finish(entries, classes, f"hmdb51 split {split} {subset} ({splits_dir})", root, max_missing_ratio)


def load_kinetics(
    root: str | os.PathLike | None,
    *,
    csv_file: str | os.PathLike,
    subset: str | None = None,
    classes: Sequence[str] | str | os.PathLike | None = None,
    max_missing_ratio: float = 0.0,
) -> Annotations:
    """Kinetics CSV (``label,youtube_id,time_start,time_end,split[,is_cc]``).

    Videos are ``{youtube_id}_{start:06d}_{end:06d}.<ext>`` (or a frame folder of that name, or one named
    by the bare ``youtube_id``), flat or in class folders. Class indices follow the 400 canonical names
    unless ``classes`` is given. ``subset`` keeps the rows of one ``split`` value (``"val"`` and
    ``"validate"`` are the same).
    """
    csv_file = Path(csv_file)
    class_names = kinetics400_classes() if classes is None else _class_names(classes)
    label_of = {name: i for i, name in enumerate(class_names)}
    wanted_subset = {"val": "validate"}.get(subset, subset)
    entries = []
    with _open_text(csv_file) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{csv_file}: empty file")
        columns = {name.strip(): i for i, name in enumerate(header)}
        needed = ("label", "youtube_id", "time_start", "time_end")
        if any(name not in columns for name in needed):
            raise DataError(f"{csv_file}:1: header must name the columns {', '.join(needed)}; got {','.join(header)!r}")
        for row in reader:
            where = f"{csv_file}:{reader.line_num}"
            if not row or not "".join(row).strip():
                continue
            if len(row) != len(header):
                raise DataError(f"{where}: expected the header's {len(header)} columns, got {len(row)}")
            if wanted_subset is not None and "split" in columns:
                row_subset = row[columns["split"]].strip()
                if {"val": "validate"}.get(row_subset, row_subset) != wanted_subset:
                    continue
            label_name = row[columns["label"]].strip()
            if label_name not in label_of:
                raise DataError(f"{where}: unknown class {label_name!r}")
            youtube_id = row[columns["youtube_id"]].strip()
            try:
                start, end = (int(float(row[columns[c]])) for c in ("time_start", "time_end"))
            except ValueError:
                raise DataError(f"{where}: time_start / time_end must be numbers") from None
            clip_id = f"{youtube_id}_{start:06d}_{end:06d}"
            entries.append((clip_id, label_of[label_name], None, (youtube_id,)))
    name = f"kinetics {subset or 'all'} ({csv_file})"
    return _finish(entries, class_names, name, root, max_missing_ratio)


def load_list(
    root: str | os.PathLike | None,
    *,
    list_file: str | os.PathLike,
    classes: Sequence[str] | str | os.PathLike | None = None,
    max_missing_ratio: float = 0.0,
) -> Annotations:
    """A list of ``<path> <num_frames> <label>`` (upstream) or ``<path> <label>`` lines, one or the other.

    A label is a 0-based index, or a class name when ``classes`` (names, or a file of one name per line /
    ``<index> <name>`` lines) is given; the first line decides which for the whole file. Without
    ``classes`` the names are the indices as strings.
    """
    list_file = Path(list_file)
    class_names = None if classes is None else _class_names(classes)
    label_of = {} if class_names is None else {name: i for i, name in enumerate(class_names)}
    entries = []
    line_format = _LineFormat({3: "<path> <num_frames> <label>", 2: "<path> <label>"})
    labels_are_names, first_line = None, ""  # set by the first line
    for where, fields in _fields(list_file):
        line_format.check(where, fields)
        label_text = fields[-1]
        is_index = label_text.lstrip("-").isdigit()
        if labels_are_names is None:
            labels_are_names, first_line = not is_index, _line(where)
        if labels_are_names and label_text in label_of:
            label = label_of[label_text]
        elif labels_are_names and is_index:
            raise DataError(f"{where}: label {label_text} is an index, but this file's labels are names (as on {first_line})")
        elif not labels_are_names and not is_index:
            raise DataError(f"{where}: label {label_text!r} is a name, but this file's labels are indices (as on {first_line})")
        elif is_index:
            label = int(label_text)
            if label < 0 or (class_names is not None and label >= len(class_names)):
                raise DataError(f"{where}: label {label} is out of range (0..{len(class_names) - 1 if class_names else 'N'})")
        else:
            raise DataError(f"{where}: unknown class {label_text!r}")
        num_frames = None
        if len(fields) == 3:
            if not fields[1].isdigit():
                raise DataError(f"{where}: frame count {fields[1]!r} is not a non-negative integer")
            num_frames = int(fields[1])
        entries.append((fields[0], label, num_frames, ()))
    if class_names is None:
        class_names = [str(i) for i in range(max((e[1] for e in entries), default=-1) + 1)]
    return _finish(entries, class_names, f"list {list_file}", root, max_missing_ratio)


def load_folders(root: str | os.PathLike, *, classes: Sequence[str] | str | os.PathLike | None = None) -> Annotations:
    """A folder per class: ``root/<class>/<video file or frame folder>``; classes sorted unless given."""
    root_path = Path(root) if root is not None else None
    if root_path is None or not root_path.is_dir():
        raise DataError(f"{root}: dataset root is not a folder")
    videos = {}  # class folder -> its videos; folders without any (e.g. lists/) are not classes
    for folder in sorted(entry.name for entry in os.scandir(root_path) if entry.is_dir()):
        entries = sorted(os.scandir(root_path / folder), key=lambda e: e.name)
        found = [e.path for e in entries if e.is_dir() or os.path.splitext(e.name)[1].lower() in VIDEO_EXTENSIONS]
        if found:
            videos[folder] = found
    class_names = list(videos) if classes is None else _class_names(classes)
    label_of = {name: i for i, name in enumerate(class_names)}
    records = []
    for name, paths in videos.items():
        if name not in label_of:
            raise DataError(f"{root_path / name}: unknown class {name!r}")
        records += [VideoRecord(path, label_of[name]) for path in paths]
    if not records:
        raise DataError(f"{root}: no videos in class folders")
    return Annotations(records, class_names, f"folders {root}")


# ---------------------------------------------------------------------------------------------------------
# Helpers


def _finish(entries, classes, source, root, max_missing_ratio) -> Annotations:
    """Resolve every ``(name, label, num_frames, aliases)`` entry against ``root``; drop and count the missing."""
    if not entries:
        raise DataError(f"{source}: lists no video")
    if root is None:
        return Annotations([VideoRecord(name, label, frames) for name, label, frames, _ in entries], list(classes), source)
    paths = resolve_videos(root, [(name, *aliases) for name, _, _, aliases in entries])
    records, missing = [], []
    for (name, label, frames, _), path in zip(entries, paths):
        if path is None:
            missing.append(name)
        else:
            records.append(VideoRecord(path, label, frames))
    annotations = Annotations(records, list(classes), source, missing)
    check_missing(annotations, root, max_missing_ratio)
    return annotations


def check_missing(annotations: Annotations, root, max_missing_ratio: float) -> None:
    total = len(annotations.records) + len(annotations.missing)
    if not annotations.missing:
        return
    ratio = len(annotations.missing) / max(total, 1)
    summary = (
        f"{annotations.source}: {len(annotations.missing)} of {total} videos ({ratio:.1%}) not found under {root}"
        f" (first: {annotations.missing[0]})"
    )
    if ratio > max_missing_ratio:
        raise DataError(f"{summary}; above max_missing_ratio={max_missing_ratio:g}")
    log.warning("%s; kept the other %d", summary, len(annotations.records))


def resolve_videos(root: str | os.PathLike, candidates: Sequence[Sequence[str]]) -> list[str | None]:
    """Find each video under ``root``: a path as written, or a file / frame folder with the same stem.

    ``candidates[i]`` is the entry as written first, then other names it may go by. A video re-encoded
    to another container (``.avi`` -> ``.mp4``) or extracted to a frame folder (``v_x.avi`` -> ``v_x/``),
    flat or in class folders, is found by its stem; exact paths are tried first, a walk of ``root``
    (three levels deep) only for the rest.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise DataError(f"{root}: dataset root is not a folder")
    resolved: list[str | None] = []
    pending: dict[str, list[int]] = {}
    for i, names in enumerate(candidates):
        found = None
        for name in names:
            for option in _direct_options(name):
                full = root_path / option
                if full.exists():
                    found = str(full)
                    break
            if found:
                break
        resolved.append(found)
        if found is None:
            for name in names:
                pending.setdefault(_stem(os.path.basename(name)), []).append(i)
    if pending:
        for stem, path in _walk_stems(root_path, set(pending)).items():
            for i in pending[stem]:
                if resolved[i] is None:
                    resolved[i] = path
    return resolved


def _direct_options(name: str) -> Iterator[str]:
    yield name
    stem_path = os.path.join(os.path.dirname(name), _stem(os.path.basename(name)))
    if stem_path != name:
        yield stem_path  # frame folder beside where the video would be
    base = _stem(os.path.basename(name))
    if base != name:
        yield base  # flat layout


def _walk_stems(root: Path, stems: set[str], depth: int = 3) -> dict[str, str]:
    found: dict[str, str] = {}
    frontier = [root]
    for _ in range(depth):
        next_frontier = []
        for folder in frontier:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                is_dir = entry.is_dir()
                stem = entry.name if is_dir else _stem(entry.name)
                is_video = is_dir or os.path.splitext(entry.name)[1].lower() in VIDEO_EXTENSIONS
                if stem in stems and is_video and stem not in found:
                    found[stem] = entry.path
                elif is_dir:
                    next_frontier.append(entry.path)
        frontier = next_frontier
    return found


def _stem(name: str) -> str:
    stem, ext = os.path.splitext(name)
    return stem if ext.lower() in VIDEO_EXTENSIONS else name


def _check_split(split: int) -> None:
    if split not in SPLITS:
        raise DataError(f"split must be {', '.join(map(str, SPLITS[:-1]))} or {SPLITS[-1]}, not {split!r}")


def _open_text(path: Path):
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise DataError(f"{path}: annotation file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not an annotation file") from None


def _fields(path: Path) -> Iterator[tuple[str, list[str]]]:
    """``(file:line, whitespace-split fields)`` of each non-blank line (CRLF, BOM and trailing spaces are fine)."""
    with _open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if fields:
                yield f"{path}:{number}", fields


def _class_names(classes: Sequence[str] | str | os.PathLike) -> list[str]:
    """Names as given, or read from a file of one name per line or of UCF101's ``<index> <name>`` lines.

    Names may hold spaces (Kinetics), even a leading number. The file is indexed when its indices are
    those of every line, 0..N-1 or 1..N in any order, or when its first line is ``0 <name>`` or
    ``1 <name>``: then a line that breaks the numbering is an error. Indexed names are in index order.
    """
    if not isinstance(classes, (str, os.PathLike)):
        return list(classes)
    path = Path(classes)
    lines = list(_fields(path))
    if not lines:
        raise DataError(f"{path}: no class names")

    def indexed(fields: list[str]) -> bool:
        return len(fields) > 1 and fields[0].isdigit()

    numbers = sorted(int(fields[0]) for _, fields in lines if indexed(fields))
    numbered = numbers in (list(range(len(lines))), list(range(1, len(lines) + 1)))
    if not numbered and not (indexed(lines[0][1]) and int(lines[0][1][0]) in (0, 1)):
        return [" ".join(fields) for _, fields in lines]
    by_index: dict[int, str] = {}
    for where, fields in lines:
        if not indexed(fields):
            raise DataError(f"{where}: expected '<index> <name>' as on {_line(lines[0][0])}, got {' '.join(fields)!r}")
        if int(fields[0]) in by_index:
            raise DataError(f"{where}: class index {fields[0]} is given twice")
        by_index[int(fields[0])] = " ".join(fields[1:])
    first = 0 if 0 in by_index else 1
    if sorted(by_index) != list(range(first, first + len(by_index))):
        raise DataError(f"{path}: class indices must run {first}..{first + len(by_index) - 1} without gaps")
    return [by_index[i] for i in sorted(by_index)]


class _LineFormat:
    """The line format of a whitespace-separated file: its first line picks one of ``formats`` (field
    count -> description), and every other line must have the same."""

    def __init__(self, formats: dict[int, str]):
        self.formats, self.fields, self.first_line = formats, None, ""

    def check(self, where: str, fields: list[str]) -> None:
        if len(fields) not in self.formats:
            expected = " or ".join(repr(f) for f in self.formats.values())
            raise DataError(f"{where}: expected {expected}, got {len(fields)} fields")
        if self.fields is None:
            self.fields, self.first_line = len(fields), _line(where)
        elif len(fields) != self.fields:
            raise DataError(
                f"{where}: a {self.formats[len(fields)]!r} line among {self.formats[self.fields]!r} lines"
                f" (as on {self.first_line}); a file holds one format"
            )


def _line(where: str) -> str:
    """``line N`` of a ``file:N`` location."""
    return "line " + where.rsplit(":", 1)[1]


def _package_names(filename: str) -> list[str]:
    text = resources.files(__package__).joinpath("resources", filename).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
