"""Decoders: frame indices -> uint8 RGB frames ``(n, H, W, 3)``, resized in the decoder.

Backends: PyAV (the default; FFmpeg), decord (optional extra) and folders of extracted JPEG frames.
A reader decides nothing about which frames: it reads the indices it is given, decoding only what
they need, and one ``read`` of many clips decodes the video once.

Frame ``i`` is the ``i``-th frame the decoder outputs (display order): what frame extraction writes
as ``img_{i+1:05d}.jpg``. ``num_frames`` counts decodable frames, not the container's claim; the
HMDB51 AVIs, for one, declare a frame more than they hold.
"""

from __future__ import annotations

import bisect
import logging
import os
from abc import ABC, abstractmethod
from typing import Sequence, Union

import numpy as np

from ..errors import DataError

log = logging.getLogger(__name__)

Size = Union[tuple[int, int], int, None]

#: the frame working size of every released recipe: (H, W) = 128 x 170
UPSTREAM_FRAME_SIZE = (128, 170)
#: frame-folder names tried in this order when no pattern is given (all 1-indexed)
FRAME_PATTERNS = ("img_{:05d}.jpg", "image_{:05d}.jpg", "image_{:06d}.jpg")
BACKENDS = ("auto", "pyav", "decord", "frames")
#: the video backend ``auto`` tries first. PyAV: in benchmarks/data_speed.py it reads prepared short-GOP
#: files about twice as fast as decord and raw long-GOP MP4s as fast; "decord" makes auto try decord
#: first for the containers below, falling back to PyAV
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
        """(H, W) of the frames :meth:`read` returns."""
        return self._size

    @abstractmethod
    def read(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """uint8 RGB frames ``(len(indices), H, W, 3)``; indices may repeat and come in any order."""

    def iter_frames(self, chunk: int = 64):
        """Every frame in order, one ``(H, W, 3)`` array at a time (for converting or checking a video)."""
        for start in range(0, self.num_frames, chunk):
            yield from self.read(np.arange(start, min(start + chunk, self.num_frames)))

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
    threads: int = 1,
) -> VideoReader:
    """Open a video file or a frame folder.

    ``size``: ``(H, W)`` every frame is resized to in the decoder (upstream: 128 x 170 regardless of
    aspect ratio), an int to scale the short side to it keeping the aspect ratio, or ``None`` for the
    source size. ``backend``: ``"auto"`` (a frame folder -> ``frames``; a video -> the fastest measured
    backend, :data:`AUTO_VIDEO_BACKEND`, falling back to PyAV when it cannot decode the file), ``"pyav"``,
    ``"decord"`` or ``"frames"``. ``frame_pattern``: e.g. ``"image_{:06d}.jpg"``, or an (x, y) pair of
    patterns for a flow folder (:class:`FlowFolderReader`); by default the first of :data:`FRAME_PATTERNS`
    present, else (a folder of flow only) of :data:`FLOW_PATTERNS`. ``threads``: decoder threads (1 suits DataLoader workers).
    """
    path = os.fspath(path)
    if backend not in BACKENDS:
        raise DataError(f"unknown video backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file or folder")
    if os.path.isdir(path):
        if backend not in ("auto", "frames"):
            raise DataError(f"{path}: a frame folder needs backend 'frames', not {backend!r}")
        flow_patterns = _flow_patterns(path, frame_pattern)
        if flow_patterns is not None:
            return FlowFolderReader(path, size=size, patterns=flow_patterns)
        return FrameFolderReader(path, size=size, pattern=frame_pattern)
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


class _OutOfStep(Exception):
    """The decoder's output disagrees with the packet index: fall back to decoding from the start."""


class PyAVReader(VideoReader):
    """FFmpeg through PyAV: seeks to the keyframe before a clip, decodes forward, resizes in swscale.

    Opening demuxes the stream once (no decoding) to index packet timestamps and keyframes. Frames are
    mapped to indices by their timestamps; where the container has no real timestamps (AVI) and the
    first frames come out of order, or the decoder ever disagrees with the index, the reader counts and
    reads frames sequentially from the start instead, which is always right.
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
            streams = self._container.streams.video
            if not streams:
                raise DataError(f"{path}: no video stream")
            self._stream = streams[0]
            context = self._stream.codec_context
            context.thread_count = threads
            context.thread_type = "SLICE" if threads > 1 else "NONE"
            if not context.width or not context.height:
                raise DataError(f"{path}: the video stream has no frame size (unsupported or broken codec)")
            self._size = output_size(context.height, context.width, size)
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
        out = np.empty((len(indices), *self._size, 3), dtype=np.uint8)
        for row, index in enumerate(indices):
            out[row] = frames[int(index)]
        return out

    def iter_frames(self, chunk: int = 64):
        """Every decodable frame from the start, decoding once; checks the count against :attr:`num_frames`."""
        self._seek_to_start()
        count = 0
        for frame in self._frames():
            count += 1
            yield self._convert(frame)
        self._check_truncation(count)
        if count != self._num_frames:
            log.debug("%s: decoded %d frames, the packet index says %d", self.path, count, self._num_frames)
            self._num_frames = count

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None

    # -- index
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
        self._check_truncation(count)
        self._num_frames = count

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

    def _seek_to_start(self) -> None:
        # the file's start, not the first packet's timestamp: AVI seeks by decode order, and landing on
        # a later "keyframe" would silently drop the first frames
        self._seek(0, stream=None)

    def _seek(self, pts: int, stream="video") -> None:
        try:
            self._container.seek(pts, stream=self._stream if stream else None, backward=True, any_frame=False)
        except self._av.FFmpegError as error:
            raise DataError(f"{self.path}: cannot seek ({_reason(error)})") from None

    def _convert(self, frame) -> np.ndarray:
        height, width = self._size
        converted = self._reformatter.reformat(frame, width=width, height=height, format="rgb24", interpolation="BILINEAR", threads=1)
        return converted.to_ndarray()

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


# ---------------------------------------------------------------------------------------------------------
# decord


class DecordReader(VideoReader):
    """decord's ``VideoReader`` (resizes in its FFmpeg decoder). It counts frames from the container's
    packet index, so ``open_video(backend="auto")`` uses it only for containers with real timestamps."""

    backend = "decord"

    def __init__(self, path: str, *, size: Size = UPSTREAM_FRAME_SIZE, threads: int = 1):
        try:
            import decord
        except ImportError:
            raise DataError("backend 'decord' needs the decord package: pip install 'artnet[decord]'") from None
        self.path = path
        try:
            if isinstance(size, tuple):
                self._size = output_size(0, 0, size)
            else:
                probe = decord.VideoReader(path, num_threads=threads)
                height, width = probe[0].shape[:2]
                del probe
                self._size = output_size(height, width, size)
            self._reader = decord.VideoReader(path, width=self._size[1], height=self._size[0], num_threads=threads)
            self._num_frames = len(self._reader)
        except (decord.DECORDError, RuntimeError, IndexError) as error:
            raise DataError(f"{path}: decord cannot read it ({_reason(error)})") from None
        if self._num_frames == 0:
            raise DataError(f"{path}: no frames")

    def read(self, indices) -> np.ndarray:
        import decord

        indices = self._checked(indices)
        try:
            return self._reader.get_batch(indices.tolist()).asnumpy()
        except (decord.DECORDError, RuntimeError) as error:
            raise DataError(f"{self.path}: decord failed to decode ({_reason(error)})") from None

    def close(self) -> None:
        self._reader = None


# ---------------------------------------------------------------------------------------------------------
# JPEG frame folders


class FrameFolderReader(VideoReader):
    """A folder of extracted frames ``img_00001.jpg`` ... (1-indexed, as TSN / ARTNet store them).

    ``num_frames`` is the unbroken run of frames from number 1. JPEGs are decoded with libjpeg-turbo
    through ``torchvision.io.decode_jpeg`` when torchvision is installed (faster than Pillow), else Pillow.
    """

    backend = "frames"

    def __init__(self, path: str, *, size: Size = UPSTREAM_FRAME_SIZE, pattern: str | None = None):
        self.path = path
        try:
            names = set(os.listdir(path))
        except OSError as error:
            raise DataError(f"{path}: cannot list the frame folder ({_reason(error)})") from None
        patterns = (pattern,) if pattern else FRAME_PATTERNS
        for candidate in patterns:
            try:
                first = candidate.format(1)
            except (IndexError, KeyError, ValueError):
                raise DataError(f"frame pattern {candidate!r} must hold one '{{}}' field for the frame number") from None
            if first in names:
                self._pattern = candidate
                break
        else:
            raise DataError(f"{path}: no frames named {' / '.join(p.format(1) for p in patterns)}")
        count = 1
        while self._pattern.format(count + 1) in names:  # noqa: SIM113
            count += 1
        self._num_frames = count
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self._file(0)) as image:  # reads the header only
                width, height = image.size
        except (OSError, UnidentifiedImageError) as error:
            raise DataError(f"{self._file(0)}: cannot decode the image ({_reason(error)})") from None
        self._size = output_size(height, width, size)

    def read(self, indices) -> np.ndarray:
        indices = self._checked(indices)
        wanted, inverse = np.unique(indices, return_inverse=True)
        images = _decode_images([self._file(int(i)) for i in wanted])
        frames = _resize_frames(images, self._size)
        return frames[inverse]

    def _file(self, index: int) -> str:
        return os.path.join(self.path, self._pattern.format(index + 1))


def _decode_images(files: list[str]) -> list[np.ndarray]:
    """uint8 RGB ``(H, W, 3)`` arrays; a missing or corrupt image raises DataError naming it."""
    if JPEG_DECODER == "auto" and _torchvision_jpeg() and all(f.lower().endswith((".jpg", ".jpeg")) for f in files):
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg

        import warnings

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
                # 1.3x faster than Pillow here (benchmarks/data_speed.py)
                warnings.simplefilter("ignore", DeprecationWarning)
                decoded = decode_jpeg(datas, mode=ImageReadMode.RGB)
            return [image.permute(1, 2, 0).numpy() for image in decoded]
        except RuntimeError:
            pass  # find which one is corrupt below, with Pillow's message
    from PIL import Image, UnidentifiedImageError

    images = []
    for name in files:
        try:
            with Image.open(name) as image:
                images.append(np.asarray(image.convert("RGB")))
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
    text = str(error).strip().splitlines()
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
    (x, y). ``num_frames`` is the unbroken run of frames from number 1 that have both images.
    """

    backend = "frames"

    def __init__(self, path: str, *, size: Size = UPSTREAM_FRAME_SIZE, patterns: tuple[str, str] = FLOW_PATTERNS[0]):
        self.path = path
        if len(patterns) != 2:
            raise DataError(f"a flow folder needs an (x, y) pair of patterns, not {patterns!r}")
        for pattern in patterns:
            try:
                pattern.format(1)
            except (IndexError, KeyError, ValueError):
                raise DataError(f"frame pattern {pattern!r} must hold one '{{}}' field for the frame number") from None
        self._patterns = tuple(patterns)
        try:
            names = set(os.listdir(path))
        except OSError as error:
            raise DataError(f"{path}: cannot list the flow folder ({_reason(error)})") from None
        count = 0
        while all(p.format(count + 1) in names for p in self._patterns):
            count += 1
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


def _flow_patterns(path: str, frame_pattern: str | tuple[str, str] | None) -> tuple[str, str] | None:
    """The (x, y) patterns a folder is read with as flow: the pair given, else, when no pattern is given and
    the folder holds no RGB frames, the first of :data:`FLOW_PATTERNS` present; ``None``: RGB frames."""
    if isinstance(frame_pattern, (tuple, list)):
        return tuple(frame_pattern)
    if frame_pattern is not None or any(os.path.exists(os.path.join(path, p.format(1))) for p in FRAME_PATTERNS):
        return None
    for pair in FLOW_PATTERNS:
        if all(os.path.exists(os.path.join(path, p.format(1))) for p in pair):
            return pair
    return None
