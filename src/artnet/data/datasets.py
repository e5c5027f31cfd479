"""``VideoDataset``: video records -> (clip, label, index), wiring sampler, reader and transforms.

How clips are cut and normalised is the dataset's :class:`~artnet.data.clip.ClipSpec`. Modes:

- ``"train"``: one random clip per segment (``num_segments``; 1 for Kinetics, 2 for TSN fine-tuning),
  the multi-scale crop and flip drawn once per video. Clip ``(C, T, H, W)``, or ``(S, C, T, H, W)``.
- ``"val"``: the centre clip of each segment, centre crop (upstream's in-training test).
- ``"test"``: ``num_clips`` uniformly spaced clips x ``crops`` views, clip-major: ``(V, C, T, H, W)``.

The clips are RGB frames or optical flow, as the clip spec's normalisation says (its ``modality``).
``flip=False``: no mirror in training, and no mirrored test views (10 crops become 5). With a
``flip_label_map`` (pairs of class names a mirror turns into each other) a mirrored training clip gets
the mirrored class as its label, and :meth:`VideoDataset.views_in_label_order` puts the logits of the
mirrored test views back in label order before the evaluation averages them.

A sample's random draws depend only on ``(seed, epoch, index)``. A video that cannot be read is
logged once, counted (across DataLoader worker processes) and, in training, replaced by another
video; above ``max_bad_ratio`` of the dataset the run stops with a summary. In val and test mode its
clip is an :class:`Unreadable` naming why (no prediction, reported by the evaluation and :func:`collate_test`).
"""

from __future__ import annotations

import logging
import multiprocessing
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import DataError
from . import sampling, transforms
from .annotations import Annotations, VideoRecord
from .clip import ClipSpec
from .readers import TRUNCATION_TOLERANCE

log = logging.getLogger(__name__)

MODES = ("train", "val", "test")
#: how many other videos a bad training sample may be replaced with before giving up
MAX_REPLACEMENTS = 100


@dataclass(frozen=True)
class Unreadable:
    """In place of the clip of a video that could not be read (val / test mode): why not."""

    reason: str


class VideoDataset(torch.utils.data.Dataset):
    def __init__(
        self,
        annotations: Annotations | Sequence[VideoRecord],
        classes: Sequence[str] | None = None,
        *,
        clip: ClipSpec = ClipSpec(),
        mode: str = "train",
        num_clips: int = 25,
        crops: str = "10crop",
        normalize: bool = True,
        backend: str = "auto",
        frame_pattern: str | tuple[str, str] | None = None,
        scale_ratios: Sequence[float] = transforms.SCALE_RATIOS,
        max_distort: int = 1,
        flip: bool = True,
        flip_label_map: Sequence[Sequence[str]] = (),
        max_bad_ratio: float = 0.01,
        seed: int = 0,
    ):
        if isinstance(annotations, Annotations):
            records, classes = annotations.records, annotations.classes if classes is None else classes
        else:
            records = list(annotations)
        if mode not in MODES:
            raise DataError(f"unknown dataset mode {mode!r}: use one of {', '.join(MODES)}")
        if crops not in transforms.TEST_CROPS:
            raise DataError(f"unknown test crops {crops!r}: use one of {', '.join(transforms.TEST_CROPS)}")
        if not records:
            raise DataError("the dataset has no videos")
        self.records = list(records)
        self.classes = list(classes) if classes is not None else None
        self.clip = clip
        self.mode = mode
        self.num_clips, self.crops = num_clips, crops
        self.normalize = normalize
        self.backend, self.frame_pattern = backend, frame_pattern
        self.scale_ratios, self.max_distort, self.flip = tuple(scale_ratios), max_distort, flip
        if flip_label_map and self.classes is None:
            raise DataError("a flip label map names classes: give the dataset its class names")
        # the label of each class's mirror image; None: a mirror changes no label
        self.mirrored_labels = transforms.flip_label_permutation(flip_label_map, self.classes) if flip_label_map else None
        self.max_bad_ratio = max_bad_ratio
        self.seed = seed
        self._bad = BadSamples(len(self.records))
        self._epoch = multiprocessing.Value("q", 0, lock=False)  # shared: persistent workers see set_epoch

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.value = int(epoch)

    @property
    def epoch(self) -> int:
        return int(self._epoch.value)

    def bad_samples(self) -> int:
        """How many distinct videos failed to load so far (in every worker process)."""
        return self._bad.count()

    def bad_indices(self) -> list[int]:
        return self._bad.indices()

    @property
    def views_per_clip(self) -> int:
        """Views of each clip of a sample in val and test mode (test: the crops; val: one per segment)."""
        if self.mode != "test":
            return 1
        side = self.clip.crop_size  # which crops, and which of them mirrored, does not depend on the frame size
        return len(transforms.test_crops(side, side, side, self.crops, flip=self.flip))

    @property
    def view_flips(self) -> np.ndarray:
        """Which views of a val / test sample are mirrored, in the order they come: ``(V,)`` bools."""
        if self.mode == "test":
            side = self.clip.crop_size
            flips = [crop.flip for crop in transforms.test_crops(side, side, side, self.crops, flip=self.flip)]
            return np.tile(np.array(flips, dtype=bool), self.num_clips)
        return np.zeros(self.clip.num_segments if self.mode == "val" else 1, dtype=bool)

    def views_in_label_order(self, logits: np.ndarray) -> np.ndarray:
        """The logits ``(V, K)`` of a sample's views, those of the mirrored views with the classes a mirror
        swaps (the flip label map) swapped back, so that every view speaks of the same classes."""
        flips = self.view_flips
        if self.mirrored_labels is None or not flips.any():
            return logits
        ordered = np.array(logits, copy=True)
        ordered[flips] = ordered[flips][:, self.mirrored_labels]
        return ordered

    def __getitem__(self, index: int):
        index = int(index)
        if self.mode != "train":  # evaluation: an unreadable video gets no prediction, not another's
            try:
                return self.load(index), self.records[index].label, index
            except DataError as error:
                self._bad.mark(index, error, self.records[index].path, raise_above=None)
                return Unreadable(str(error)), self.records[index].label, index
        candidate = index
        for attempt in range(MAX_REPLACEMENTS + 1):
            if not self._bad.is_bad(candidate):
                try:
                    clip, mirrored = self._sample(candidate, attempt=attempt, for_index=index)
                    label = self.records[candidate].label
                    if mirrored and self.mirrored_labels is not None:
                        label = int(self.mirrored_labels[label])
                    return clip, label, candidate
                except DataError as error:
                    limit = int(self.max_bad_ratio * len(self))
                    self._bad.mark(candidate, error, self.records[candidate].path, raise_above=limit, total=len(self))
            rng = np.random.default_rng([self.seed, self.epoch, index, attempt, 1])
            candidate = int(rng.integers(len(self)))
        raise DataError(f"no readable video found for sample {index} after {MAX_REPLACEMENTS} replacements")

    def load(self, index: int, *, attempt: int = 0, for_index: int | None = None) -> torch.Tensor:
        """The clip of ``records[index]`` (no bad-sample handling): read, sample, crop, normalise."""
        return self._sample(index, attempt=attempt, for_index=for_index)[0]

    def _sample(self, index: int, *, attempt: int = 0, for_index: int | None = None) -> tuple[torch.Tensor, bool]:
        """:meth:`load`'s clip, and whether its training crop was mirrored."""
        record, spec = self.records[index], self.clip
        rng = np.random.default_rng([self.seed, self.epoch, index if for_index is None else for_index, attempt])
        with spec.open_video(record.path, backend=self.backend, frame_pattern=self.frame_pattern) as reader:
            num_frames = _usable_frames(record, reader.num_frames)
            if self.mode == "train":
                indices = sampling.segment_clips(num_frames, spec.num_segments, spec.clip_len, spec.frame_stride, rng=rng)
            elif self.mode == "val":
                indices = sampling.segment_clips(num_frames, spec.num_segments, spec.clip_len, spec.frame_stride)
            else:
                indices = sampling.test_clips(num_frames, self.num_clips, spec.clip_len, spec.frame_stride)
            frames = torch.from_numpy(reader.read(indices.reshape(-1)))
        frames = frames.view(*indices.shape, *frames.shape[1:])  # (clips, T, H, W, C)
        height, width = frames.shape[2:4]
        mirrored = False
        if self.mode == "train":
            crop = transforms.random_crop(
                height,
                width,
                rng,
                crop_size=spec.crop_size,
                scale_ratios=self.scale_ratios,
                max_distort=self.max_distort,
                flip=self.flip,
            )
            views = transforms.apply_crop(frames, crop, spec.crop_size)
            mirrored = crop.flip
        else:
            views = spec.crop_views(frames, "center" if self.mode == "val" else self.crops, flip=self.flip)
        if self.mode != "test" and spec.num_segments == 1:
            views = views[0]
        return (spec.normalize(views) if self.normalize else views), mirrored


def collate_test(batch):
    """Collate test samples, dropping videos that could not be read.

    Returns ``(clips, labels, indices, failed)``: clips ``(B, V, C, T, H, W)`` (``None`` when every
    video of the batch failed), labels and dataset indices of the kept videos, and the dataset indices
    of the failed ones (they get no prediction; the evaluation reports how many).
    """
    kept = [item for item in batch if not isinstance(item[0], Unreadable)]
    failed = [int(item[2]) for item in batch if isinstance(item[0], Unreadable)]
    clips = torch.stack([item[0] for item in kept]) if kept else None
    labels = torch.tensor([int(item[1]) for item in kept], dtype=torch.long)
    indices = torch.tensor([int(item[2]) for item in kept], dtype=torch.long)
    return clips, labels, indices, failed


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoader: seed the global RNGs of a worker from its torch seed.

    The dataset's own draws come from ``(seed, epoch, index)`` and do not need it; this keeps any
    other randomness in a worker (user transforms, libraries) reproducible too.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class BadSamples:
    """Which videos failed, shared by every DataLoader worker process (shared memory, one lock)."""

    def __init__(self, size: int):
        self._flags = multiprocessing.RawArray("b", size)
        self._count = multiprocessing.Value("q", 0)

    def is_bad(self, index: int) -> bool:
        return bool(self._flags[index])

    def count(self) -> int:
        return int(self._count.value)

    def indices(self) -> list[int]:
        return [i for i, flag in enumerate(self._flags) if flag]

    def mark(self, index: int, error: DataError, path: str, *, raise_above: int | None, total: int = 0) -> None:
        with self._count.get_lock():
            first = not self._flags[index]
            if first:
                self._flags[index] = 1
                self._count.value += 1
            count = self._count.value
        if first:
            log.warning("unreadable video #%d (%d so far): %s", index, count, error)
        if raise_above is not None and count > raise_above:
            raise DataError(
                f"{count} of {total} videos could not be read ({count / max(total, 1):.1%}), above max_bad_ratio;"
                f" last: {error}"
            )


def _usable_frames(record: VideoRecord, decodable: int) -> int:
    """Frames to sample from: the decodable count, checked against the list's claim where it has one."""
    if record.num_frames is None:
        return decodable
    frames, fraction = TRUNCATION_TOLERANCE
    if record.num_frames - decodable > max(frames, fraction * record.num_frames):
        raise DataError(f"{record.path}: the list says {record.num_frames} frames, but only {decodable} decode")
    return min(decodable, record.num_frames) if record.num_frames > 0 else decodable
