"""Which frames make a clip: pure functions of the frame count (and an rng); they never open a file.

Every function returns 0-based frame indices of shape ``(clips, clip_len)``. A clip spans
``(clip_len - 1) * stride + 1`` frames; where a video is shorter than what a clip needs, indices past
the end repeat the last frame, as upstream pads with the last readable frame.

Upstream (``video_data_layer.cpp``, ``eval_net.py``) numbers frames from 1; the formulas below are
the same shifted to 0. ``stride`` is this package's generalisation (upstream ``step`` is 1 in every
released recipe): ``clip_len`` frames taken every ``stride`` frames.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def clip_span(clip_len: int, stride: int = 1) -> int:
    """Frames one clip covers from its first to its last index."""
    return (clip_len - 1) * stride + 1


def train_clip(num_frames: int, clip_len: int = 16, stride: int = 1, rng: np.random.Generator | None = None) -> np.ndarray:
    """One clip at a uniformly random start in ``[0, N - span]`` (Kinetics training); ``(1, clip_len)``."""
    if rng is None:
        raise DataError("train_clip draws a random start: pass rng (a numpy Generator)")
    return segment_clips(num_frames, 1, clip_len, stride, rng=rng)


def segment_clips(
    num_frames: int, num_segments: int, clip_len: int = 16, stride: int = 1, rng: np.random.Generator | None = None
) -> np.ndarray:
    """TSN: one clip per segment of length ``L = N // S``; ``(num_segments, clip_len)``.

    Training (``rng`` given): start_i = i*L + o_i with o_i uniform in ``[0, L - span]``, drawn per
    segment; if ``L < span``, start_i = i*L. Validation (``rng=None``, as upstream's TEST phase):
    start_i = (L - span + 1) // 2 + i*L, and 0 for every segment if ``L < span`` (upstream behaviour).
    With one segment this is the random / centre clip of Kinetics training / validation.
    """
    _check(num_frames, clip_len, stride)
    if num_segments < 1:
        raise DataError(f"num_segments must be >= 1, not {num_segments}")
    span = clip_span(clip_len, stride)
    length = num_frames // num_segments
    bases = np.arange(num_segments, dtype=np.int64) * length
    if rng is not None:
        if length >= span:
            starts = bases + rng.integers(0, length - span + 1, size=num_segments)
        else:
            starts = bases
    elif length >= span:
        starts = bases + (length - span + 1) // 2
    else:
        starts = np.zeros(num_segments, dtype=np.int64)
    return _clips(starts, num_frames, clip_len, stride)


def test_clips(num_frames: int, num_clips: int = 25, clip_len: int = 16, stride: int = 1) -> np.ndarray:
    """``num_clips`` uniformly spaced clips (the 25-clip test protocol); ``(num_clips, clip_len)``.

    Upstream's ticks are ``floor(arange(1, N - span + 2, step))`` with ``step = (N - span) / (num_clips - 1)``
    (1-based). For N >= span + 24 (40 frames with 16-frame clips) that is exactly ``num_clips`` starts,
    reproduced here as ``floor(k * step)``, k = 0..num_clips-1. For shorter videos upstream yields more
    than asked (N=39 gives 26 clips, N=17 gives 48); here the same formula is cut at ``num_clips``
    evenly spaced starts (so never more than asked). For N <= span every clip starts at frame 0, as
    upstream. ``num_clips=1`` is the centre clip (the validation clip of :func:`segment_clips`).
    """
    _check(num_frames, clip_len, stride)
    if num_clips < 1:
        raise DataError(f"num_clips must be >= 1, not {num_clips}")
    if num_clips == 1:
        return segment_clips(num_frames, 1, clip_len, stride)
    span = clip_span(clip_len, stride)
    if num_frames <= span:
        starts = np.zeros(num_clips, dtype=np.int64)
    else:
        step = (num_frames - span) / (num_clips - 1)
        # numpy's arange(1, stop, step) computes 1 + k * ((1 + step) - 1) for k >= 2: the same rounding
        # here makes the starts bit-identical to upstream's
        ticks = 1.0 + np.arange(num_clips) * ((1.0 + step) - 1.0)
        ticks[1] = 1.0 + step
        starts = np.floor(ticks).astype(np.int64) - 1
    return _clips(starts, num_frames, clip_len, stride)


def sliding_clips(num_frames: int, step: int, clip_len: int = 16, stride: int = 1) -> np.ndarray:
    """Clips starting every ``step`` frames from frame 0, as long as a whole clip fits (at least one,
    padded with the last frame in a video shorter than a clip); ``(clips, clip_len)``.

    Not an upstream protocol: the windows of a timeline over a long video.
    """
    _check(num_frames, clip_len, stride)
    if step < 1:
        raise DataError(f"the step between clips must be >= 1, not {step}")
    starts = np.arange(0, max(num_frames - clip_span(clip_len, stride), 0) + 1, step, dtype=np.int64)
    return _clips(starts, num_frames, clip_len, stride)


def _clips(starts: np.ndarray, num_frames: int, clip_len: int, stride: int) -> np.ndarray:
    offsets = np.arange(clip_len, dtype=np.int64) * stride
    return np.minimum(starts[:, None] + offsets[None, :], num_frames - 1)


def _check(num_frames: int, clip_len: int, stride: int) -> None:
    if num_frames < 1:
        raise DataError(f"cannot sample a clip from a video with {num_frames} frames")
    if clip_len < 1 or stride < 1:
        raise DataError(f"clip_len and stride must be >= 1 (got {clip_len}, {stride})")
