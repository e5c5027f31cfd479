"""Samplers against the upstream formulas (video_data_layer.cpp, eval_net.py), written out as oracles."""

import math

import numpy as np
import pytest

from artnet.data import sampling
from artnet.data.sampling import clip_span, segment_clips, train_clip
from artnet.errors import DataError


def upstream_test_ticks(num_frames, num_clips=25, depth=16):
    """eval_net.py: 1-based start ticks (may be more than num_clips for short videos)."""
    step = 1.0 * (num_frames - depth) / (num_clips - 1)
    ticks = np.arange(1, 2 + num_frames - depth, step) if step > 0 else [1] * num_clips
    return np.floor(ticks).astype(int)


def upstream_frames(tick, num_frames, depth=16):
    """eval_net.py: frame_idx = min(frame_cnt, tick + offset), 1-based."""
    return [min(num_frames, tick + offset) for offset in range(depth)]


def upstream_val_offsets(num_frames, num_segments, new_length=16):
    """video_data_layer.cpp TEST phase, 0-based offsets of each segment's clip."""
    average_duration = float(num_frames // num_segments)  # int division, then double
    if average_duration >= new_length:
        return [int((average_duration - new_length + 1) / 2 + i * average_duration) for i in range(num_segments)]
    return [0] * num_segments


def test_test_clips_match_upstream_for_videos_of_40_frames_or_more():
    for n in range(40, 2000):
        ticks = upstream_test_ticks(n)
        assert len(ticks) == 25
        expected = np.array([upstream_frames(t, n) for t in ticks]) - 1
        np.testing.assert_array_equal(sampling.test_clips(n), expected, err_msg=f"N={n}")


@pytest.mark.parametrize("n, upstream_count", [(39, 26), (20, 30), (17, 48)])
def test_short_videos_get_exactly_25_clips_where_upstream_gave_more(n, upstream_count):
    assert len(upstream_test_ticks(n)) == upstream_count  # the upstream edge case (spec section 5)
    clips = sampling.test_clips(n)
    assert clips.shape == (25, 16)
    starts = clips[:, 0]
    assert starts[0] == 0 and starts[-1] == n - 16  # still spans the whole video
    assert np.all(np.diff(starts) >= 0)
    assert set(starts) <= set(upstream_test_ticks(n) - 1)  # every start is one of upstream's


@pytest.mark.parametrize("n", [1, 5, 16])
def test_videos_of_at_most_16_frames_repeat_the_first_clip_padded(n):
    clips = sampling.test_clips(n)
    expected = np.minimum(np.arange(16), n - 1)
    assert clips.shape == (25, 16)
    assert (clips == expected).all()
    # upstream: 25 ticks at frame 1, frames min(N, 1 + offset)
    assert (np.array([upstream_frames(1, n)] * 25) - 1 == clips).all()


def test_one_test_clip_is_the_centre_clip():
    for n in (16, 17, 100, 301):
        np.testing.assert_array_equal(sampling.test_clips(n, num_clips=1), segment_clips(n, 1))
        assert sampling.test_clips(n, num_clips=1)[0, 0] == (n - 15) // 2


def test_train_clip_uniform_start_in_range():
    rng = np.random.default_rng(0)
    n = 40
    starts = [train_clip(n, rng=rng)[0, 0] for _ in range(5000)]
    assert min(starts) == 0 and max(starts) == n - 16
    counts = np.bincount(starts, minlength=n - 15)
    assert counts.min() > 5000 / 25 * 0.6  # every start in [0, N-16] drawn, roughly uniformly
    clip = train_clip(n, rng=rng)
    assert clip.shape == (1, 16) and (np.diff(clip[0]) == 1).all()


def test_short_video_padded_with_last_frame():
    clip = train_clip(10, rng=np.random.default_rng(0))
    assert clip.tolist() == [list(range(10)) + [9] * 6]


def test_stride():
    assert clip_span(16, 2) == 31
    clip = train_clip(31, 16, 2, rng=np.random.default_rng(0))
    assert clip.tolist() == [list(range(0, 31, 2))]
    clips = sampling.test_clips(100, 5, 8, 3)
    assert clips.shape == (5, 8) and (np.diff(clips, axis=1) == 3).all()
    assert clips[-1, -1] == 99


def test_tsn_segments_train_formula():
    rng = np.random.default_rng(1)
    n, segments = 101, 2
    length = n // segments  # 50
    for _ in range(500):
        clips = segment_clips(n, segments, rng=rng)
        for i in range(segments):
            offset = clips[i, 0] - i * length
            assert 0 <= offset <= length - 16
            assert (np.diff(clips[i]) == 1).all()
    # segment shorter than a clip: start_i = i * L, padded with the last frame of the video
    clips = segment_clips(20, 2, rng=rng)
    assert clips[:, 0].tolist() == [0, 10]
    assert clips[1].tolist() == list(range(10, 20)) + [19] * 6


def test_tsn_segments_val_formula_matches_caffe():
    for n in range(1, 400):
        for segments in (1, 2, 3):
            starts = segment_clips(n, segments)[:, 0]
            assert starts.tolist() == upstream_val_offsets(n, segments), (n, segments)


def test_bad_arguments():
    with pytest.raises(DataError, match="0 frames"):
        train_clip(0, rng=np.random.default_rng(0))
    with pytest.raises(DataError):
        sampling.test_clips(10, num_clips=0)
    with pytest.raises(DataError):
        segment_clips(10, 0)
    assert math.isclose(clip_span(16), 16)
