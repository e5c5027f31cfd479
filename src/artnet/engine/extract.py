"""``artnet extract``: features of every video, for temporal action localisation, retrieval, probes.

For each video, the pooled features the classifier reads (:meth:`VideoResNet.features`, ``D`` =
512 at full width) or the output of any named module averaged over time and space (``stage``,
e.g. ``layer3``): per clip (``(clips, D)``, the crops of a clip averaged) or averaged over the
video (``(D,)``). Clips are cut as the test protocol cuts them (``25x1``: 25 uniformly spaced
clips, centre crop) and as the checkpoint's model was trained (its :class:`~artnet.data.ClipSpec`),
through the path ``artnet test`` and ``predict`` take: :class:`~artnet.data.VideoDataset` in test
mode, DataLoader workers, the acceleration chosen for the model
(:func:`~artnet.engine.evaluate.view_outputs`).

The output folder::

    <video>.npy      one per video (float32), named by the video's path under the folder or list root it came from
    index.csv        one row per input video: video, label, class, features file, shape, error
    extract.json     what was extracted: checkpoint, model, stage, protocol, per clip or per video, the clip spec

With several processes (``torchrun``), each video is written by exactly one of them. A run that was
interrupted resumes: a video whose features file exists is skipped (files are written under a
temporary name, then renamed), and a folder extracted with other settings is refused rather than
mixed. The folder is checked before the videos are (:func:`claim_features_dir`): new, empty, or an
extraction of artnet's; a folder of other files, or a file at a video's name that is not features of
this extraction, is refused unless ``force``, which extracts it again. A video that cannot be read is
reported, on a line and in the index, and the run goes on.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data import Annotations, Unreadable, VideoDataset, VideoRecord, load_list
from ..data.annotations import VIDEO_EXTENSIONS
from ..errors import ConfigError, DataError, OutputError
from ..outputs import atomic_write, not_an_input, output_folder, refuse_replacing
from ..progress import progress_bar
from .checkpoint import describe_model
from .distributed import barrier, gather_objects, on_main_process
from .evaluate import get_protocol, view_outputs
from .predict import Predictor, expand_inputs

INDEX = "index.csv"
SETTINGS = "extract.json"


@dataclass
class Video:
    record: VideoRecord
    name: str  # the features file, relative to the output folder
    classes: list[str] = field(default_factory=list)  # of the list it came from


@dataclass
class ExtractResult:
    out: Path
    videos: int  # all the inputs
    written_by: list[int]  # files written by this run, per process (rank order)
    skipped: int  # already there
    unreadable: dict[str, str]  # video path -> why it could not be read
    is_main: bool = True  # the process that reports (rank 0)

    @property
    def written(self) -> int:
        return sum(self.written_by)


class PooledFeatures(nn.Module):
    """``model``'s features for a batch of clips: ``model.features(x)`` (the classifier's input), or
    the output of the module named ``stage`` averaged over (T, H, W); the layers after it do not run."""

    def __init__(self, model: nn.Module, stage: str | None = None):
        super().__init__()
        self.model, self.stage = model, stage
        if stage is not None:
            try:
                module = model.get_submodule(stage)
            except AttributeError:
                stages = ", ".join(name for name, _ in model.named_children())
                raise ConfigError(
                    f"stage {stage!r}: no such module in {model.variant} (e.g. {stages}, or a module inside one: layer3.1.conv_b)"
                ) from None
            module.register_forward_hook(_stop_at)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if self.stage is None:
            return self.model.features(clips)
        try:
            self.model(clips)
        except _StageReached as reached:
            output = reached.output
            return output.mean(dim=tuple(range(2, output.dim()))) if output.dim() > 2 else output
        raise RuntimeError(f"the forward pass of {self.model.variant} did not run {self.stage}")


class _StageReached(Exception):
    def __init__(self, output: torch.Tensor):
        self.output = output


def _stop_at(module: nn.Module, inputs, output: torch.Tensor) -> None:
    raise _StageReached(output)


def extract_features(
    inputs: list[str],
    checkpoint: str,
    out: str | Path,
    *,
    stage: str | None = None,
    per_clip: bool = False,
    protocol: str = "25x1",
    root: str | None = None,
    device: str = "auto",
    acceleration: str = "auto",
    num_workers: int = 2,
    view_batch: int = 10,
    backend: str = "auto",
    frame_pattern: str | None = None,
    force: bool = False,
) -> ExtractResult:
    """Write the features of every video of ``inputs`` (video files, frame folders, folders of videos,
    or list files ``<path> [<num_frames>] <label>`` resolved against ``root``, default the list's folder)
    under ``out``; see the module's doc (``force``: write into a folder of other files)."""
    spec = get_protocol(protocol)
    if spec.mode != "test":
        raise ConfigError(
            f"protocol {protocol!r} is a training-time validation; extract takes a test protocol (1clip, 25x1, 10x3, 25x10)"
        )
    videos = gather_videos(inputs, root)
    out = Path(out)
    # before the model loads; every process finds the folder as it was, the writes come after they meet
    resumed = claim_features_dir(out, force, inputs)
    predictor = Predictor(checkpoint, device=device, acceleration=acceleration, view_batch=view_batch)  # the model, as predict runs it
    env, clip = predictor.env, predictor.clip
    settings = {
        "checkpoint": str(Path(predictor.checkpoint).resolve()),
        "model": describe_model(predictor.payload),
        "stage": stage or "features",
        "protocol": spec.name,
        "per_clip": per_clip,
        "clip": clip.to_dict(),
    }
    rows = spec.num_clips if per_clip else None  # of a features file

    def claim() -> list[int]:  # the videos to extract
        check_settings(out, settings)
        for stale in filter(_left_by_a_killed_run, out.rglob(".*.tmp")):
            stale.unlink(missing_ok=True)
        pending = []
        for i, video in enumerate(videos):
            target = out / video.name
            if not target.exists() or not resumed:  # in a folder of other files (--force), nothing is taken as done
                pending.append(i)
            elif _features_shape(target, rows) is None:
                if not force:
                    kind = "per-clip" if per_clip else "per-video"
                    what = f"not features of this extraction (a {kind} float32 .npy)"
                    raise OutputError(f"{target}: {what}; --force extracts it again, or remove it")
                pending.append(i)
        return pending

    pending = on_main_process(claim, env)

    features = PooledFeatures(predictor.model, stage).eval()
    accel = predictor.accel
    classes = next((v.classes for v in videos if v.classes), [])
    dataset = VideoDataset(
        Annotations([v.record for v in videos], classes, source="extract"),
        clip=clip,
        mode="test",
        num_clips=spec.num_clips,
        crops=spec.crops,
        backend=backend,
        frame_pattern=frame_pattern,
    )
    shard = pending[env.rank :: env.world_size]
    share = " (this process's share)" if env.is_distributed else ""
    bar = progress_bar(total=len(shard), unit="video", description=f"extract{share}", show=env.is_main)
    unreadable: dict[int, str] = {}  # reported on a line each by the dataset as it fails
    written = 0
    with torch.inference_mode():
        for index, _, views in view_outputs(
            features, dataset, shard, env.device, view_batch=view_batch, num_workers=num_workers, accel=accel
        ):
            if isinstance(views, Unreadable):
                unreadable[index] = views.reason
            else:
                per_view = views.float().reshape(spec.num_clips, dataset.views_per_clip, -1).mean(dim=1)  # (clips, D)
                _save_npy(out / videos[index].name, (per_view if per_clip else per_view.mean(dim=0)).numpy())
                written += 1
            bar.update()
    bar.close()
    parts = gather_objects((written, unreadable), env)
    unreadable = {index: reason for _, part in parts for index, reason in part.items()}
    barrier(env)
    if env.is_main:
        write_index(out, videos, unreadable, rows)
    failed = {videos[i].record.path: reason for i, reason in sorted(unreadable.items())}
    return ExtractResult(out, len(videos), [count for count, _ in parts], len(videos) - len(pending), failed, env.is_main)


def gather_videos(inputs: list[str], root: str | None = None) -> list[Video]:
    """The videos of ``inputs``, each with the name of its features file (its path under the folder or
    list root it came from, ``.npy``); two videos that would share a file are an error."""
    videos: list[Video] = []
    for item in map(Path, inputs):
        if item.is_file() and item.suffix.lower() not in VIDEO_EXTENSIONS:  # a list
            base = Path(root) if root else item.parent
            annotations = load_list(base, list_file=item)
            videos += [Video(r, _features_name(r.path, base), annotations.classes) for r in annotations.records]
        else:  # a video file, a frame folder, or a folder of them
            found = expand_inputs([str(item)])
            base = item if item.is_dir() and found != [item] else item.parent
            videos += [Video(VideoRecord(str(path), -1), _features_name(path, base)) for path in found]
    seen: dict[str, str] = {}
    for video in videos:
        if video.name in seen:
            raise DataError(f"{video.record.path} and {seen[video.name]} would both be written to {video.name}")
        seen[video.name] = video.record.path
    return videos


def _features_name(path: str | Path, base: Path) -> str:
    relative = Path(os.path.relpath(path, base))
    if relative.parts and relative.parts[0] == "..":
        relative = Path(Path(path).name)
    suffix = relative.suffix if relative.suffix.lower() in VIDEO_EXTENSIONS else ""
    return (relative.with_suffix("") if suffix else relative).as_posix() + ".npy"


def claim_features_dir(out: Path, force: bool, inputs: list[str]) -> bool:
    """``out`` for features, before the model and the videos are read: writable, and new, empty, or an
    extraction of artnet extract (its ``extract.json`` and only the files it writes), which is resumed
    (True); other files are refused unless ``force``. Its own files are never one of ``inputs``."""
    resumed = (out / SETTINGS).is_file()
    if out.is_dir() and not force:
        foreign = [entry for entry in sorted(out.iterdir()) if not (resumed and _extraction_part(entry))]
        refuse_replacing(
            out,
            foreign,
            "files that are not features of artnet extract",
            "--force writes there all the same, or choose another --out",
        )
    for name in (SETTINGS, INDEX):
        not_an_input(out / name, inputs)
    output_folder(out)
    return resumed


def _extraction_part(path: Path) -> bool:
    """A file artnet extract writes (features, the index, the settings, a temporary file of a killed run), or
    a folder of them."""
    if path.is_dir():
        return all(_extraction_part(entry) for entry in path.iterdir())
    return path.name in (SETTINGS, INDEX) or path.suffix == ".npy" or _left_by_a_killed_run(path)


def _left_by_a_killed_run(path: Path) -> bool:
    """A temporary file of :func:`~artnet.outputs.atomic_write` for a features file, the index or the settings."""
    name = path.name
    return name.endswith(".tmp") and (".npy." in name or name.startswith((f".{INDEX}.", f".{SETTINGS}.")))


def _features_shape(path: Path, rows: int | None) -> tuple[int, ...] | None:
    """The shape of a features file: float32, ``(D,)`` (``rows`` None) or ``(rows, D)`` per clip; None if it is
    not one (another array, not a ``.npy`` file). Reads the header only."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        return None
    shape, dtype = array.shape, array.dtype
    del array
    if dtype != np.float32 or len(shape) != (1 if rows is None else 2) or (rows is not None and shape[0] != rows):
        return None
    return shape


def check_settings(out: Path, settings: dict) -> None:
    """Record what is extracted in ``out``; a folder holding features extracted otherwise is an error."""
    path = out / SETTINGS
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise OutputError(f"{path}: not the settings of artnet extract ({error}); extract into another folder") from None
        changed = [key for key in settings if not isinstance(previous, dict) or previous.get(key) != settings[key]]
        if changed:
            key = changed[0]
            was = previous.get(key) if isinstance(previous, dict) else None
            raise ConfigError(
                f"{out}: holds features extracted with {key} {was!r}, not {settings[key]!r}; "
                "extract into another folder (or delete this one)"
            )
        return
    with atomic_write(path, "w") as file:
        file.write(json.dumps(settings, indent=2) + "\n")


def write_index(out: Path, videos: list[Video], unreadable: dict[int, str], rows: int | None) -> Path:
    """``index.csv``: every input video with its features file and shape (``rows`` as :func:`_features_shape`),
    or why it has none."""
    path = out / INDEX
    with atomic_write(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["video", "label", "class", "features", "shape", "error"])
        for index, video in enumerate(videos):
            label = video.record.label
            name = video.classes[label] if 0 <= label < len(video.classes) else ""
            target = out / video.name
            shape = _features_shape(target, rows) if target.is_file() else None
            if shape is not None:
                writer.writerow([video.record.path, label, name, video.name, "x".join(map(str, shape)), ""])
            else:
                writer.writerow([video.record.path, label, name, "", "", unreadable.get(index, "not extracted")])
    return path


def _save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as file:
        np.save(file, array.astype(np.float32, copy=False))
