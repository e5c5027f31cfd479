"""RGB -> YUV by the BT.601 definition, and H.264 files that are the same bytes for the same frames."""

import av
import numpy as np
import pytest

from artnet.data.h264 import rgb_to_yuv, write_h264
from artnet.data.synthetic import render_clip

PRIMARIES = {  # BT.601 limited range, as tabulated for 8-bit video
    (255, 255, 255): (235, 128, 128),
    (0, 0, 0): (16, 128, 128),
    (255, 0, 0): (81, 90, 240),
    (0, 255, 0): (145, 54, 34),
    (0, 0, 255): (41, 240, 110),
    (128, 128, 128): (126, 128, 128),
}


def bt601(rgb: np.ndarray) -> np.ndarray:
    """The definition in float64, rounded to nearest: (..., 3) RGB -> (..., 3) YCbCr."""
    kr, kb = 0.299, 0.114
    r, g, b = np.moveaxis(rgb.astype(np.float64), -1, 0)
    luma = kr * r + (1 - kr - kb) * g + kb * b
    y = 16 + 219 / 255 * luma
    cb = 128 + 224 / 255 * (b - luma) / (2 * (1 - kb))
    cr = 128 + 224 / 255 * (r - luma) / (2 * (1 - kr))
    return np.floor(np.stack([y, cb, cr], -1) + 0.5)


def decode(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_conversion_follows_bt601():
    for rgb, yuv in PRIMARIES.items():
        planes = rgb_to_yuv(np.array([[rgb]], np.uint8), subsample=False)
        assert tuple(int(p[0, 0]) for p in planes) == yuv, rgb
    pixels = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    full = np.stack(rgb_to_yuv(pixels, subsample=False), -1)
    assert np.abs(full.astype(int) - bt601(pixels)).max() <= 1  # 16-bit fixed point: off by one at most
    assert (full != bt601(pixels)).mean() < 0.01
    luma, cb, cr = rgb_to_yuv(pixels)
    assert luma.shape == (64, 96) and cb.shape == cr.shape == (32, 48)
    assert np.array_equal(luma, full[..., 0])
    block_means = pixels.astype(np.float64).reshape(32, 2, 48, 2, 3).mean((1, 3))
    assert np.abs(np.stack([cb, cr], -1).astype(int) - bt601(block_means)[..., 1:]).max() <= 1
    with pytest.raises(ValueError, match="even"):
        rgb_to_yuv(pixels[:63])


def test_decoded_colours_are_the_encoded_ones(tmp_path):
    """Near-lossless (crf 0): flat primaries come back within a level or two, a rendered clip
    within what 4:2:0 chroma costs on its edges, with no colour cast."""
    flat = np.stack([np.full((32, 48, 3), rgb, np.uint8) for rgb in PRIMARIES])
    assert write_h264(tmp_path / "flat.mp4", flat, 25, {"crf": "0"}) == len(PRIMARIES)
    assert np.abs(decode(tmp_path / "flat.mp4").astype(int) - flat).max() <= 2

    clip = render_clip("Approaching", 0, 0, 8, 48, 64)
    write_h264(tmp_path / "clip.mp4", clip, 25, {"crf": "0"})
    error = decode(tmp_path / "clip.mp4").astype(int) - clip
    assert np.abs(error).mean() < 5
    assert np.abs(error.mean((0, 1, 2))).max() < 2


def test_odd_sizes_keep_full_chroma(tmp_path):
    frames = render_clip("CycleRGB", 0, 0, 4, 33, 47)
    assert write_h264(tmp_path / "odd.mp4", frames, 25, {"crf": "0"}) == 4
    with av.open(str(tmp_path / "odd.mp4")) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv444p"
    assert np.abs(decode(tmp_path / "odd.mp4").astype(int) - frames).mean() < 2


def test_the_same_frames_give_the_same_bytes(tmp_path):
    """Encoders started one after another, with other clips between: x264's AVX-512 kernels gave
    other bytes here from one encoder to the next."""
    clips = [render_clip(name, 0, 0, 20, 48, 64) for name in ("Striped", "Rising", "Approaching")]
    written = {}
    for attempt in range(3):
        for index, clip in enumerate(clips):
            path = tmp_path / f"{index}_{attempt}.mp4"
            write_h264(path, clip, 25, {"crf": "23", "preset": "veryfast"})
            written.setdefault(index, set()).add(path.read_bytes())
    assert [len(versions) for versions in written.values()] == [1, 1, 1]
