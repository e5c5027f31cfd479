"""Optical flow for the flow stream: TV-L1 (or Farneback) between consecutive frames, as TSN / ARTNet store it.

Upstream's extractor is dense_flow (yjxiong; run by TSN's ``tools/build_of.py`` as ``extract_gpu -b 20
-t 1 -s 1``): each frame resized, converted to grey, the flow from frame i to frame i + 1 computed with
TV-L1, and each component clipped to +-bound and mapped to 0-255 (``convertFlowToImage`` in
``src/common.cpp``: ``cvRound(255 * (v + bound) / (2 * bound))``, 0 / 255 beyond the bound), written as grey
JPEGs ``x_00001.jpg`` / ``y_00001.jpg`` (its zip layout; ``flow_x_00001.jpg`` / ``flow_y_00001.jpg`` in its
folder layout). N frames give N - 1 flow frames; flow frame i (file i + 1) is the motion from frame i to i + 1.

Here the flow is computed on the frames at the working size, so values are in pixels of the frames the
network sees. Upstream computed it at the extraction size (TSN: 340 x 256, or the source size) and ARTNet's
``eval_net.py`` (``c3d_flow``) resized the flow JPEGs to 170 x 128 without rescaling their values, so for
the same motion its values are about twice these; a bound of 10 at 170 x 128 gives about upstream's value
scale with a bound of 20 at 340 x 256.

TV-L1 uses OpenCV's defaults, which are those of upstream's ``createOptFlow_DualTVL1()`` (CPU) and
``cuda::OpticalFlowDual_TVL1::create()`` (GPU): tau 0.25, lambda 0.15, theta 0.3, 5 scales at 0.8, 5 warps,
epsilon 0.01, 300 iterations per warp at most. Farneback takes dense_flow's CPU parameters. OpenCV runs
one thread: prepare's jobs (one video each) are the parallelism.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .readers import FLOW_PATTERNS, VideoReader

FLOW_METHODS = ("tvl1", "farneback")
#: upstream's clipping bound (``build_of.py``: ``-b 20``), in pixels
FLOW_BOUND = 20.0
#: ``calcOpticalFlowFarneback`` arguments of dense_flow's CPU extractor (``src/dense_flow.cpp``):
#: pyr_scale, levels, winsize, iterations, poly_n, poly_sigma
FARNEBACK_PARAMETERS = (0.702, 5, 10, 2, 7, 1.5)


@dataclass(frozen=True)
class FlowOptions:
    """How a flow folder is made: ``method`` (``"tvl1"``, upstream's, or ``"farneback"``, much faster and
    less accurate), the clipping ``bound`` in pixels and the (x, y) file name ``patterns`` (1-indexed)."""

    method: str = "tvl1"
    bound: float = FLOW_BOUND
    patterns: tuple[str, str] = FLOW_PATTERNS[0]

    def __post_init__(self):
        if self.method not in FLOW_METHODS:
            raise DataError(f"unknown flow method {self.method!r}: use one of {', '.join(FLOW_METHODS)}")
        if not self.bound > 0:
            raise DataError(f"the flow bound must be positive, not {self.bound}")


def flow_fields(frames: Iterable[np.ndarray], method: str = "tvl1") -> Iterator[np.ndarray]:
    """The flow from each uint8 RGB frame ``(H, W, 3)`` to the next, as float32 ``(H, W, 2)`` (x, y) in
    pixels: where a point of one frame is in the next, minus where it was. N frames give N - 1 fields."""
    cv2 = _opencv(contrib=method == "tvl1")
    if method == "tvl1":
        estimate = cv2.optflow.DualTVL1OpticalFlow_create().calc
    elif method == "farneback":

        def estimate(first, second, flow):
            return cv2.calcOpticalFlowFarneback(first, second, flow, *FARNEBACK_PARAMETERS, cv2.OPTFLOW_FARNEBACK_GAUSSIAN)

    else:
        raise DataError(f"unknown flow method {method!r}: use one of {', '.join(FLOW_METHODS)}")
    previous = None
    for frame in frames:
        grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        if previous is not None:
            yield estimate(previous, grey, None)
        previous = grey


def quantize_flow(flow: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """Float flow -> uint8 as upstream's ``convertFlowToImage``: ``round(255 * (v + bound) / (2 * bound))``,
    clipped to 0-255 (0 motion -> 128, +-bound and beyond -> 255 / 0); rounds half to even, as ``cvRound``."""
    scaled = 255.0 * (np.asarray(flow, dtype=np.float64) + bound) / (2 * bound)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def dequantize_flow(image: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """uint8 flow -> float32 pixels (the inverse of :func:`quantize_flow` within the bound, to half a step)."""
    return (np.asarray(image, dtype=np.float32) * (2 * bound / 255.0) - bound).astype(np.float32)


def write_flow_folder(reader: VideoReader, folder: str | Path, options: FlowOptions = FlowOptions(), quality: int = 90) -> int:
    """Write the flow of every pair of consecutive frames of ``reader`` into a new ``folder`` as grey JPEGs
    (``options.patterns``, numbered from 1); returns the number of flow frames (the video's frames - 1)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True)
    x_pattern, y_pattern = options.patterns
    count = 0
    for flow in flow_fields(reader.iter_frames(), options.method):
        count += 1
        quantized = quantize_flow(flow, options.bound)
        Image.fromarray(quantized[..., 0]).save(folder / x_pattern.format(count), quality=quality)
        Image.fromarray(quantized[..., 1]).save(folder / y_pattern.format(count), quality=quality)
    if count == 0:
        raise DataError(f"{reader.path}: optical flow needs at least 2 frames")
    return count


def require_opencv(method: str) -> None:
    """Raise a DataError naming the extra to install when OpenCV cannot compute ``method``'s flow."""
    _opencv(contrib=method == "tvl1")


def _opencv(contrib: bool):
    try:
        import cv2
    except ImportError:
        raise DataError("optical flow needs OpenCV: pip install 'artnet[flow]'") from None
    if contrib and not hasattr(cv2, "optflow"):
        raise DataError("TV-L1 flow needs OpenCV's contrib modules (cv2.optflow): pip install 'artnet[flow]'")
    cv2.setNumThreads(1)
    return cv2
