"""Writing RGB frames as H.264: the same frames give the same file whatever SIMD the CPU has.

Two libraries stand between the frames and the file, and both choose by CPU what they compute.
FFmpeg's swscale converts RGB to YUV with SIMD kernels picked at run time, which need not round
like its C code; so the conversion is done here, in integer arithmetic (:func:`rgb_to_yuv`). x264's
output differs between its own SSE2 and AVX2 kernels, and with its AVX-512 kernels the same frames
gave other bytes from one encoder to the next in one process; so x264 runs its portable C code,
on one thread.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction

import numpy as np

# ITU-R BT.601 in limited ("TV") range, FFmpeg's default for RGB -> YUV: Y in [16, 235], Cb and Cr
# in [16, 240]. Coefficients in 16-bit fixed point, each row rounded so that its sum is exact:
# white is Y 235, and every grey has Cb = Cr = 128.
_KR, _KB = 0.299, 0.114  # green's weight is what makes a row's sum exact
_FRACTION_BITS = 16


def _fixed_point_row(red: float, blue: float, total: float) -> tuple[int, int, int]:
    scale = 1 << _FRACTION_BITS
    r, b = round(red * scale), round(blue * scale)
    return r, round(total * scale) - r - b, b


_Y = _fixed_point_row(_KR * 219 / 255, _KB * 219 / 255, 219 / 255)
_CB = _fixed_point_row(-_KR / (1 - _KB) / 2 * 224 / 255, 224 / 255 / 2, 0.0)
_CR = _fixed_point_row(224 / 255 / 2, -_KB / (1 - _KR) / 2 * 224 / 255, 0.0)


def rgb_to_yuv(rgb: np.ndarray, subsample: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 (H, W, 3) RGB -> uint8 planes Y (H, W), Cb, Cr: BT.601, limited range.

    ``subsample``: chroma 4:2:0, each Cb and Cr sample from the mean RGB of a 2 x 2 block (sited at
    the block's centre, as in JPEG and libyuv; H and W even); otherwise 4:4:4. Rounded to nearest,
    halves up, in integers: the same on every CPU.
    """
    channels = rgb.transpose(2, 0, 1).astype(np.int32, order="C")  # planes: contiguous arithmetic
    luma = _weighted(_Y, channels, _FRACTION_BITS) + 16
    shift = _FRACTION_BITS
    if subsample:
        if rgb.shape[0] % 2 or rgb.shape[1] % 2:
            raise ValueError(f"4:2:0 needs an even frame size, got {rgb.shape[0]}x{rgb.shape[1]}")
        channels = channels[:, 0::2, 0::2] + channels[:, 0::2, 1::2] + channels[:, 1::2, 0::2] + channels[:, 1::2, 1::2]
        shift += 2  # sums of four pixels: the division by 4 is part of the final shift
    cb, cr = _weighted(_CB, channels, shift) + 128, _weighted(_CR, channels, shift) + 128
    return luma.astype(np.uint8), cb.astype(np.uint8), cr.astype(np.uint8)


def _weighted(row: tuple[int, int, int], channels: np.ndarray, shift: int) -> np.ndarray:
    """row . (R, G, B) per pixel, divided by 2**shift and rounded (halves up)."""
    total = channels[0] * row[0]
    total += channels[1] * row[1]
    total += channels[2] * row[2]
    total += 1 << (shift - 1)
    total >>= shift
    return total


def write_h264(
    path: str | os.PathLike, frames: Iterable[np.ndarray], rate: Fraction | int, options: dict[str, str], *, portable: bool = True
) -> int:
    """Encode uint8 (H, W, 3) RGB frames with libx264 into an MP4 file; return the frame count.

    ``options``: libx264 options (crf, preset, g, ...). The pixel format is yuv420p, or yuv444p
    when a side is odd. Frame i has pts i in a time base of 1 / ``rate``. ``portable``: x264 runs
    its C code, and the same frames give the same bytes whatever SIMD the CPU has; otherwise its
    faster SIMD kernels.
    """
    import av

    count = 0
    with av.open(str(path), "w", format="mp4") as container:
        stream = None
        for rgb in frames:
            if stream is None:
                height, width = rgb.shape[:2]
                stream = container.add_stream("libx264", rate=rate)
                stream.width, stream.height = width, height
                stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
                stream.codec_context.options = {**options, "threads": "1", **({"x264-params": "no-asm=1"} if portable else {})}
            frame = _yuv_frame(rgb, stream.pix_fmt)
            frame.pts, frame.time_base = count, Fraction(1) / Fraction(rate)
            container.mux(stream.encode(frame))
            count += 1
        if stream is not None:
            container.mux(stream.encode())
    return count


def _yuv_frame(rgb: np.ndarray, pix_fmt: str):
    import av

    planes = rgb_to_yuv(rgb, subsample=pix_fmt == "yuv420p")
    if pix_fmt == "yuv444p":
        return av.VideoFrame.from_ndarray(np.stack(planes), format=pix_fmt)
    # PyAV's yuv420p array: the three planes one after the other, as rows of the frame's width.
    packed = np.concatenate([plane.reshape(-1) for plane in planes]).reshape(-1, rgb.shape[1])
    return av.VideoFrame.from_ndarray(packed, format=pix_fmt)
