"""``VideoWindows``: the clips of a window sliding over one video, however long, in bounded memory.

A window is a clip as the model's :class:`~artnet.data.clip.ClipSpec` cuts it (``clip_len`` frames
every ``frame_stride``, resized in the decoder, centre crop, normalised); windows start every
``step`` frames (:func:`~artnet.data.sampling.sliding_clips`). The video is decoded once, in order:
only the frames of the windows not yet complete are kept (one clip span), never the whole video.

With DataLoader workers, each worker decodes a contiguous share of the windows (seeking to its
first frame), so a long video is decoded in parallel; every item names its window.
"""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import torch

from ..errors import DataError
from . import sampling
from .clip import ClipSpec


class VideoWindows(torch.utils.data.IterableDataset):
    """Items ``(view, -1, window)``: a view ``(1, C, T, H, W)`` normalised (``normalize=False``: the
    uint8 crop ``(1, T, H, W, 3)``), no label, the window's number; every window, or those :meth:`select` picks."""

    def __init__(
        self,
        path: str | os.PathLike,
        clip: ClipSpec,
        step: int,
        *,
        backend: str = "auto",
        frame_pattern: str | None = None,
        normalize: bool = True,
    ):
        self.path, self.clip, self.step = os.fspath(path), clip, step
        self.backend, self.frame_pattern, self.normalize = backend, frame_pattern, normalize
        with self._open() as reader:
            self.num_frames = reader.num_frames
            self.frame_rate: Fraction | None = reader.frame_rate
        self.indices = sampling.sliding_clips(self.num_frames, step, clip.clip_len, clip.frame_stride)  # (windows, clip_len)
        self.windows = list(range(len(self.indices)))

    def __len__(self) -> int:
        return len(self.windows)

    def select(self, windows: list[int]) -> VideoWindows:
        """Only these windows (by number)."""
        for window in windows:
            if not 0 <= window < len(self.indices):
                raise DataError(
                    f"{self.path}: no window {window}; the video has {len(self.indices)} (0 to {len(self.indices) - 1})"
                )
        self.windows = sorted({int(w) for w in windows})  # decoded in one pass, in order
        return self

    def frames(self, window: int) -> np.ndarray:
        """The frame indices of a window: ``(clip_len,)``."""
        return self.indices[window]

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        share = np.array_split(np.array(self.windows, dtype=np.int64), worker.num_workers)[worker.id] if worker else self.windows
        if len(share) == 0:
            return
        pending = iter(int(w) for w in share)
        window = next(pending)
        first = int(self.indices[window].min())
        buffer: dict[int, np.ndarray] = {}  # frame index -> frame, from the first one a pending window needs
        with self._open() as reader:
            for last, frame in enumerate(reader.iter_frames(start=first), start=first):
                buffer[last] = frame
                while window is not None and self.indices[window].max() <= last:
                    yield self._view(buffer, self.indices[window]), -1, window
                    window = next(pending, None)
                if window is None:
                    return
                for old in [i for i in buffer if i < min(self.indices[window].min(), last)]:
                    del buffer[old]
        if not buffer:
            raise DataError(f"{self.path}: no frame decodes from frame {first} on")
        while window is not None:  # a file that decodes fewer frames than it indexes: pad with the last, as sampling does
            yield self._view(buffer, np.minimum(self.indices[window], last)), -1, window
            window = next(pending, None)

    def _open(self):
        return self.clip.open_video(self.path, backend=self.backend, frame_pattern=self.frame_pattern)

    def _view(self, buffer: dict[int, np.ndarray], indices: np.ndarray) -> torch.Tensor:
        view = self.clip.crop_views(torch.from_numpy(np.stack([buffer[int(i)] for i in indices]))).unsqueeze(0)
        return self.clip.normalize(view) if self.normalize else view
