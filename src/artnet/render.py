"""Pictures and videos of what a model sees: Grad-CAM contact sheets and blends, timelines,
videos with the current label drawn on them.

PNG figures need matplotlib (the ``plots`` extra; ``explain`` and ``serve`` bring it too); videos
are H.264 MP4 files written by PyAV, streamed frame by frame. A file named by its path is written
whole or not at all (:mod:`artnet.outputs`): a failed write leaves what was there.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import IO, TYPE_CHECKING, Iterator

import numpy as np

from .data.h264 import write_h264
from .data.readers import open_video
from .errors import ConfigError
from .outputs import atomic_path
from .plots import pyplot, save_figure

if TYPE_CHECKING:
    from .engine.explain import Explanation
    from .engine.predict import Timeline

COLORMAP = "jet"  # Grad-CAM's customary map: hot where the class score draws on the features
SATURATION = 99.0  # percentile of a map (over its clip) shown at the top of the colour map
HEAT_OPACITY = 0.6  # of the colour where a map peaks; where it is 0 the frame shows as it is
VIDEO_OPTIONS = {"crf": "18", "preset": "veryfast"}  # x264: visually lossless, fast
ROW_TITLES = {"appearance": "appearance map", "relation": "relation map", "output": "map"}


def _pyplot(extra: str = "plots"):
    plt = pyplot()
    if plt is None:
        raise ConfigError(f"pictures need matplotlib: pip install 'artnet[{extra}]'")
    return plt


def heat_overlay(frames: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """uint8 ``(..., H, W, 3)`` frames with a ``(..., H, W)`` map in [0, 1] blended over them, in :data:`COLORMAP`."""
    import matplotlib

    colours = matplotlib.colormaps[COLORMAP](heat)[..., :3]
    alpha = HEAT_OPACITY * heat[..., None]
    blended = frames.astype(np.float32) / 255 * (1 - alpha) + colours * alpha
    return np.clip(np.rint(blended * 255), 0, 255).astype(np.uint8)


def as_picture(frames: np.ndarray) -> np.ndarray:
    """uint8 ``(..., H, W, C)`` frames as RGB: optical flow (x, y) as red and green over a blue of 128,
    the value of no motion, so that still parts show grey."""
    if frames.shape[-1] == 3:
        return frames
    return np.concatenate([frames, np.full((*frames.shape[:-1], 1), 128, np.uint8)], axis=-1)


def explanation_rows(explanation: Explanation) -> dict[str, np.ndarray]:
    """``title -> (T, H, W, 3)`` frames: the input, then each map blended over it, its colours
    spread between 0 and the map's :data:`SATURATION` percentile over the clip (a few hot pixels,
    at a border say, would otherwise leave the rest of the map all but invisible)."""
    seen = as_picture(explanation.frames)
    rows = {"input": seen}
    for name in explanation.maps:
        heat = explanation.upsampled(name)
        top = float(np.percentile(heat, SATURATION))
        rows[ROW_TITLES[name]] = heat_overlay(seen, np.clip(heat / top, 0, 1) if top > 0 else heat)
    return rows


def contact_sheet(explanation: Explanation, path: str | os.PathLike | IO[bytes], frame_inches: float = 0.75):
    """A PNG (to a path or a binary file): the clip's frames in a row; the input, then each map
    over it, one row each. Returns ``path``."""
    plt = _pyplot("explain")
    rows = explanation_rows(explanation)
    frames = len(explanation.frames)
    fig, axes = plt.subplots(
        len(rows), frames, figsize=(frame_inches * frames + 1.1, frame_inches * len(rows) + 0.45), squeeze=False
    )
    for axis_row, (title, images) in zip(axes, rows.items()):
        for column, (axis, image) in enumerate(zip(axis_row, images)):
            axis.imshow(image, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_visible(False)
            if column == 0:
                axis.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=8)
    for axis, index in zip(axes[-1], explanation.frame_indices):
        axis.set_xlabel(str(index), fontsize=7)
    first, last = explanation.frame_indices[0], explanation.frame_indices[-1]
    fig.suptitle(
        f"{os.path.basename(explanation.video)}: {explanation.label} ({explanation.score:.2f}) at {explanation.block},"
        f" frames {first}-{last}"
        + ("" if explanation.predicted == explanation.label else f"; predicted {explanation.predicted}"),
        fontsize=9,
    )
    fig.subplots_adjust(
        left=1.1 / fig.get_figwidth(),
        right=0.995,
        top=1 - 0.3 / fig.get_figheight(),
        bottom=0.15 / fig.get_figheight() + 0.02,
        wspace=0.04,
        hspace=0.06,
    )
    save_figure(fig, path)
    plt.close(fig)
    return path


def explanation_video(explanation: Explanation, path: str | os.PathLike, fps: float = 4, zoom: int = 4) -> str:
    """An MP4: each frame of the clip beside the maps blended over it, ``zoom`` times the crop size."""
    rows = explanation_rows(explanation)

    def frames() -> Iterator[np.ndarray]:
        for t in range(len(explanation.frames)):
            panels = [caption(_zoom(images[t], zoom), title) for title, images in rows.items()]
            yield np.concatenate(panels, axis=1)

    with atomic_path(path) as temporary:
        write_h264(temporary, frames(), Fraction(fps).limit_denominator(1001), VIDEO_OPTIONS, portable=False)
    return os.fspath(path)


def timeline_plot(timeline: Timeline, path: str | os.PathLike | IO[bytes], top: int = 10):
    """A PNG (to a path or a binary file): each class's probability over the video. The classes that
    are top-1 in some window are named and coloured (the ``top`` that are so in most windows, in
    order of their first appearance); the others are grey. Returns ``path``."""
    plt = _pyplot()
    centres = timeline.frames.mean(axis=1)
    seconds = timeline.seconds(centres)
    x, unit = (centres, "frame") if seconds is None else (seconds, "seconds")
    winners = timeline.probabilities.argmax(axis=1)
    wins = np.bincount(winners, minlength=len(timeline.classes))
    named = [k for k in np.argsort(-wins, kind="stable")[:top] if wins[k]]
    named.sort(key=lambda k: int(np.argmax(winners == k)))
    colours = plt.get_cmap("tab10" if len(named) <= 10 else "tab20")
    fig, axis = plt.subplots(figsize=(8, 3.2))
    for k in range(len(timeline.classes)):
        if k not in named:
            axis.plot(x, timeline.probabilities[:, k], color="0.8", linewidth=0.8)
    for i, k in enumerate(named):
        axis.plot(
            x,
            timeline.probabilities[:, k],
            color=colours(i),
            linewidth=1.8,
            marker="o" if len(x) < 40 else None,
            markersize=3,
            label=timeline.classes[k],
        )
    axis.set_xlabel(f"{unit} (window centre)")
    axis.set_ylabel("probability")
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlim(x[0] - 0.5 * (x[1] - x[0] if len(x) > 1 else 1), x[-1] + 0.5 * (x[-1] - x[-2] if len(x) > 1 else 1))
    axis.set_title(f"{os.path.basename(timeline.path)}: {len(x)} windows", fontsize=10)
    axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    axis.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def annotate_video(
    timeline: Timeline, path: str | os.PathLike, *, backend: str = "auto", frame_pattern: str | None = None
) -> int:
    """The video again, at its own size and frame rate (25 fps for a frame folder), with the top
    class and score of the window nearest each frame drawn on it; no audio. Streams: one frame in
    memory at a time. Returns the frame count."""
    centres = timeline.frames.mean(axis=1)
    labels, scores = timeline.top(1)
    with open_video(timeline.path, backend=backend, size=None, frame_pattern=frame_pattern) as reader:

        def frames() -> Iterator[np.ndarray]:
            for index, frame in enumerate(reader.iter_frames()):
                window = _nearest(centres, index)
                yield caption(frame, f"{timeline.classes[labels[window, 0]]} {scores[window, 0]:.2f}")

        with atomic_path(path) as temporary:
            return write_h264(temporary, frames(), reader.frame_rate or Fraction(25), VIDEO_OPTIONS, portable=False)


def caption(frame: np.ndarray, text: str) -> np.ndarray:
    """``text`` drawn in the top-left corner of an RGB frame, white on a dark outline, sized to the frame."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(frame)
    size = max(9, min(image.size) // 12)
    font = ImageFont.load_default(size=size)
    ImageDraw.Draw(image).text(
        (size // 3, size // 4), text, font=font, fill="white", stroke_width=max(1, size // 8), stroke_fill="black"
    )
    return np.asarray(image)


def _zoom(image: np.ndarray, factor: int) -> np.ndarray:
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def _nearest(sorted_values: np.ndarray, value: float) -> int:
    position = int(np.searchsorted(sorted_values, value))
    if position == len(sorted_values):
        return position - 1
    if position > 0 and value - sorted_values[position - 1] <= sorted_values[position] - value:
        return position - 1
    return position
