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
interrupted resumes: a video whose file exists is skipped (files are written under a temporary
name, then renamed), and a folder extracted with other settings is refused rather than mixed.
A video that cannot be read is reported, on a line and in the index, and the run goes on.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data import Annotations, Unreadable, VideoDataset, VideoRecord, load_list
from ..data.annotations import VIDEO_EXTENSIONS
from ..errors import ConfigError, DataError
from ..progress import progress_bar
from .checkpoint import describe_model
from .distributed import barrier, broadcast_object, gather_objects
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
    written: int  # by this run (all processes)
    skipped: int  # already there
    unreadable: dict[str, str]  # video path -> why it could not be read
    is_main: bool = True  # the process that reports (rank 0)


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
) -> ExtractResult:
    """Write the features of every video of ``inputs`` (video files, frame folders, folders of videos,
    or list files ``<path> [<num_frames>] <label>`` resolved against ``root``, default the list's folder)
    under ``out``; see the module's doc."""
    predictor = Predictor(checkpoint, device=device, acceleration=acceleration, view_batch=view_batch)  # as predict runs it
    env, clip = predictor.env, predictor.clip
    spec = get_protocol(protocol)
    if spec.mode != "test":
        raise ConfigError(
            f"protocol {protocol!r} is a training-time validation; extract takes a test protocol (1clip, 25x1, 10x3, 25x10)"
        )
    videos = gather_videos(inputs, root)
    out = Path(out)
    settings = {
        "checkpoint": str(Path(predictor.checkpoint).resolve()),
        "model": describe_model(predictor.payload),
        "stage": stage or "features",
        "protocol": spec.name,
        "per_clip": per_clip,
        "clip": clip.to_dict(),
    }
    pending = None
    if env.is_main:
        check_settings(out, settings)
        for stale in out.rglob(".*.npy.*.tmp"):  # left by a killed run
            stale.unlink(missing_ok=True)
        pending = [i for i, video in enumerate(videos) if not (out / video.name).is_file()]
    pending = broadcast_object(pending, env)

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
    unreadable: dict[int, str] = {}
    with torch.inference_mode():
        for index, _, views in view_outputs(
            features, dataset, shard, env.device, view_batch=view_batch, num_workers=num_workers, accel=accel
        ):
            if isinstance(views, Unreadable):
                unreadable[index] = views.reason
                print(f"extract: skipped an unreadable video: {views.reason}", file=sys.stderr)
            else:
                per_view = views.float().reshape(spec.num_clips, dataset.views_per_clip, -1).mean(dim=1)  # (clips, D)
                _save_npy(out / videos[index].name, (per_view if per_clip else per_view.mean(dim=0)).numpy())
            bar.update()
    bar.close()
    unreadable = {index: reason for part in gather_objects(unreadable, env) for index, reason in part.items()}
    barrier(env)
    if env.is_main:
        write_index(out, videos, unreadable)
    written = len(pending) - len(unreadable)
    failed = {videos[i].record.path: reason for i, reason in sorted(unreadable.items())}
    return ExtractResult(out, len(videos), written, len(videos) - len(pending), failed, env.is_main)


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


def check_settings(out: Path, settings: dict) -> None:
    """Record what is extracted in ``out``; a folder holding features extracted otherwise is an error."""
    path = out / SETTINGS
    if path.is_file():
        previous = json.loads(path.read_text())
        changed = [key for key in settings if previous.get(key) != settings[key]]
        if changed:
            key = changed[0]
            raise ConfigError(
                f"{out}: holds features extracted with {key} {previous.get(key)!r}, not {settings[key]!r}; "
                "extract into another folder (or delete this one)"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n")


def write_index(out: Path, videos: list[Video], unreadable: dict[int, str]) -> Path:
    """``index.csv``: every input video with its features file and shape, or why it has none."""
    path = out / INDEX
    temporary = path.with_name(f".{INDEX}.tmp")
    with open(temporary, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["video", "label", "class", "features", "shape", "error"])
        for index, video in enumerate(videos):
            label = video.record.label
            name = video.classes[label] if 0 <= label < len(video.classes) else ""
            target = out / video.name
            if target.is_file():
                shape = "x".join(map(str, np.load(target, mmap_mode="r").shape))
                writer.writerow([video.record.path, label, name, video.name, shape, ""])
            else:
                writer.writerow([video.record.path, label, name, "", "", unreadable.get(index, "not extracted")])
    os.replace(temporary, path)
    return path


def _save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as file:
        np.save(file, array.astype(np.float32, copy=False))
    os.replace(temporary, path)
