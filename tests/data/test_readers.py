"""Readers on real files: every clip in ../shared/media and the PyAV-made fixtures, good and bad."""

import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter

from artnet.data import open_video
from artnet.data.readers import decord_available, output_size
from artnet.errors import DataError

from .conftest import NUM_FRAMES, ROTATIONS, encode, encode_rotated, frame_folder, frame_levels, stored_picture, upright_picture

VIDEO_BACKENDS = ["pyav"] + (["decord"] if decord_available() else [])

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


# -- rotated videos (phone videos carry a display matrix)


@pytest.mark.parametrize("rotation", ROTATIONS, ids=lambda r: "{}{}{}".format(r[0], "-hflip" * r[1], "-vflip" * r[2]))
def test_rotated_video_reads_upright_in_pyav(tmp_path, rotation):
    upright = upright_picture()
    path = encode_rotated(tmp_path / "phone.mp4", upright, rotation)
    with av.open(str(path)) as container:  # the file really is stored turned
        stored = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert stored.shape[:2] == stored_picture(upright, *rotation).shape[:2]
    with open_video(path, backend="pyav", size=None) as reader:
        assert reader.frame_size == (64, 40)  # asked before any frame was read
        frames = reader.read([3, 0])
    np.testing.assert_array_equal(frames, np.stack([upright, upright]))
    with open_video(path, backend="pyav", size=None) as reader:  # the size follows the first read, too
        np.testing.assert_array_equal(reader.read([1])[0], upright)
        assert reader.frame_size == (64, 40)


@pytest.mark.parametrize("rotation", [(90, False, False), (270, False, False)])
def test_size_option_applies_to_the_upright_frame(tmp_path, rotation):
    upright = upright_picture()
    path = encode_rotated(tmp_path / "phone.mkv", upright, rotation)
    with open_video(path, backend="pyav", size=(32, 20)) as reader:
        assert reader.frame_size == (32, 20)
        small = reader.read([0])[0].astype(int)
    with open_video(encode_rotated(tmp_path / "plain.mkv", upright), backend="pyav", size=(32, 20)) as reader:
        expected = reader.read([0])[0].astype(int)  # the same picture, never rotated
    assert np.abs(small - expected).mean() < 2
    with open_video(path, backend="pyav", size=16) as reader:  # the short side of the upright frame
        assert reader.frame_size == (26, 16) and reader.read([0]).shape == (1, 26, 16, 3)


def test_a_turn_that_is_not_a_quarter_turn_warns_and_takes_the_nearest(tmp_path, caplog):
    upright = upright_picture()
    path = encode_rotated(tmp_path / "tilted.mp4", stored_picture(upright, 90, False, False))
    with av.open(str(path), "w") as container:  # the same stored picture, shown turned by 80 degrees
        stream = container.add_stream("libx264rgb", rate=25)
        stream.height, stream.width = 40, 64
        stream.pix_fmt, stream.codec_context.options = "rgb24", {"qp": "0"}
        stream.set_display_rotation(80)
        for _ in range(2):
            for packet in stream.encode(av.VideoFrame.from_ndarray(stored_picture(upright, 90, False, False), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with caplog.at_level("WARNING", logger="artnet.data.readers"), open_video(path, backend="pyav", size=None) as reader:
        np.testing.assert_array_equal(reader.read([0, 1]), np.stack([upright, upright]))
    warnings = [r.getMessage() for r in caplog.records if "tilted.mp4" in r.getMessage()]
    assert len(warnings) == 1 and "80.0 degrees" in warnings[0] and "nearest quarter turn" in warnings[0]


@pytest.mark.skipif(not decord_available(), reason="decord is not installed (pip install 'artnet[decord]')")
@pytest.mark.parametrize("container", ["mp4", "mkv"])  # decord turns MP4s itself (not mirrors), not MKVs
@pytest.mark.parametrize("rotation", ROTATIONS, ids=lambda r: "{}{}{}".format(r[0], "-hflip" * r[1], "-vflip" * r[2]))
def test_rotated_video_reads_upright_in_decord(tmp_path, rotation, container):
    upright = upright_picture()
    path = encode_rotated(tmp_path / f"phone.{container}", upright, rotation)
    with open_video(path, backend="decord", size=(64, 40)) as reader:
        assert reader.backend == "decord" and reader.frame_size == (64, 40)
        frames = reader.read([2, 0]).astype(int)
    assert frames.shape == (2, 64, 40, 3)
    assert np.abs(frames - upright).max() <= 2  # decord's own RGB conversion
    with open_video(encode_rotated(tmp_path / "plain.mkv", upright), backend="pyav", size=(56, 35)) as reader:
        expected = reader.read([0])[0].astype(int)  # the same picture, never rotated, resized by PyAV
    with open_video(path, backend="decord", size=(56, 35)) as reader:  # widths decord shapes right
        assert np.abs(reader.read([0])[0].astype(int) - expected).mean() < 3


@pytest.mark.skipif(not decord_available(), reason="decord is not installed (pip install 'artnet[decord]')")
def test_decord_learns_its_turn_of_a_rotated_video_that_starts_black(tmp_path):
    """A black frame looks the same turned every way: a later frame tells how decord turned the video."""
    upright = upright_picture()
    path = encode_rotated(tmp_path / "fade_in.mp4", upright, (90, False, False), num_frames=12, black=3)
    with open_video(path, backend="decord", size=(64, 40)) as reader:
        frames = reader.read([0, 3, 11]).astype(int)
    assert frames[0].max() <= 2 and np.abs(frames[1:] - upright).max() <= 2
    dark = encode_rotated(tmp_path / "dark.mp4", upright, (90, False, False), num_frames=4, black=4)
    with pytest.raises(DataError, match="dark.mp4: cannot tell how decord turns this rotated video .*; use backend 'pyav'"):
        open_video(dark, backend="decord")


def test_rotated_jpeg_frames_read_upright_by_their_exif_orientation(tmp_path, monkeypatch):
    from PIL import Image, ImageOps

    from artnet.data import readers

    upright = upright_picture()
    folder = tmp_path / "burst"
    folder.mkdir()
    for i in range(3):
        exif = Image.Exif()
        exif[0x0112] = 6  # stored turned a quarter counter-clockwise: shown turned clockwise
        Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(folder / f"img_{i + 1:05d}.jpg", quality=95, exif=exif)
    with Image.open(folder / "img_00001.jpg") as image:
        reference = np.asarray(ImageOps.exif_transpose(image).convert("RGB")).astype(int)  # Pillow's reading of the tag
    assert reference.shape == upright.shape
    for decoder in ("auto", "pil"):
        monkeypatch.setattr(readers, "JPEG_DECODER", decoder)
        with open_video(folder, size=None) as reader:
            assert reader.frame_size == (64, 40)
            frames = reader.read([0, 2]).astype(int)
        assert np.abs(frames - reference).mean() < 1, decoder


# -- things that are not videos


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
@pytest.mark.parametrize("name", ["photo.mp4", "photo.avi"])
def test_a_still_image_under_a_video_name_is_refused(tmp_path, image_format, name):
    from PIL import Image

    path = tmp_path / name
    Image.fromarray(upright_picture()).save(path, format=image_format)
    for backend in VIDEO_BACKENDS + ["auto"]:
        with pytest.raises(DataError, match="a still image, not a video") as caught:
            open_video(path, backend=backend)
        assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)


def test_a_one_frame_video_is_refused_and_an_animated_gif_is_a_video(tmp_path):
    from PIL import Image

    one = encode(tmp_path / "one.mp4", num_frames=1)
    for backend in VIDEO_BACKENDS:
        with pytest.raises(DataError, match="one.mp4: a single frame, not a video"):
            open_video(one, backend=backend)
    with pytest.raises(DataError, match="v_one: a single frame, not a video"):
        open_video(frame_folder(tmp_path / "v_one", [1]))
    pictures = [Image.fromarray(np.full((48, 64, 3), 20 + 40 * i, np.uint8)) for i in range(5)]
    pictures[0].save(tmp_path / "wave.gif", save_all=True, append_images=pictures[1:], duration=40)
    with open_video(tmp_path / "wave.gif", size=None) as reader:
        assert reader.num_frames == 5
        assert [int(f.mean()) for f in reader.read(range(5))] == pytest.approx([20, 60, 100, 140, 180], abs=3)


def _music_with_cover_art(path, with_video: bool):
    from av.stream import Disposition

    with av.open(str(path), "w", format="mp4") as container:
        cover = container.add_stream("mjpeg")
        cover.width, cover.height, cover.pix_fmt = 32, 24, "yuvj420p"
        cover.disposition = Disposition.attached_pic
        video = container.add_stream("libx264", rate=25) if with_video else None
        if video is not None:
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=44100)
        container.start_encoding()
        picture = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 200, np.uint8), format="rgb24").reformat(format="yuvj420p")
        for packet in cover.encode(picture) + cover.encode():
            container.mux(packet)
        for i in range(6 if video is not None else 0):
            for packet in video.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * i, np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in video.encode() if video is not None else []:
            container.mux(packet)
        for i in range(10):
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            samples.sample_rate, samples.pts = 44100, i * 1024
            for packet in audio.encode(samples):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    return path


def test_cover_art_is_no_video_and_never_taken_for_one(tmp_path):
    song = _music_with_cover_art(tmp_path / "song.mp4", with_video=False)
    for backend in VIDEO_BACKENDS:
        with pytest.raises(DataError, match="song.mp4: no video, only a still picture attached to it"):
            open_video(song, backend=backend)
    clip = _music_with_cover_art(tmp_path / "clip.mp4", with_video=True)
    with av.open(str(clip)) as container:
        assert len(container.streams.video) == 2
    with open_video(clip, backend="pyav", size=None) as reader:
        assert reader.num_frames == 6 and reader.frame_size == (48, 64)


# -- frame folders: numbered without a gap


def test_a_gap_in_a_frame_folder_is_an_error_naming_the_missing_frame(tmp_path):
    gap = frame_folder(tmp_path / "v_gap", [*range(1, 11), *range(12, 21)])
    with pytest.raises(DataError, match=r"v_gap: frame img_00011.jpg is missing; 9 frame\(s\) after the gap, up to img_00020"):
        open_video(gap)
    lone = frame_folder(tmp_path / "v_lone", [1, 2, 3, 5])  # as many files past the gap as missing
    with pytest.raises(DataError, match=r"frame img_00004.jpg is missing; 1 frame\(s\) after the gap"):
        open_video(lone)
    late = frame_folder(tmp_path / "v_late", [2, 3, 4], pattern="image_{:06d}.jpg")
    with pytest.raises(DataError, match=r"v_late: the first frame image_000001.jpg is missing \(the frames start at image_0000"):
        open_video(late)


def test_frame_folders_numbered_from_zero_and_files_that_are_not_frames(tmp_path):
    zero = frame_folder(tmp_path / "v_zero", range(12))
    with open_video(zero) as reader:
        assert reader.num_frames == 12 and frame_levels(reader.read([0, 11])) == [0, 11]
    crowded = frame_folder(tmp_path / "v_crowded", range(1, 9))
    for name in ("img_00003 copy.jpg", "img_3.jpg", "img_0000x.jpg", "flow_x_00001.jpg", "x_00020.jpg", "img_00020.png"):
        (crowded / name).write_bytes(b"not a frame of this video")
    with open_video(crowded) as reader:
        assert reader.num_frames == 8 and frame_levels(reader.read([7])) == [8]
