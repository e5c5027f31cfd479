"""Readers on real files: every clip in ../shared/media and the PyAV-made fixtures, good and bad."""

import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter

from artnet.data import open_video
from artnet.data.readers import decord_available, output_size
from artnet.errors import DataError

from .conftest import NUM_FRAMES, frame_levels

MEDIA_VIDEOS = {
    # file: decodable frames (PyAV); the HMDB51 AVIs declare one more
    "hmdb51/RATRACE_wave_f_nm_np1_fr_goo_37.avi": 72,
    "hmdb51/SchoolRulesHowTheyHelpUs_wave_f_nm_np1_ba_med_0.avi": 74,
    "hmdb51/TrumanShow_wave_f_nm_np1_fr_med_26.avi": 48,
    "ucf101/v_SoccerJuggling_g23_c01.avi": 240,
    "ucf101/v_SoccerJuggling_g24_c01.avi": 251,
    "ucf101/test_ApplyEyeMakeup.avi": 164,
}


def reference_frames(path, size=(128, 170)) -> np.ndarray:
    """Every frame, decoded from the start in output order: the definition of frame indices."""
    reformatter = VideoReformatter()
    with av.open(str(path)) as container:
        return np.stack(
            [
                reformatter.reformat(f, width=size[1], height=size[0], format="rgb24", interpolation="BILINEAR").to_ndarray()
                for f in container.decode(video=0)
            ]
        )


def all_media(media):
    files = [media / name for name in MEDIA_VIDEOS] + sorted((media / "asl_gestures").glob("*.mkv"))
    assert len(files) == 26, "the media README lists 6 AVIs and 20 MKVs"
    return files


def test_every_media_video_yields_its_frames(media):
    rng = np.random.default_rng(0)
    for path in all_media(media):
        expected = reference_frames(path)
        with open_video(path, backend="pyav") as reader:
            assert reader.num_frames == len(expected), path.name
            if path.name in [p.split("/")[1] for p in MEDIA_VIDEOS]:
                assert reader.num_frames == MEDIA_VIDEOS[f"{path.parent.name}/{path.name}"]
            assert reader.frame_size == (128, 170)
            # a training clip, clips from both ends, and a scattered multi-clip read (decoded once)
            start = int(rng.integers(0, reader.num_frames - 16 + 1))
            for indices in (np.arange(start, start + 16), [reader.num_frames - 1, 0], rng.integers(0, reader.num_frames, 40)):
                frames = reader.read(indices)
                assert frames.dtype == np.uint8 and frames.shape == (len(indices), 128, 170, 3)
                np.testing.assert_array_equal(frames, expected[np.asarray(indices)], err_msg=path.name)


def test_hmdb_avis_declare_one_frame_more_than_they_hold(media):
    for name, frames in MEDIA_VIDEOS.items():
        if name.startswith("hmdb51"):
            with open_video(media / name, backend="pyav") as reader:
                assert reader.declared_frames == frames + 1
                assert reader.num_frames == frames
                assert reader.read([frames - 1]).shape[0] == 1
                with pytest.raises(DataError, match="out of range"):
                    reader.read([frames])


def test_video_stream_is_picked_beside_audio(media):
    path = media / "ucf101" / "test_ApplyEyeMakeup.avi"
    with av.open(str(path)) as container:
        assert len(container.streams.audio) == 1
    with open_video(path) as reader:
        assert reader.num_frames == 164


def test_full_range_colour_of_the_asl_clips(media):
    """yuvj420p (full range) must not be stretched as if it were limited range."""
    path = media / "asl_gestures" / "again.mkv"
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name == "yuvj420p"
        y = frame.to_ndarray(format="gray")  # luma plane
    with open_video(path, size=None) as reader:
        rgb = reader.read([0])[0].astype(np.float64)
    luma = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    assert abs(luma.mean() - y.mean()) < 3  # limited-range expansion would add ~(mean - 16) * 0.16


def test_frame_folder(media):
    folder = media / "rawframes" / "v_ApplyEyeMakeup_g01_c01"
    from PIL import Image

    with open_video(folder) as reader:
        assert reader.backend == "frames" and reader.num_frames == 10
        frames = reader.read([9, 0, 0])
    first = np.asarray(Image.open(folder / "img_00001.jpg").convert("RGB").resize((170, 128), Image.BILINEAR))
    assert frames.shape == (3, 128, 170, 3)
    np.testing.assert_array_equal(frames[1], frames[2])
    assert np.abs(frames[1].astype(int) - first).mean() < 3  # a resize of the same JPEG
    with open_video(folder, size=None) as reader:
        assert reader.read([0]).shape == (1, 240, 320, 3)


@pytest.mark.parametrize("name", ["h264", "avi", "avi_bframes", "vfr", "odd"])
def test_fixture_videos_read_exact_frames(videos, name):
    expected = reference_frames(videos[name])
    assert frame_levels(expected) == pytest.approx(list(range(NUM_FRAMES)), abs=1)  # lossy, but in order
    with open_video(videos[name], backend="pyav") as reader:
        assert reader.num_frames == NUM_FRAMES
        np.testing.assert_array_equal(reader.read(range(NUM_FRAMES)), expected)
        picks = [30, 3, 17, 17, 35, 0, 9]
        np.testing.assert_array_equal(reader.read(picks), expected[picks])


def test_avi_whose_frames_come_out_of_timestamp_order_is_read_sequentially(media):
    # DivX packed B-frames: FFmpeg's guessed AVI timestamps do not follow display order
    for name in ("hmdb51/TrumanShow_wave_f_nm_np1_fr_med_26.avi", "ucf101/test_ApplyEyeMakeup.avi"):
        with open_video(media / name, backend="pyav") as reader:
            assert reader._sequential, name
    with open_video(media / "ucf101/v_SoccerJuggling_g23_c01.avi", backend="pyav") as reader:
        assert not reader._sequential  # no B-frames: seeks


def test_frame_folder_fixture_and_pattern(videos):
    with open_video(videos["frames"]) as reader:
        assert reader.num_frames == 20
        assert frame_levels(reader.read([19, 4])) == [19, 4]
    with pytest.raises(DataError, match="no frames named"):
        open_video(videos["frames"], frame_pattern="image_{:06d}.jpg")


@pytest.mark.parametrize(
    "name, message",
    [
        ("corrupt", "cannot open as a video"),
        ("truncated", "truncated"),
        ("zero", "cannot open|no frames|no decodable"),
        ("audio", "no video stream"),
    ],
)
def test_bad_videos_raise_one_line_errors_naming_the_file(videos, name, message):
    with pytest.raises(DataError, match=message) as caught:
        with open_video(videos[name]) as reader:
            reader.read([0])
    text = str(caught.value)
    assert str(videos[name]) in text and "\n" not in text


def test_corrupt_frame_in_a_folder_names_the_image(videos):
    with open_video(videos["frames_broken"]) as reader:
        assert reader.read([0, 3]).shape[0] == 2
        with pytest.raises(DataError, match="image_000005.jpg"):
            reader.read([2, 4])


def test_missing_path_and_wrong_backend(tmp_path, videos):
    with pytest.raises(DataError, match="no such file"):
        open_video(tmp_path / "nope.mp4")
    with pytest.raises(DataError, match="unknown video backend"):
        open_video(videos["h264"], backend="opencv2")
    with pytest.raises(DataError, match="frame folder"):
        open_video(videos["frames"], backend="pyav")


def test_sizes():
    assert output_size(240, 320, (128, 170)) == (128, 170)
    assert output_size(240, 560, 128) == (128, 299)
    assert output_size(480, 270, 128) == (228, 128)
    assert output_size(61, 97, None) == (61, 97)


def test_keep_aspect_size(videos):
    with open_video(videos["odd"], size=32) as reader:
        assert reader.frame_size == (32, 51)
        assert reader.read([0]).shape == (1, 32, 51, 3)


@pytest.mark.skipif(not decord_available(), reason="decord is not installed (pip install 'artnet[decord]')")
def test_decord_backend_agrees_on_mp4(videos):
    with open_video(videos["h264"], backend="decord") as reader:
        assert reader.backend == "decord" and reader.num_frames == NUM_FRAMES
        assert frame_levels(reader.read([30, 3, 17])) == [30, 3, 17]
    with pytest.raises(DataError):
        open_video(videos["corrupt"], backend="decord")


@pytest.mark.skipif(not decord_available(), reason="decord is not installed (pip install 'artnet[decord]')")
def test_auto_backend_tries_the_preferred_one_and_falls_back(videos, monkeypatch):
    from artnet.data import readers

    with open_video(videos["h264"]) as reader:
        assert reader.backend == "pyav"  # measured fastest
    monkeypatch.setattr(readers, "AUTO_VIDEO_BACKEND", "decord")
    with open_video(videos["h264"]) as reader:
        assert reader.backend == "decord"
    with open_video(videos["avi"]) as reader:  # AVI: never decord (it trusts the container's count)
        assert reader.backend == "pyav"
    with open_video(videos["odd"]) as reader:  # decord cannot open odd-sized 4:4:4: falls back
        assert reader.backend in ("pyav", "decord")
