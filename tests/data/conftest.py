"""Small real videos, encoded once per test session with PyAV, good and bad.

Frame ``i`` of every good fixture is a flat grey of level ``level(i)``, so a test can tell which frame
a reader returned from its mean.
"""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from ..conftest import MEDIA

NUM_FRAMES = 36


def level(index: int) -> int:
    return 20 + 6 * (index % NUM_FRAMES)


def frame_levels(frames: np.ndarray) -> list[int]:
    """The frame index each decoded frame shows (nearest level)."""
    return [int(round((float(f.mean()) - 20) / 6)) for f in frames]


def encode(path: Path, num_frames=NUM_FRAMES, size=(48, 64), codec="libx264", pix_fmt="yuv420p", options=None, pts=None, time_base=None):
    height, width = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if options:
            stream.codec_context.options = options
        if time_base is not None:
            stream.codec_context.time_base = time_base
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), level(i), np.uint8), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


#: a display rotation as PyAV writes it: (counter-clockwise degrees, mirror left-right, mirror upside down)
ROTATIONS = [(90, False, False), (180, False, False), (270, False, False), (90, True, False), (0, False, True)]


def upright_picture(height=64, width=40) -> np.ndarray:
    """Red grows to the right, green downwards, a blue top-left corner: each of the eight quarter turns
    and mirrors gives another picture, and smooth enough to survive a lossy encode or a resize."""
    y, x = np.mgrid[0:height, 0:width]
    picture = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), np.zeros_like(x)], axis=-1).astype(np.uint8)
    picture[: height // 4, : width // 4, 2] = 255
    return picture


def stored_picture(upright: np.ndarray, degrees: int, hflip: bool, vflip: bool) -> np.ndarray:
    """What a camera stores for ``upright`` with this display rotation: PyAV's ``set_display_rotation``
    turns by ``degrees`` counter-clockwise, then mirrors, to show it."""
    picture = upright[::-1] if vflip else upright
    picture = picture[:, ::-1] if hflip else picture
    return np.ascontiguousarray(np.rot90(picture, -degrees // 90))


def encode_rotated(
    path: Path, upright: np.ndarray, rotation=(0, False, False), num_frames=4, codec="libx264rgb", black=0
) -> Path:
    """A lossless clip (x264 RGB, qp 0) of ``upright`` stored turned, with a display matrix to turn it back;
    ``black``: that many black frames first (a video fading in)."""
    degrees, hflip, vflip = rotation
    stored = stored_picture(upright, degrees, hflip, vflip)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width = stored.shape[:2]
        stream.pix_fmt = "rgb24"
        stream.codec_context.options = {"qp": "0"}
        if rotation != (0, False, False):
            stream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        for index in range(num_frames):
            picture = stored if index >= black else np.zeros_like(stored)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_folder(folder: Path, numbers, pattern="img_{:05d}.jpg") -> Path:
    """A folder of JPEG frames with these numbers; frame ``n`` shows ``level(n)``."""
    folder.mkdir(parents=True)
    for number in numbers:
        Image.fromarray(np.full((48, 64, 3), level(number), np.uint8)).save(folder / pattern.format(number), quality=95)
    return folder


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    made = {
        # H.264 with B-frames and a keyframe every 8 frames: the seek path with reordering
        "h264": encode(root / "h264.mp4", options={"g": "8", "bf": "2"}),
        # MPEG-4 part 2 in AVI, no B-frames: AVI timestamps, seekable
        "avi": encode(root / "plain.avi", codec="mpeg4", options={"g": "10"}),
        # MPEG-4 part 2 with B-frames in AVI: timestamps out of order, read sequentially
        "avi_bframes": encode(root / "bframes.avi", codec="mpeg4", options={"bf": "2", "g": "12"}),
        # variable frame rate: irregular timestamps (ms)
        "vfr": encode(
            root / "vfr.mkv",
            pts=[int(t) for t in np.cumsum([0] + [40, 40, 80, 20, 40, 120, 40, 40, 33, 47] * 4)[:NUM_FRAMES]],
            time_base=Fraction(1, 1000),
        ),
        # odd frame size (4:4:4, so odd sizes are legal)
        "odd": encode(root / "odd.mkv", size=(61, 97), pix_fmt="yuv444p"),
        # fewer frames than a clip
        "short": encode(root / "short.mp4", num_frames=7),
    }
    # corrupt: bytes that are no container at all
    made["corrupt"] = root / "corrupt.mp4"
    made["corrupt"].write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    # truncated: an AVI cut in half (its header still declares every frame)
    full = encode(root / "full.avi", num_frames=120, codec="mpeg4", size=(96, 128))
    made["truncated"] = root / "truncated.avi"
    made["truncated"].write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    # zero frames: a video stream with no packet
    made["zero"] = root / "zero.mkv"
    with av.open(str(made["zero"]), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = 64, 48
        container.start_encoding()
    # audio only
    made["audio"] = root / "audio.mka"
    with av.open(str(made["audio"]), "w") as container:
        stream = container.add_stream("mp2", rate=44100)
        for _ in range(5):
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.int16), format="s16", layout="mono")
            samples.sample_rate = 44100
            for packet in stream.encode(samples):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    # JPEG frame folders: good, and one with a corrupt frame
    frames = root / "frames" / "v_Test_g01_c01"
    frames.mkdir(parents=True)
    for i in range(20):
        Image.fromarray(np.full((48, 64, 3), level(i), np.uint8)).save(frames / f"img_{i + 1:05d}.jpg", quality=95)
    made["frames"] = frames
    broken = root / "frames" / "v_Broken_g01_c01"
    broken.mkdir()
    for i in range(20):
        Image.fromarray(np.full((48, 64, 3), level(i), np.uint8)).save(broken / f"image_{i + 1:06d}.jpg")
    (broken / "image_000005.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    made["frames_broken"] = broken
    return made


@pytest.fixture(scope="session")
def media() -> Path:
    if not MEDIA.is_dir():
        pytest.skip(f"{MEDIA} is not available (../shared is expected beside the project)")
    return MEDIA
