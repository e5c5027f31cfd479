"""Decoders: frame indices -> uint8 RGB frames ``(n, H, W, 3)``, upright, resized in the decoder.

Backends: PyAV (the default; FFmpeg), decord (optional extra) and folders of extracted JPEG frames.
A reader decides nothing about which frames: it reads the indices it is given, decoding only what
they need, and one ``read`` of many clips decodes the video once.

Frame ``i`` is the ``i``-th frame the decoder outputs (display order): what frame extraction writes
as ``img_{i+1:05d}.jpg``. ``num_frames`` counts decodable frames, not the container's claim; the
HMDB51 AVIs, for one, declare a frame more than they hold.

What a reader refuses or corrects rather than misread (a :class:`DataError` naming the file):
- Frames are upright in every backend: a video's display matrix (phone videos: rotation 90 / 180 /
  270, sometimes mirrored) and a JPEG frame's EXIF orientation are applied, and ``frame_size`` and the
  ``size`` option are those of the upright frame. A rotation that is not a quarter turn is applied to
  the nearest quarter turn, with a warning.
- A file whose only picture is a still image is not a video: an image under a video name (JPEG, PNG,
  WebP, BMP, a one-frame GIF ...), audio with cover art, a video stream or a frame folder of a single
  frame. A video needs two frames at least: one frame shows no motion, and a prediction on it would be
  a guess. (An animated GIF is a video.)
- A frame folder is numbered from 1 (or from 0) without gaps: a missing first frame or a gap in the
  numbering is an error naming the missing file, never a shorter video.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import os
import string
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence, Union

import numpy as np

from ..errors import DataError

log = logging.getLogger(__name__)

Size = Union[tuple[int, int], int, None]

#: the frame working size of every released recipe: (H, W) = 128 x 170
UPSTREAM_FRAME_SIZE = (128, 170)
#: frame-folder names tried in this order when no pattern is given (numbered from 1, or from 0)
FRAME_PATTERNS = ("img_{:05d}.jpg", "image_{:05d}.jpg", "image_{:06d}.jpg")
BACKENDS = ("auto", "pyav", "decord", "frames")
#: the channel order of what the readers give, per modality (what a clip is read as: :attr:`artnet.data.ClipSpec.modality`)
READER_CHANNELS = {"rgb": "RGB", "flow": "xy"}
MODALITIES = tuple(READER_CHANNELS)
#: the video backend ``auto`` tries first: the faster one in benchmarks/data_speed.py (docs/data.md);
#: "decord" makes auto try decord first for the containers below, falling back to PyAV
AUTO_VIDEO_BACKEND = "pyav"
#: containers whose timestamps decord (which indexes frames by packet timestamps) can be trusted with
DECORD_CONTAINERS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm"})
#: FFmpeg demuxers that invent timestamps from frame positions (no real pts): with B-frames the
#: decoder's output timestamps then say nothing about display order
GUESSED_TIMESTAMP_FORMATS = frozenset({"avi"})
#: JPEG decoder of frame folders: "auto" (torchvision's libjpeg-turbo when installed, else Pillow), "pil"
JPEG_DECODER = "auto"
#: a video that decodes fewer frames than its header declares by more than this is truncated
TRUNCATION_TOLERANCE = (2, 0.02)  # frames, fraction
#: FFmpeg demuxers of single images (a still renamed to .mp4 opens with one of these); ``*_pipe`` too
IMAGE_FORMATS = frozenset({"image2", "gif", "webp", "apng"})
#: a declared frame rate above this (frames per second) is taken for a broken header
MAX_FRAME_RATE = 240
#: a display matrix further than this from a quarter turn gets a warning (FFmpeg's own tolerance)
ROTATION_TOLERANCE = 1.0  # degrees
EXIF_ORIENTATION_TAG = 0x0112
#: EXIF orientation -> (transpose, flip rows, flip columns) that makes the image upright (1: already is)
EXIF_ORIENTATIONS = {
    2: (False, False, True),
    3: (False, True, True),
    4: (False, True, False),
    5: (True, False, False),
    6: (True, False, True),
    7: (True, True, True),
    8: (True, True, False),
}


@dataclass(frozen=True)
class Orientation:
    """How stored frames are turned upright: transpose (rows <-> columns), then mirror rows / columns.

    The eight combinations are the quarter turns with or without a mirror. Videos carry it as a display
    matrix (phone videos), JPEG frames as an EXIF orientation.
    """

    transpose: bool = False
    flip_rows: bool = False  # upside down
    flip_cols: bool = False  # left <-> right

    @classmethod
    def from_display_matrix(cls, matrix: Sequence[int], path: str) -> Orientation:
        """FFmpeg's ``AV_PKT_DATA_DISPLAYMATRIX`` (9 int32, 16.16 fixed point): a point ``(x, y)`` of the
        stored frame (y down) is shown at ``(a x + c y, b x + d y)``. Anything but a quarter turn or a
        mirror is turned by the nearest quarter turn (warning once per file)."""
        a, b, _, c, d = (float(value) / 65536 for value in matrix[:5])
        if a * d - b * c == 0:
            _warn_once(path, f"{path}: its display matrix is singular; frames are used as stored")
            return cls()
        transpose = abs(b) + abs(c) > abs(a) + abs(d)
        on_axis, off_axis = (abs(b) + abs(c), abs(a) + abs(d)) if transpose else (abs(a) + abs(d), abs(b) + abs(c))
        if math.degrees(math.atan2(off_axis, on_axis)) > ROTATION_TOLERANCE:
            angle = -math.degrees(math.atan2(b, a))  # counter-clockwise, as FFmpeg reports it
            _warn_once(path, f"{path}: the display matrix turns by {angle:.1f} degrees; frames get the nearest quarter turn")
        if transpose:  # shown at (c y, b x): transposed, then mirrored where c or b is negative
            return cls(True, flip_rows=b < 0, flip_cols=c < 0)
        return cls(False, flip_rows=d < 0, flip_cols=a < 0)

    @classmethod
    def from_exif(cls, value: int) -> Orientation:
        """EXIF orientation 1..8 (how the stored rows and columns lie); anything else is upright."""
        return cls(*EXIF_ORIENTATIONS.get(value, (False, False, False)))

    @property
    def upright(self) -> bool:
        return not (self.transpose or self.flip_rows or self.flip_cols)

    def swap(self, height: int, width: int) -> tuple[int, int]:
        """The stored size of an upright ``(height, width)`` frame, and the other way round."""
        return (width, height) if self.transpose else (height, width)

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Stored frames ``(..., H, W, C)`` -> upright (a view: copy it where memory order matters)."""
        if self.transpose:
            frames = frames.swapaxes(-3, -2)
        if self.flip_rows:
            frames = frames[..., ::-1, :, :]
        if self.flip_cols:
            frames = frames[..., ::-1, :]
        return frames


_WARNED: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    """Log a warning about a file once per process (a video is opened again for every clip)."""
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning("%s", message)


class VideoReader(ABC):
    """Frames of one video. Use as a context manager, or call :meth:`close`."""

    path: str
    backend: str
    # set by every reader when it opens a video
    _num_frames: int
    _size: tuple[int, int]

    @property
    def num_frames(self) -> int:
        """Decodable frames (never blindly the container's count)."""
        return self._num_frames

    @property
    def frame_size(self) -> tuple[int, int]:
        """(H, W) of the (upright) frames :meth:`read` returns."""
        return self._size

    @abstractmethod
    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 RGB frames ``(len(indices), H, W, 3)``; indices may repeat and come in any order."""

    @property
    def frame_rate(self) -> Fraction | None:
        """Frames per second, as the container declares it; None where it has none (frame folders)."""
        return None

    def iter_frames(self, chunk: int = 64, start: int = 0):
        """Every frame from ``start`` on, in order, one ``(H, W, 3)`` array at a time (for converting or
        checking a video, or sliding over it): never more than ``chunk`` frames in memory."""
        for first in range(start, self.num_frames, chunk):
            yield from self.read(np.arange(first, min(first + chunk, self.num_frames)))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def _checked(self, indices) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_frames):
            raise DataError(f"{self.path}: frame index {int(indices.max())} out of range (the video has {self.num_frames} frames)")
        return indices


def open_video(
    path: str | os.PathLike,
    *,
    backend: str = "auto",
    size: Size = UPSTREAM_FRAME_SIZE,
    frame_pattern: str | tuple[str, str] | None = None,
    modality: str | None = None,
    threads: int = 1,
) -> VideoReader:
    """Open a video file or a frame folder.

    ``size``: ``(H, W)`` every frame is resized to in the decoder (upstream: 128 x 170 regardless of
    aspect ratio), an int to scale the short side to it keeping the aspect ratio, or ``None`` for the
    source size; all of the upright frame (a phone video's rotation applied). ``backend``: ``"auto"`` (a frame folder -> ``frames``; a video -> the fastest measured
    backend, :data:`AUTO_VIDEO_BACKEND`, falling back to PyAV when it cannot decode the file), ``"pyav"``,
    ``"decord"`` or ``"frames"``. ``frame_pattern``: e.g. ``"image_{:06d}.jpg"``, or an (x, y) pair of
    patterns for a flow folder (:class:`FlowFolderReader`); by default the first of :data:`FRAME_PATTERNS`
    present, else (a folder of flow only) of :data:`FLOW_PATTERNS`. ``modality``: what the caller needs,
    ``"rgb"`` or ``"flow"`` (a clip's :attr:`~artnet.data.ClipSpec.modality`): a folder is read as that (TSN's
    layout keeps RGB frames and flow side by side) and anything else is an error; ``None``: as found.
    ``threads``: decoder threads (1 suits DataLoader workers).
    """
    path = os.fspath(path)
    if backend not in BACKENDS:
        raise DataError(f"unknown video backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if modality not in (None, *MODALITIES):
        raise DataError(f"unknown modality {modality!r}: use one of {', '.join(MODALITIES)}")
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file or folder")
    if os.path.isdir(path):
        if backend not in ("auto", "frames"):
            raise DataError(f"{path}: a frame folder needs backend 'frames', not {backend!r}")
        flow_patterns = _flow_patterns(path, frame_pattern, modality)
        if flow_patterns is not None:
            return FlowFolderReader(path, size=size, patterns=flow_patterns)
        return FrameFolderReader(path, size=size, pattern=frame_pattern)
    if modality == "flow":
        raise DataError(
            f"{path}: a video file, but the clips are optical flow; extract flow folders with `artnet prepare --to flow`"
        )
    if backend == "frames":
        raise DataError(f"{path}: backend 'frames' reads frame folders, and this is a file")
    if backend == "decord":
        return DecordReader(path, size=size, threads=threads)
    if backend == "auto" and AUTO_VIDEO_BACKEND == "decord" and decord_available():
        if os.path.splitext(path)[1].lower() in DECORD_CONTAINERS:
            try:
                return DecordReader(path, size=size, threads=threads)
            except DataError as error:
                log.debug("decord cannot read %s (%s); falling back to PyAV", path, error)
    return PyAVReader(path, size=size, threads=threads)


def available_backends() -> list[str]:
    return ["pyav", "frames"] + (["decord"] if decord_available() else [])


def decord_available() -> bool:
    global _DECORD
    if _DECORD is None:
        try:
            import decord  # noqa: F401

            _DECORD = True
        except ImportError:
            _DECORD = False
    return _DECORD


_DECORD: bool | None = None


def output_size(height: int, width: int, size: Size) -> tuple[int, int]:
    """The (H, W) a (height, width) source is resized to for a ``size`` option (see :func:`open_video`)."""
    if size is None:
        return height, width
    if isinstance(size, int):
        if height <= width:
            return size, max(1, round(width * size / height))
        return max(1, round(height * size / width)), size
    out_h, out_w = (int(v) for v in size)
    if out_h < 1 or out_w < 1:
        raise DataError(f"frame size must be positive, not {size}")
    return out_h, out_w


# ---------------------------------------------------------------------------------------------------------
# PyAV


_REFORMATTER = (None, None)  # (pid, reformatter)
_INHERITED = []  # reformatters of a parent process: kept, never freed in a forked child


def _shared_reformatter(factory):
    """One swscale context per process, reused: setting one up costs more than converting a clip.

    A forked DataLoader worker makes its own and never frees the parent's: freeing a swscale context
    joins its slice threads, which do not exist in the child (a hang). Ours are single-threaded
    (``threads=1``) anyway: workers are the parallelism.
    """
    global _REFORMATTER
    pid, reformatter = _REFORMATTER
    if pid != os.getpid():
        if reformatter is not None:
            _INHERITED.append(reformatter)
        reformatter = factory()
        _REFORMATTER = (os.getpid(), reformatter)
    return reformatter


def _plausible_rate(rate) -> Fraction | None:
    """A declared frame rate, or None where the container's is missing or absurd."""
    if not rate or not 0 < rate <= MAX_FRAME_RATE:
        return None
    return Fraction(rate).limit_denominator(1001)


class _OutOfStep(Exception):
    """The decoder's output disagrees with the packet index: fall back to decoding from the start."""


class PyAVReader(VideoReader):
    """FFmpeg through PyAV: seeks to the keyframe before a clip, decodes forward, resizes in swscale.

    Opening demuxes the stream once (no decoding) to index packet timestamps and keyframes. Frames are
    mapped to indices by their timestamps; where the container has no real timestamps (AVI) and the
    first frames come out of order, or the decoder ever disagrees with the index, the reader counts and
    reads frames sequentially from the start instead, which is always right.

    The display matrix travels with decoded frames, so the orientation (and with it ``frame_size``) is
    learnt from the first frame decoded: reading costs nothing more, and ``frame_size`` asked before
    any read decodes the first frame.
    """

    backend = "pyav"

    def __init__(self, path: str, *, size: Size = UPSTREAM_FRAME_SIZE, threads: int = 1):
        import av
        from av.video.reformatter import VideoReformatter

        self.path = path
        self._av = av
        try:
            self._container = av.open(path, metadata_errors="ignore")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
            raise DataError(f"{path}: cannot open as a video ({_reason(error)})") from None
        try:
            self._stream = self._moving_picture_stream()
            context = self._stream.codec_context
            context.thread_count = threads
            context.thread_type = "SLICE" if threads > 1 else "NONE"
            if not context.width or not context.height:
                raise DataError(f"{path}: the video stream has no frame size (unsupported or broken codec)")
            self._stored_size = (context.height, context.width)
            self._requested_size = size
            self._orientation: Orientation | None = None  # learnt from the first decoded frame
            self._reformatter = _shared_reformatter(VideoReformatter)
            self._index_packets()
            self._sequential = self._needs_sequential()
            if self._sequential:
                self._count_by_decoding()
        except DataError:
            self.close()
            raise

    # -- public
    @property
    def declared_frames(self) -> int:
        """The container's frame count (0 where it has none): for reports, never for sampling."""
        return self._declared

    @property
    def orientation(self) -> Orientation:
        """How stored frames are turned upright (the display matrix)."""
        if self._orientation is None:
            self._orient(self._first_frame())
        return self._orientation

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._size if self._orientation is not None else self._orient(self._first_frame())

    @property
    def source_size(self) -> tuple[int, int]:
        """(H, W) of the upright frames before resizing."""
        return self.orientation.swap(*self._stored_size)

    def read(self, indices) -> np.ndarray:
        indices = self._checked(indices)
        wanted = np.unique(indices)
        if not self._sequential:
            try:
                frames = self._decode_seeking(wanted)
            except _OutOfStep as why:
                log.debug("%s: %s; decoding from the start", self.path, why)
                self._sequential = True
                self._count_by_decoding()
        if self._sequential:
            wanted = np.minimum(wanted, self._num_frames - 1)
            frames = self._decode_sequential(np.unique(wanted))
            indices = np.minimum(indices, self._num_frames - 1)
        out = np.empty((len(indices), *self.frame_size, 3), dtype=np.uint8)
        for row, index in enumerate(indices):
            out[row] = frames[int(index)]
        return out

    @property
    def frame_rate(self) -> Fraction | None:
        return _plausible_rate(self._stream.average_rate)

    def iter_frames(self, chunk: int = 64, start: int = 0):
        """Every decodable frame from ``start`` on, decoding once; checks the count against :attr:`num_frames`.

        A later ``start`` seeks to the keyframe before it and decodes forward from there (from the
        file's start where frames cannot be found by timestamp), converting only the frames it gives.
        """
        frames, count = self._frames_from(start)
        for frame in frames:
            if count >= start:
                yield self._convert(frame)
            count += 1
        self._check_truncation(count)
        if count != self._num_frames:
            log.debug("%s: decoded %d frames, the packet index says %d", self.path, count, self._num_frames)
            self._num_frames = count

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None

    # -- streams and index
    def _moving_picture_stream(self):
        """The first video stream that is not an attached picture (the cover art of a music file)."""
        from av.stream import Disposition

        streams = self._container.streams.video
        if not streams:
            raise DataError(f"{self.path}: no video stream")
        moving = [stream for stream in streams if not stream.disposition & Disposition.attached_pic]
        if not moving:
            raise DataError(f"{self.path}: no video, only a still picture attached to it (cover art)")
        return moving[0]

    def _index_packets(self) -> None:
        self._declared = max(int(self._stream.frames or 0), 0)
        pts, keys, timestamped = [], [], True
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:
                    continue  # the flush packet at the end
                if packet.pts is None:
                    timestamped = False
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.append(packet.pts)
        except self._av.FFmpegError as error:
            raise DataError(f"{self.path}: corrupt or truncated ({_reason(error)})") from None
        self._pts = sorted(pts)
        self._index_of = {p: i for i, p in enumerate(self._pts)}
        self._timestamped = timestamped and len(self._index_of) == len(self._pts)
        self._key_indices = sorted(self._index_of[p] for p in set(keys))
        self._num_frames = len(self._pts)
        if self._num_frames == 0 and timestamped:
            raise DataError(f"{self.path}: the video stream holds no frames")
        self._refuse_single_frame(self._num_frames)
        self._check_truncation(self._num_frames)

    def _needs_sequential(self) -> bool:
        if not self._timestamped or not self._key_indices:
            return True
        if self._container.format.name.split(",")[0] not in GUESSED_TIMESTAMP_FORMATS:
            return False
        # No real timestamps: check that the first frames come out in packet-timestamp order.
        probe = min(4, self._num_frames)
        self._seek_to_start()
        seen = []
        try:
            for frame in self._frames():
                seen.append(frame.pts)
                if len(seen) == probe:
                    break
        except DataError:
            return True
        return seen != self._pts[:probe]

    def _count_by_decoding(self) -> None:
        self._seek_to_start()
        count = sum(1 for _ in self._frames())
        if count == 0:
            raise DataError(f"{self.path}: no decodable frames")
        self._refuse_single_frame(count)
        self._check_truncation(count)
        self._num_frames = count

    def _refuse_single_frame(self, count: int) -> None:
        """A still image is not a video, whatever its file name says (see the module doc)."""
        if count != 1:
            return
        demuxer = self._container.format.name.split(",")[0]
        if demuxer in IMAGE_FORMATS or demuxer.endswith("_pipe"):
            raise DataError(f"{self.path}: a still image, not a video (FFmpeg reads it as {demuxer})")
        raise DataError(f"{self.path}: a single frame, not a video (a still picture shows no motion)")

    def _check_truncation(self, count: int) -> None:
        frames, fraction = TRUNCATION_TOLERANCE
        if self._declared and self._declared - count > max(frames, fraction * self._declared):
            raise DataError(f"{self.path}: decodes {count} of the {self._declared} frames its header declares (truncated?)")

    # -- decoding
    def _frames(self):
        """Decoded frames from the current position to the end, as FFmpeg errors turned into DataError."""
        try:
            for packet in self._container.demux(self._stream):
                yield from packet.decode()
        except self._av.FFmpegError as error:
            raise DataError(f"{self.path}: decoding failed ({_reason(error)})") from None

    def _frames_from(self, start: int):
        """Decoded frames from the keyframe before ``start`` (or from the start), and the index of the first."""
        if start > 0 and not self._sequential:
            self._seek(self._pts[self._keyframe_before(min(start, self._num_frames - 1))])
            frames = self._frames()
            first = next(frames, None)
            position = None if first is None else self._index_of.get(first.pts)
            if position is not None and position <= start:
                return itertools.chain([first], frames), position
            log.debug("%s: seeking to frame %d landed elsewhere; decoding from the start", self.path, start)
        self._seek_to_start()
        return self._frames(), 0

    def _seek_to_start(self) -> None:
        # the file's start, not the first packet's timestamp: AVI seeks by decode order, and landing on
        # a later "keyframe" would silently drop the first frames
        self._seek(0, stream=None)

    def _seek(self, pts: int, stream="video") -> None:
        try:
            self._container.seek(pts, stream=self._stream if stream else None, backward=True, any_frame=False)
        except self._av.FFmpegError as error:
            raise DataError(f"{self.path}: cannot seek ({_reason(error)})") from None

    def _first_frame(self):
        self._seek_to_start()
        for frame in self._frames():
            return frame
        raise DataError(f"{self.path}: no decodable frames")

    def _orient(self, frame) -> tuple[int, int]:
        """Take the orientation from a decoded frame's display matrix; the output size follows it."""
        self._orientation = _display_orientation(frame, self.path)
        self._size = output_size(*self.source_size, self._requested_size)
        return self._size

    def _convert(self, frame) -> np.ndarray:
        if self._orientation is None:
            self._orient(frame)
        height, width = self._orientation.swap(*self._size)  # resized as stored, then turned upright
        converted = self._reformatter.reformat(frame, width=width, height=height, format="rgb24", interpolation="BILINEAR", threads=1)
        array = converted.to_ndarray()
        return array if self._orientation.upright else np.ascontiguousarray(self._orientation.apply(array))

    def _keyframe_before(self, index: int) -> int:
        position = bisect.bisect_right(self._key_indices, index) - 1
        return self._key_indices[max(position, 0)]

    def _decode_seeking(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        frames: dict[int, np.ndarray] = {}
        todo = [int(i) for i in wanted]
        next_wanted = 0
        decoded = None  # frames since the last seek; one iterator, so no frame of a packet is lost
        position = -1  # index of the last frame it gave
        while next_wanted < len(todo):
            target = todo[next_wanted]
            keyframe = self._keyframe_before(target)
            if decoded is None or keyframe > position:
                self._seek(self._pts[keyframe])
                decoded, position = self._frames(), None
            for frame in decoded:
                index = self._index_of.get(frame.pts)
                if index is None:
                    raise _OutOfStep(f"frame timestamp {frame.pts} is not in the packet index")
                if position is not None and index <= position:
                    raise _OutOfStep("frames come out of timestamp order")
                position = index
                if index > target:
                    raise _OutOfStep(f"frame {target} was never output")
                if index == target:
                    frames[index] = self._convert(frame)
                    next_wanted += 1
                    if next_wanted == len(todo):
                        break
                    target = todo[next_wanted]
                    if self._keyframe_before(target) > position:
                        break  # cheaper to seek than to decode up to the next keyframe
            else:
                raise _OutOfStep(f"the stream ended before frame {target}")
        return frames

    def _decode_sequential(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        frames: dict[int, np.ndarray] = {}
        todo = set(int(i) for i in wanted)
        last = int(wanted[-1])
        self._seek_to_start()
        for index, frame in enumerate(self._frames()):
            if index in todo:
                frames[index] = self._convert(frame)
            if index >= last:
                break
        missing = todo.difference(frames)
        if missing:
            raise DataError(f"{self.path}: frame {min(missing)} could not be decoded (the video changed while reading?)")
        return frames


def _display_orientation(frame, path: str) -> Orientation:
    """The orientation a decoded frame's display matrix asks for (upright when it has none)."""
    from av.sidedata.sidedata import Type

    matrix = frame.side_data.get(Type.DISPLAYMATRIX)
    if matrix is None:
        return Orientation()
    return Orientation.from_display_matrix(np.frombuffer(bytes(matrix), dtype=np.int32), path)


# ---------------------------------------------------------------------------------------------------------
# decord


#: frames compared to learn decord's own turns: a square keeps its shape through them (and decord
#: mis-shapes frames of some widths, none a multiple of 64)
_PROBE_SIZE = (64, 64)
_TURN_MATCH = 8  # mean difference in levels
_TURN_PROBES = 8  # frames tried, spread over the video, until one tells decord's turns apart


class DecordReader(VideoReader):
    """decord's ``VideoReader`` (resizes in its FFmpeg decoder). It counts frames from the container's
    packet index, so ``open_video(backend="auto")`` uses it only for containers with real timestamps.

    Opening probes the file with PyAV first, for the same refusals (a still image is no video) and for
    the orientation. decord turns some rotated videos itself (the quarter turns of an MP4's display matrix,
    never a mirror, not Matroska's), so for a rotated video the reader compares a frame of decord's with
    PyAV's (the first that is not flat) to learn which quarter turn decord gave, and does the rest.
    """

    backend = "decord"

    def __init__(self, path: str, *, size: Size = UPSTREAM_FRAME_SIZE, threads: int = 1):
        try:
            import decord
        except ImportError:
            raise DataError("backend 'decord' needs the decord package: pip install 'artnet[decord]'") from None
        self.path = path
        try:
            with PyAVReader(path, size=_PROBE_SIZE) as probe:
                self._orientation = probe.orientation
                self._size = output_size(*probe.source_size, size)
                self._turns = 0 if self._orientation.upright else self._decord_turns(decord, probe, threads)
            height, width = self._decoded_size
            self._reader = decord.VideoReader(path, width=width, height=height, num_threads=threads)
            self._num_frames = len(self._reader)
        except (decord.DECORDError, RuntimeError, IndexError) as error:
            raise DataError(f"{path}: decord cannot read it ({_reason(error)})") from None
        if self._num_frames == 0:
            raise DataError(f"{path}: no frames")

    @property
    def _decoded_size(self) -> tuple[int, int]:
        """The size decord must output: the upright size before decord's own and our remaining turns."""
        height, width = self._size
        return (width, height) if self._orientation.transpose != (self._turns % 2 == 1) else (height, width)

    def _decord_turns(self, decord, probe: PyAVReader, threads: int) -> int:
        """Quarter turns (counter-clockwise) decord applies by itself, found on the first frame that tells
        them apart: a frame that looks the same turned (a flat black one, as a video fading in starts) cannot,
        so later frames are tried, spread over the video."""
        height, width = _PROBE_SIZE
        turned = decord.VideoReader(self.path, width=width, height=height, num_threads=threads)
        for index in dict.fromkeys(np.linspace(0, probe.num_frames - 1, _TURN_PROBES).astype(int).tolist()):
            upright = probe.read([index])[0].astype(np.int16)
            decoded = turned[index].asnumpy()
            errors = {t: float(np.abs(self._orientation.apply(np.rot90(decoded, -t)) - upright).mean()) for t in range(4)}
            ranked = sorted(errors, key=errors.get)
            # the right turn matches but for the two decoders' scaling (a few levels), and the others do not
            if errors[ranked[0]] <= _TURN_MATCH and errors[ranked[1]] >= errors[ranked[0]] + _TURN_MATCH:
                return ranked[0]
        raise DataError(
            f"{self.path}: cannot tell how decord turns this rotated video (no frame tells the turns apart); use backend 'pyav'"
        )

    @property
    def frame_rate(self) -> Fraction | None:
        return _plausible_rate(self._reader.get_avg_fps())

    def read(self, indices) -> np.ndarray:
        import decord

        indices = self._checked(indices)
        try:
            frames = self._reader.get_batch(indices.tolist()).asnumpy()
        except (decord.DECORDError, RuntimeError) as error:
            raise DataError(f"{self.path}: decord failed to decode ({_reason(error)})") from None
        if frames.shape[1:] != (*self._decoded_size, 3):  # decord mis-shapes frames of some widths
            raise DataError(f"{self.path}: decord gave frames of shape {frames.shape[1:]}, not {(*self._decoded_size, 3)}")
        if self._orientation.upright and not self._turns:
            return frames
        return np.ascontiguousarray(self._orientation.apply(np.rot90(frames, -self._turns, axes=(1, 2))))

    def close(self) -> None:
        self._reader = None


# ---------------------------------------------------------------------------------------------------------
# JPEG frame folders


class FrameFolderReader(VideoReader):
    """A folder of extracted frames ``img_00001.jpg`` ... (numbered from 1 as TSN / ARTNet store them, or
    from 0), turned upright by their EXIF orientation.

    The frames must run without a gap: a missing frame is an error naming it, never a shorter video. The
    folder is listed once per open; the numbering is checked in full only when the files that look like
    frames outnumber the unbroken run. JPEGs are decoded with libjpeg-turbo through
    ``torchvision.io.decode_jpeg`` when torchvision is installed (faster than Pillow), else Pillow.
    """

    backend = "frames"

    def __init__(self, path: str, *, size: Size = UPSTREAM_FRAME_SIZE, pattern: str | None = None):
        self.path = path
        try:
            names = set(os.listdir(path))
        except OSError as error:
            raise DataError(f"{path}: cannot list the frame folder ({_reason(error)})") from None
        self._pattern, self._first_number = _frame_numbering(path, names, (pattern,) if pattern else FRAME_PATTERNS)
        count = _unbroken_run(path, names, (self._pattern,), self._first_number)
        if count == 1:
            raise DataError(f"{path}: a single frame, not a video (a still picture shows no motion)")
        self._num_frames = count
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self._file(0)) as image:  # reads the header (and EXIF) only
                width, height = image.size
                orientation = Orientation.from_exif(image.getexif().get(EXIF_ORIENTATION_TAG, 1))
        except (OSError, UnidentifiedImageError, SyntaxError) as error:
            raise DataError(f"{self._file(0)}: cannot decode the image ({_reason(error)})") from None
        self._size = output_size(*orientation.swap(height, width), size)

    def read(self, indices) -> np.ndarray:
        indices = self._checked(indices)
        wanted, inverse = np.unique(indices, return_inverse=True)
        images = _decode_images([self._file(int(i)) for i in wanted])
        frames = _resize_frames(images, self._size)
        return frames[inverse]

    def _file(self, index: int) -> str:
        return os.path.join(self.path, self._pattern.format(self._first_number + index))


def _frame_numbering(path: str, names: set[str], patterns: Sequence[str]) -> tuple[str, int]:
    """The first pattern with a frame numbered 0 or 1 in ``names``, and that number."""
    for pattern in patterns:
        _pattern_parts(pattern)  # a malformed pattern fails here, with its own message
        for first in (0, 1):
            if pattern.format(first) in names:
                return pattern, first
    for pattern in patterns:
        numbers = _frame_numbers(names, pattern)
        if numbers:
            start = pattern.format(numbers[0])
            raise DataError(f"{path}: the first frame {pattern.format(1)} is missing (the frames start at {start})")
    raise DataError(f"{path}: no frames named {' / '.join(p.format(1) for p in patterns)}")


def _unbroken_run(path: str, names: set[str], patterns: Sequence[str], first: int) -> int:
    """How many frames, numbered from ``first``, have a file of each of ``patterns`` in ``names`` (one for
    RGB frames, x and y for flow): an error naming the missing file when any pattern numbers a frame past
    that run, which would otherwise be lost without a word."""
    count = 0
    while all(pattern.format(first + count) in names for pattern in patterns):
        count += 1
    looking_like_frames = 0
    for pattern in patterns:
        prefix, suffix = _pattern_parts(pattern)
        looking_like_frames += sum(1 for name in names if name.startswith(prefix) and name.endswith(suffix))
    if looking_like_frames <= count * len(patterns):
        return count  # the common case, without parsing a name: no more files look like frames than the run holds
    end = first + count  # the first frame that lacks a file
    found = {pattern: [n for n in _frame_numbers(names, pattern) if n >= end] for pattern in patterns}
    missing = next(pattern for pattern in patterns if pattern.format(end) not in names).format(end)
    beyond = sorted({n for numbers in found.values() for n in numbers if n > end})
    if beyond:
        last = next(pattern for pattern in patterns if beyond[-1] in found[pattern]).format(beyond[-1])
        raise DataError(f"{path}: frame {missing} is missing; {len(beyond)} frame(s) after the gap, up to {last}, would be lost")
    partner = next((pattern.format(end) for pattern in patterns if end in found[pattern]), None)
    if partner is not None:
        raise DataError(f"{path}: frame {missing} is missing beside {partner}; its flow frame would be lost")
    return count


def _frame_numbers(names: set[str], pattern: str) -> list[int]:
    """Sorted numbers of the files in ``names`` that ``pattern`` names exactly."""
    prefix, suffix = _pattern_parts(pattern)
    numbers = []
    for name in names:
        digits = name[len(prefix) : len(name) - len(suffix)]
        if name.startswith(prefix) and name.endswith(suffix) and digits.isdigit() and pattern.format(int(digits)) == name:
            numbers.append(int(digits))
    return sorted(numbers)


def check_frame_pattern(pattern: str) -> None:
    """A DataError unless ``pattern`` names frame files by one number field, as ``img_{:05d}.jpg``."""
    _pattern_parts(pattern)


def _pattern_parts(pattern: str) -> tuple[str, str]:
    """The text before and after the one number field of a frame pattern such as ``img_{:05d}.jpg``."""
    try:
        parts = list(string.Formatter().parse(pattern))
        fields = [i for i, part in enumerate(parts) if part[1] is not None]
        if len(fields) != 1 or parts[fields[0]][1] not in ("", "0"):
            raise ValueError
        pattern.format(1)
    except (IndexError, KeyError, ValueError):
        raise DataError(f"frame pattern {pattern!r} must hold one '{{}}' field for the frame number") from None
    field = fields[0]  # each part is (text before a field, the field, ...): the number follows parts[field]'s text
    return "".join(part[0] for part in parts[: field + 1]), "".join(part[0] for part in parts[field + 1 :])


def _decode_images(files: list[str]) -> list[np.ndarray]:
    """uint8 RGB ``(H, W, 3)`` arrays, upright by their EXIF orientation; a missing or corrupt image raises
    DataError naming it."""
    if JPEG_DECODER == "auto" and _torchvision_jpeg() and all(f.lower().endswith((".jpg", ".jpeg")) for f in files):
        import warnings

        import torch
        from torchvision.io import ImageReadMode, decode_jpeg

        datas = []
        for name in files:
            try:
                with open(name, "rb") as handle:
                    datas.append(torch.frombuffer(bytearray(handle.read()), dtype=torch.uint8))
            except OSError as error:
                raise DataError(f"{name}: cannot read ({_reason(error)})") from None
        try:
            with warnings.catch_warnings():
                # torchvision 0.29 deprecates its image decoders for TorchCodec's; still libjpeg-turbo, and
                # faster than Pillow (benchmarks/data_speed.py)
                warnings.simplefilter("ignore", DeprecationWarning)
                decoded = decode_jpeg(datas, mode=ImageReadMode.RGB, apply_exif_orientation=True)
            return [image.permute(1, 2, 0).numpy() for image in decoded]
        except RuntimeError:
            pass  # find which one is corrupt below, with Pillow's message
    from PIL import Image, ImageOps, UnidentifiedImageError

    images = []
    for name in files:
        try:
            with Image.open(name) as image:
                images.append(np.asarray(ImageOps.exif_transpose(image).convert("RGB")))
        except (OSError, UnidentifiedImageError, SyntaxError) as error:
            raise DataError(f"{name}: cannot decode the image ({_reason(error)})") from None
    return images


def _resize_frames(images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Stack frames, resizing (bilinear, as upstream's ``cv2.resize``) those not already ``size``."""
    import torch
    import torch.nn.functional as F

    out = np.empty((len(images), *size, 3), dtype=np.uint8)
    same = [i for i, image in enumerate(images) if image.shape[:2] == size]
    for i in same:
        out[i] = images[i]
    other = [i for i in range(len(images)) if images[i].shape[:2] != size]
    groups: dict[tuple[int, int], list[int]] = {}
    for i in other:
        groups.setdefault(images[i].shape[:2], []).append(i)
    for rows in groups.values():
        batch = torch.from_numpy(np.stack([images[i] for i in rows])).permute(0, 3, 1, 2)  # channels-last memory
        resized = F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=False)
        out[rows] = resized.permute(0, 2, 3, 1).numpy()
    return out


def _torchvision_jpeg() -> bool:
    global _TORCHVISION
    if _TORCHVISION is None:
        try:
            from torchvision.io import decode_jpeg  # noqa: F401

            _TORCHVISION = True
        except (ImportError, RuntimeError, OSError):
            _TORCHVISION = False
    return _TORCHVISION


_TORCHVISION: bool | None = None


def _reason(error: BaseException) -> str:
    """The first line of an error's message, without the file name OSError and FFmpegError add (the
    messages built on it name the file already)."""
    text = (getattr(error, "strerror", None) or str(error)).strip().splitlines()
    return text[0] if text else type(error).__name__


# ---------------------------------------------------------------------------------------------------------
# Optical flow folders

#: flow-folder names tried in this order when no pattern pair is given (1-indexed): TSN / ARTNet's
#: ``x_00001.jpg`` / ``y_00001.jpg``, and dense_flow's folder layout ``flow_x_00001.jpg`` / ``flow_y_00001.jpg``
FLOW_PATTERNS = (("x_{:05d}.jpg", "y_{:05d}.jpg"), ("flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg"))


class FlowFolderReader(VideoReader):
    """A folder of optical flow as TSN / ARTNet store it: grey images ``x_00001.jpg``, ``y_00001.jpg`` ...
    (1-indexed), each component mapped to 0-255 (see :mod:`artnet.data.flow`).

    Frame ``i`` is the flow from video frame ``i`` to ``i + 1`` (a video of N frames has N - 1), so the
    samplers pick flow frames as they pick video frames. :meth:`read` gives uint8 ``(n, H, W, 2)``, channels
    (x, y). Every frame from number 1 has both images: a missing x or y image is an error naming it, never
    a shorter video.
    """

    backend = "frames"

    def __init__(self, path: str, *, size: Size = UPSTREAM_FRAME_SIZE, patterns: tuple[str, str] = FLOW_PATTERNS[0]):
        self.path = path
        if len(patterns) != 2:
            raise DataError(f"a flow folder needs an (x, y) pair of patterns, not {patterns!r}")
        for pattern in patterns:
            _pattern_parts(pattern)  # a malformed pattern fails here, with its own message
        self._patterns = tuple(patterns)
        try:
            names = set(os.listdir(path))
        except OSError as error:
            raise DataError(f"{path}: cannot list the flow folder ({_reason(error)})") from None
        count = _unbroken_run(path, names, self._patterns, 1)
        if count == 0:
            raise DataError(f"{path}: no flow frames named {' and '.join(p.format(1) for p in self._patterns)}")
        self._num_frames = count
        from PIL import Image, UnidentifiedImageError

        first = self._files(0)[0]
        try:
            with Image.open(first) as image:  # reads the header only
                width, height = image.size
        except (OSError, UnidentifiedImageError) as error:
            raise DataError(f"{first}: cannot decode the image ({_reason(error)})") from None
        self._size = output_size(height, width, size)

    def read(self, indices) -> np.ndarray:
        indices = self._checked(indices)
        wanted, inverse = np.unique(indices, return_inverse=True)
        files = [name for i in wanted for name in self._files(int(i))]
        # The frame-folder decoder gives RGB; a grey JPEG decodes to three equal channels, so one is kept.
        images = _resize_frames(_decode_images(files), self._size)[..., 0]
        flow = np.stack([images[0::2], images[1::2]], axis=-1)
        return flow[inverse]

    def _files(self, index: int) -> tuple[str, str]:
        return tuple(os.path.join(self.path, p.format(index + 1)) for p in self._patterns)


def _flow_patterns(path: str, frame_pattern: str | tuple[str, str] | None, modality: str | None = None) -> tuple[str, str] | None:
    """The (x, y) patterns a folder is read with as flow: the pair given, else, when no pattern is given and
    the folder holds no RGB frames (or ``modality`` is ``"flow"``), the first of :data:`FLOW_PATTERNS`
    present; ``None``: RGB frames."""
    pair_given = isinstance(frame_pattern, (tuple, list))
    if modality == "rgb" and pair_given:
        raise DataError(f"{path}: an (x, y) pair of flow patterns {list(frame_pattern)}, but the clips are RGB frames")
    if modality == "flow" and frame_pattern is not None and not pair_given:
        raise DataError(f"{path}: one frame pattern {frame_pattern!r}, but the clips are optical flow: give an (x, y) pair")
    if pair_given:
        return tuple(frame_pattern)
    if modality == "rgb" or frame_pattern is not None:
        return None
    if modality is None and any(os.path.exists(os.path.join(path, p.format(1))) for p in FRAME_PATTERNS):
        return None
    for pair in FLOW_PATTERNS:  # one image of the first pair is enough: the reader names the other if it is missing
        if any(os.path.exists(os.path.join(path, p.format(1))) for p in pair):
            return pair
    if modality == "flow":
        names = " or ".join(f"{x.format(1)} / {y.format(1)}" for x, y in FLOW_PATTERNS)
        raise DataError(f"{path}: no optical flow (frames named {names}); extract it with `artnet prepare --to flow`")
    return None
