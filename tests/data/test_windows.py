"""Windows sliding over a video: the sampler, readers from a later frame on, and the dataset that
decodes a video once, in order, in one or several worker processes."""

from fractions import Fraction

import numpy as np
import pytest
import torch

from artnet.data import ClipSpec, open_video
from artnet.data.sampling import sliding_clips
from artnet.data.windows import VideoWindows
from artnet.errors import DataError

from .conftest import NUM_FRAMES, frame_levels

SMALL = ClipSpec(clip_len=4, frame_size=(48, 64), crop_size=32)


def test_sliding_clips_start_every_step_while_a_clip_fits():
    clips = sliding_clips(20, 5, clip_len=4, stride=2)  # a clip spans 7 frames: starts 0, 5, 10 (15 + 7 > 20)
    assert clips.tolist() == [[0, 2, 4, 6], [5, 7, 9, 11], [10, 12, 14, 16]]
    assert sliding_clips(16, 1, clip_len=16).tolist() == [list(range(16))]
    assert sliding_clips(5, 3, clip_len=4, stride=2).tolist() == [[0, 2, 4, 4]]  # shorter than a clip: padded, as test_clips
    with pytest.raises(DataError, match="step"):
        sliding_clips(20, 0, clip_len=4)


@pytest.mark.parametrize("name", ["h264", "avi", "avi_bframes", "vfr", "frames"])
@pytest.mark.parametrize("start", [0, 1, 9, 17])
def test_iter_frames_from_a_later_frame_gives_that_frame_and_every_one_after(videos, name, start):
    """H.264 with B-frames and a keyframe every 8 frames seeks to the keyframe before; an AVI whose
    frames come out of timestamp order decodes from the file's start; a frame folder reads by number."""
    with open_video(videos[name], size=(48, 64)) as reader:
        frames = np.stack(list(reader.iter_frames(start=start)))
        assert np.array_equal(frames, reader.read(np.arange(start, reader.num_frames)))
        assert (
            np.abs(np.array(frame_levels(frames)) - np.arange(start, reader.num_frames)).max() <= 1
        )  # MPEG-4 rounds some levels


def test_frame_rate_is_the_containers_and_none_for_frame_folders(videos):
    with open_video(videos["h264"]) as reader:
        assert reader.frame_rate == Fraction(25)
    with open_video(videos["frames"]) as reader:
        assert reader.frame_rate is None


@pytest.mark.parametrize("workers", [0, 2])
def test_every_window_holds_its_own_frames_whoever_decodes_it(videos, workers):
    clip = SMALL.replace(frame_stride=2)
    windows = VideoWindows(videos["h264"], clip, step=3, normalize=False)
    assert len(windows) == (NUM_FRAMES - 7) // 3 + 1 and windows.frame_rate == 25 and windows.num_frames == NUM_FRAMES
    loader = torch.utils.data.DataLoader(windows, batch_size=None, num_workers=workers)
    seen = {}
    for view, label, window in loader:
        assert view.shape == (1, 4, 32, 32, 3) and view.dtype == torch.uint8 and label == -1
        seen[window] = frame_levels(view[0].numpy())
    assert seen == {w: windows.frames(w).tolist() for w in range(len(windows))}
    assert windows.frames(2).tolist() == [6, 8, 10, 12]


def test_windows_are_normalised_as_the_clip_spec_says(videos):
    ((view, _, _),) = list(VideoWindows(videos["h264"], SMALL, step=100))
    assert view.shape == (1, *SMALL.input_shape) and view.dtype == torch.float32
    assert abs(float(view[0, 0, 0].mean()) - (20 - 104)) < 2  # channel B of frame 0 (level 20), minus Caffe's B mean


def test_selected_windows_only(videos):
    windows = VideoWindows(videos["h264"], SMALL, step=1, normalize=False).select([30, 5])
    assert [w for _, _, w in windows] == [5, 30]
    assert [frame_levels(v[0].numpy()) for v, _, _ in windows] == [[5, 6, 7, 8], [30, 31, 32, 33]]
    with pytest.raises(DataError, match="no window 33"):
        windows.select([33])


def test_a_video_shorter_than_a_clip_is_one_padded_window(videos):
    windows = VideoWindows(videos["short"], SMALL.replace(clip_len=10), step=4, normalize=False)
    ((view, _, window),) = list(windows)
    assert window == 0 and frame_levels(view[0].numpy()) == [0, 1, 2, 3, 4, 5, 6, 6, 6, 6]


def test_an_unreadable_video_is_named(videos):
    with pytest.raises(DataError, match="corrupt.mp4"):
        VideoWindows(videos["corrupt"], SMALL, step=4)
