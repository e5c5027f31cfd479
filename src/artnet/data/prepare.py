"""Prepare a dataset for fast training: re-encode or extract frames, then write lists with frame counts.

- ``to="video"``: every video re-encoded with H.264 at the working frame size (upstream 170 x 128),
  a keyframe every ``gop`` frames, no B-frames and x264's ``fastdecode`` tuning, so a 16-frame clip
  decodes from a keyframe at most ``gop - 1`` frames before it. Audio is dropped.
- ``to="frames"``: JPEG frames ``img_00001.jpg`` ... at the working size, one folder per video
  (the layout of TSN / ARTNet).
- ``to="flow"``: optical flow between consecutive frames at the working size, ``x_00001.jpg`` /
  ``y_00001.jpg`` ... one folder per video, N - 1 per video of N frames (:mod:`artnet.data.flow`).

Each output is written under a temporary name and renamed when complete, so a run can be stopped and
started again: finished videos are skipped, and what a killed run left half-written is removed when its
video comes round again. The output folder must be new, empty, or one that prepare wrote with the same
options (:func:`claim_output`, recorded in its ``.artnet-prepare.json``): prepare replaces lists and
re-converts outputs it cannot read, which it does only in a folder of its own. ``shard=(i, n)`` converts every n-th video from the i-th,
so n machines can share a dataset. Frame i of the output is frame i the decoder gives for the source
(see :mod:`artnet.data.readers`), so frame indices, counts and lists carry over. Frames are written as
the reader delivers them, upright: a phone video's rotation is applied once, and the output carries no
rotation flag to be applied again. What a reader refuses (a still image under a video name ...) fails
that video, named in the report. A flow folder's frame i is the motion from
frame i to i + 1, and lists count its flow frames.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from ..errors import DataError, OutputError
from ..outputs import atomic_write, output_folder
from ..parallel import map_parallel
from ..progress import progress_bar
from .annotations import VIDEO_EXTENSIONS, Annotations
from .flow import FlowOptions, require_opencv, write_flow_folder
from .h264 import write_h264
from .readers import UPSTREAM_FRAME_SIZE, Size, open_video

log = logging.getLogger(__name__)

TARGETS = ("video", "frames", "flow")
OUTPUT_MARKER = ".artnet-prepare.json"  # in an output folder: prepare wrote it, with these options


@dataclass(frozen=True)
class EncodeOptions:
    to: str = "video"
    size: Size = UPSTREAM_FRAME_SIZE
    gop: int = 16
    crf: int = 18
    quality: int = 90  # JPEG, frames and flow
    frame_pattern: str = "img_{:05d}.jpg"
    flow: FlowOptions = FlowOptions()

    @property
    def output_pattern(self) -> str | tuple[str, str] | None:
        """The file names of an output folder (for :func:`open_video`); ``None`` for a video file."""
        return {"frames": self.frame_pattern, "flow": self.flow.patterns}.get(self.to)

    def describe(self) -> dict:
        """The options that shape the output, as JSON values: what a resumed run or another shard must share."""
        shaping = {"video": ("gop", "crf"), "frames": ("quality", "frame_pattern"), "flow": ("quality", "flow")}[self.to]
        values = {"to": self.to, "size": self.size, **{name: getattr(self, name) for name in shaping}}
        return json.loads(json.dumps(values, default=asdict))


@dataclass
class PrepareReport:
    converted: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)
    frames: dict[str, int] = field(default_factory=dict)  # output path -> frame count


def find_videos(root: str | os.PathLike) -> list[str]:
    """Video files under ``root`` (any depth), as sorted paths relative to it."""
    root = _source_folder(root)
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            if os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS:
                found.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(found)


def claim_output(dst: str | os.PathLike, description: dict, *, force: bool = False) -> Path:
    """Make ``dst`` the output folder of a run described by ``description`` (:meth:`EncodeOptions.describe`,
    or ``{"to": "none"}`` for lists alone), before any work.

    Accepted: a new or empty folder, or one prepare wrote with the same options (a resumed run, another
    shard). Refused unless ``force``: a folder of other files, or one prepared with other options (the
    outputs would mix). The folder is checked to be writable; the description is recorded in it.
    """
    dst = output_folder(dst)
    marker = dst / OUTPUT_MARKER
    recorded = _read_marker(marker)
    if recorded is None and not force and any(not entry.name.startswith(f"{OUTPUT_MARKER}.") for entry in _entries(dst)):
        raise OutputError(
            f"{dst}: not empty and not an output of artnet prepare (no {OUTPUT_MARKER}); choose an empty or new folder, or --force to write into it"
        )
    if recorded is not None and recorded != description and not force:
        differ = "; ".join(
            f"{key} {recorded.get(key)} there, {description.get(key)} now" for key in sorted({*recorded, *description}) if recorded.get(key) != description.get(key)
        )
        raise OutputError(f"{dst}: prepared with other options ({differ}); choose another folder, or --force to mix them")
    if recorded != description:
        with atomic_write(marker, "w") as file:
            json.dump(description, file, indent=2, sort_keys=True)
    return dst


def _source_folder(root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: source folder not found")
    return root


def output_path(dst: str | os.PathLike, relative: str, to: str) -> Path:
    stem = os.path.splitext(relative)[0]
    return Path(dst) / (stem + ".mp4" if to == "video" else stem)


def select_shard(items: Sequence[str], shard: tuple[int, int] | None) -> list[str]:
    if shard is None:
        return list(items)
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise DataError(f"shard must be i/n with 0 <= i < n, not {index}/{count}")
    return list(items[index::count])


def prepare_videos(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    options: EncodeOptions = EncodeOptions(),
    *,
    jobs: int = 1,
    shard: tuple[int, int] | None = None,
    progress: bool = False,
    force: bool = False,
) -> PrepareReport:
    """Convert every video under ``src`` into ``dst`` (same relative layout); see the module doc.
    ``force``: write into a folder :func:`claim_output` would refuse."""
    if options.to not in TARGETS:
        raise DataError(f"unknown target {options.to!r}: use one of {', '.join(TARGETS)}")
    if Path(dst).resolve() == Path(src).resolve():
        raise DataError(f"{dst}: the output folder must differ from the source folder")
    if options.to == "flow":
        require_opencv(options.flow.method)  # one error now, not one per video
    _source_folder(src)
    claim_output(dst, options.describe(), force=force)  # before the source is walked: a refusal costs nothing
    items = select_shard(find_videos(src), shard)
    report = PrepareReport()
    tasks = [(str(Path(src) / rel), str(output_path(dst, rel, options.to)), options) for rel in items]
    results = progress_bar(map_parallel(_convert_one, tasks, jobs), total=len(tasks), description=f"{options.to} <- {src}", unit="video", show=progress)
    for source, outcome in results:
        kind, value, target = outcome
        if kind == "failed":
            report.failed.append((source, value))
            log.warning("%s", value)
            continue
        report.frames[target] = value
        if kind == "converted":
            report.converted += 1
        else:
            report.skipped += 1
    return report


def convert_video(source: str, target: str, options: EncodeOptions = EncodeOptions()) -> int:
    """Convert one video (atomically: a temporary name, renamed when complete), upright and without a
    display matrix; returns its frame count."""
    target_path = Path(target)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial_name(target_path)
    try:
        with open_video(source, backend="pyav", size=options.size) as reader:
            rate = reader.frame_rate or Fraction(30)  # none declared (or an absurd one)
            if options.to == "video":
                count = _encode_h264(reader, partial, rate, options)
            elif options.to == "frames":
                count = _write_jpegs(reader, partial, options)
            else:
                count = write_flow_folder(reader, partial, options.flow, options.quality)
        os.replace(partial, target_path)
    finally:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        elif partial.exists():
            partial.unlink()
    return count


def count_frames(path: str, frame_pattern: str | tuple[str, str] | None = None) -> int:
    with open_video(path, frame_pattern=frame_pattern, size=None) as reader:
        return reader.num_frames


def write_lists(
    annotations: Sequence[tuple[str, Annotations]],
    out_dir: str | os.PathLike,
    relative_to: str | os.PathLike,
    *,
    jobs: int = 1,
    progress: bool = False,
    known_frames: dict[str, int] | None = None,
) -> list[Path]:
    """Write each ``(name, annotations)`` as ``out_dir/name.txt`` in the upstream list format, with frame
    counts (counted where not already known), paths relative to ``relative_to``."""
    known = dict(known_frames or {})
    wanted = sorted({r.path for _, a in annotations for r in a.records} - set(known))
    counted = map_parallel(_count_one, [(p,) for p in wanted], jobs)
    for path, outcome in progress_bar(counted, total=len(wanted), description="counting frames", unit="video", show=progress):
        kind, value, _ = outcome
        if kind == "failed":
            log.warning("%s", value)
        else:
            known[path] = value
    written = []
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for name, a in annotations:
        kept = [r for r in a.records if r.path in known]
        unreadable = [r.path for r in a.records if r.path not in known]
        counted = Annotations([type(r)(r.path, r.label, known[r.path]) for r in kept], a.classes, a.source, a.missing + unreadable)
        target = Path(out_dir) / f"{name}.txt"
        counted.write_list(target, relative_to=relative_to)
        written.append(target)
    return written


# ---------------------------------------------------------------------------------------------------------


def _convert_one(source: str, target: str, options: EncodeOptions):
    _remove_partials(target)
    if os.path.exists(target):
        try:
            return "skipped", count_frames(target, options.output_pattern), target
        except DataError:
            log.warning("%s: unreadable output of an earlier run; converting again", target)
            shutil.rmtree(target) if os.path.isdir(target) else os.unlink(target)
    try:
        return "converted", convert_video(source, target, options), target
    except DataError as error:
        return "failed", str(error), target


def _partial_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")


def _remove_partials(target: str) -> None:
    """What a killed run left of ``target``: its half-written temporary files or folders (those of this video
    only, so that shards sharing the folder never touch each other's work)."""
    for stale in glob.glob(os.path.join(glob.escape(os.path.dirname(target)), f".{glob.escape(os.path.basename(target))}.partial-*")):
        shutil.rmtree(stale, ignore_errors=True) if os.path.isdir(stale) else os.unlink(stale)


def _read_marker(path: Path) -> dict | None:
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def _entries(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as entries:
        return list(entries)


def _count_one(path: str):
    try:
        return "counted", count_frames(path), path
    except DataError as error:
        return "failed", str(error), path


def _encode_h264(reader, path: Path, rate: Fraction, options: EncodeOptions) -> int:
    x264_options = {
        "g": str(options.gop),
        "keyint_min": str(options.gop),
        "bf": "0",
        "sc_threshold": "0",  # keyframes exactly every gop frames
        "tune": "fastdecode",
        "preset": "veryfast",
        "crf": str(options.crf),
    }
    # Not portable: the frames come out of FFmpeg's scaler, whose SIMD kernels differ by CPU
    # anyway, and x264's C code would make converting a large dataset markedly slower.
    count = write_h264(path, reader.iter_frames(), rate, x264_options, portable=False)
    if count == 0:
        raise DataError(f"{reader.path}: no frames to encode")
    return count


def _write_jpegs(reader, folder: Path, options: EncodeOptions) -> int:
    from PIL import Image

    folder.mkdir(parents=True)
    count = 0
    for array in reader.iter_frames():
        count += 1
        Image.fromarray(array).save(folder / options.frame_pattern.format(count), quality=options.quality)
    return count
