"""A built-in video dataset that runs on a laptop CPU: real H.264 files, UCF101-style splits.

Two kinds of classes. *Appearance* classes are decided by one frame: which shape. *Temporal*
classes come in pairs that only the order of frames decides: clip i of a pair's second class is
clip i of its first class played backwards, so both classes hold exactly the same frames; and the
random process behind a pair is stationary (uniformly random phase, positions, sizes), so a frame
at any time of a clip has the same distribution in both classes. A model that looks at frames
one by one, or at an unordered bag of frames (C2D), can name the pair but is at chance within it.
Clip i of the appearance classes is matched the same way: one background, colour, size, path and
noise, four shapes. Within a matched group, only what defines a class tells it apart.

Every class is unchanged by a horizontal flip (no left/right motion, no sense of rotation), so
the paper's training augmentation (random mirror) can be used as is.

    dataset = generate("data/synthetic", seed=0)      # cached: the second call returns at once
    dataset.train_list, dataset.test_list, dataset.class_ind
    dataset.labels("temporal")                       # 0-based labels of the temporal classes

On disk, under the output folder: ``classInd.txt`` (``<index> <Class>``, 1-based),
``trainlist01.txt`` (``<Class>/<file>.mp4 <index>``), ``testlist01.txt`` (``<Class>/<file>.mp4``),
``classes.json`` (kind and pair partner of every class), ``manifest.json`` (the parameters; its
``complete`` flag is written last) and the videos in one folder per class.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..outputs import atomic_path, atomic_write, folder_lock, output_folder
from ..parallel import map_parallel
from ..progress import progress_bar
from .h264 import write_h264

# Bumped whenever the files or the layout change, so that a cached folder is redone.
# 2: our own RGB -> YUV conversion and x264's C code: the same files whatever SIMD the CPU has.
GENERATOR_VERSION = 2

CLASS_IND = "classInd.txt"
TRAIN_LIST = "trainlist01.txt"
TEST_LIST = "testlist01.txt"
CLASSES_FILE = "classes.json"
MANIFEST = "manifest.json"

# Geometry and speeds below are in pixels of a frame whose short side is this; other sizes scale.
_REFERENCE_SIDE = 96.0


@dataclass(frozen=True)
class SyntheticClass:
    """One class: its name, ``kind`` ("appearance" or "temporal") and, for temporal ones, its
    ``partner``: the class whose clips are this class's clips played backwards."""

    name: str
    kind: str
    partner: str | None
    description: str


# Order = label order (classInd index - 1). A temporal pair's first class is the forward process.
CLASSES: tuple[SyntheticClass, ...] = (
    SyntheticClass("Plain", "appearance", None, "a plain disc drifting and bouncing"),
    SyntheticClass("Striped", "appearance", None, "a striped disc drifting and bouncing"),
    SyntheticClass("Checkered", "appearance", None, "a checkered disc drifting and bouncing"),
    SyntheticClass("Dotted", "appearance", None, "a polka-dot disc drifting and bouncing"),
    SyntheticClass("Rising", "temporal", "Falling", "a field of small dots moving up"),
    SyntheticClass("Falling", "temporal", "Rising", "a field of small dots moving down"),
    SyntheticClass("Approaching", "temporal", "Receding", "flying into a tunnel of hoops: they zoom in"),
    SyntheticClass("Receding", "temporal", "Approaching", "flying out of a tunnel of hoops: they zoom out"),
    SyntheticClass("Inflating", "temporal", "Deflating", "ring bubbles that grow, vanish and reappear small elsewhere"),
    SyntheticClass("Deflating", "temporal", "Inflating", "ring bubbles that appear large and shrink to nothing"),
    SyntheticClass("CycleRGB", "temporal", "CycleBGR", "a panel of lamps cycling red -> green -> blue"),
    SyntheticClass("CycleBGR", "temporal", "CycleRGB", "a panel of lamps cycling red -> blue -> green"),
)


@dataclass(frozen=True)
class SyntheticParams:
    """Everything the files depend on. Equal parameters and version: the cached folder is reused."""

    seed: int = 0
    clips_per_class: int = 48
    test_fraction: float = 0.25
    num_frames: int = 32
    height: int = 96
    width: int = 128
    fps: int = 25
    crf: int = 23

    def __post_init__(self) -> None:
        if self.clips_per_class < 2:
            raise DataError(f"clips_per_class must be >= 2 (one train and one test clip), got {self.clips_per_class}")
        if not 0 < self.test_fraction < 1:
            raise DataError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.num_frames < 2:
            raise DataError(f"num_frames must be >= 2, got {self.num_frames}")
        if self.height < 16 or self.width < 16 or self.height % 2 or self.width % 2:
            raise DataError(f"frame size must be even and >= 16 (yuv420p), got {self.height}x{self.width}")
        if not 0 <= self.crf <= 51:
            raise DataError(f"crf must be in [0, 51], got {self.crf}")

    @property
    def num_test(self) -> int:
        return min(self.clips_per_class - 1, max(1, round(self.clips_per_class * self.test_fraction)))


@dataclass(frozen=True)
class SyntheticDataset:
    """A generated folder: where its files are and what its classes are (in label order)."""

    root: Path
    params: SyntheticParams
    classes: tuple[SyntheticClass, ...] = CLASSES

    @property
    def class_ind(self) -> Path:
        return self.root / CLASS_IND

    @property
    def train_list(self) -> Path:
        return self.root / TRAIN_LIST

    @property
    def test_list(self) -> Path:
        return self.root / TEST_LIST

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def label(self, name: str) -> int:
        """The 0-based label of a class name (classInd index - 1)."""
        for label, cls in enumerate(self.classes):
            if cls.name == name:
                return label
        raise DataError(f"{self.root / CLASSES_FILE}: no class named {name!r}")

    def labels(self, kind: str) -> list[int]:
        """0-based labels of the classes of one kind ("appearance" or "temporal")."""
        if kind not in ("appearance", "temporal"):
            raise DataError(f"kind must be 'appearance' or 'temporal', got {kind!r}")
        return [label for label, cls in enumerate(self.classes) if cls.kind == kind]

    def partner(self, label: int) -> int | None:
        """The 0-based label of a temporal class's partner (its clips reversed); None otherwise."""
        name = self.classes[label].partner
        return None if name is None else self.label(name)

    def object_mask(self, video: str | os.PathLike) -> np.ndarray:
        """Where the class's object is in one of the videos, frame for frame: float32 ``(T, H, W)``
        coverage (:func:`render_mask`), at the generated size."""
        path = Path(video)
        name, _, index = path.stem.rpartition("_")
        if path.parent.name != name or not index.isdigit() or not any(cls.name == name for cls in self.classes):
            raise DataError(f"{video}: not a video of this dataset (<Class>/<Class>_<index>.mp4)")
        p = self.params
        return render_mask(name, p.seed, int(index), p.num_frames, p.height, p.width)

    def clips(self, split: str) -> list[tuple[Path, int]]:
        """(video path, 0-based label) of the "train" or "test" split, in list order."""
        count = {"train": self.params.clips_per_class - self.params.num_test, "test": self.params.num_test}[split]
        start = 0 if split == "train" else self.params.clips_per_class - self.params.num_test
        return [
            (self.root / _video_name(cls.name, index), label)
            for label, cls in enumerate(self.classes)
            for index in range(start, start + count)
        ]


# ----------------------------------------------------------------------------------------------
# Generation and the cache


def generate(
    out_dir: str | os.PathLike,
    *,
    seed: int = SyntheticParams.seed,
    clips_per_class: int = SyntheticParams.clips_per_class,
    test_fraction: float = SyntheticParams.test_fraction,
    num_frames: int = SyntheticParams.num_frames,
    height: int = SyntheticParams.height,
    width: int = SyntheticParams.width,
    fps: int = SyntheticParams.fps,
    crf: int = SyntheticParams.crf,
    workers: int | None = None,
    progress: bool | Callable[[int, int], None] = False,
) -> SyntheticDataset:
    """Write the dataset under ``out_dir`` (or reuse it) and return it.

    Deterministic for a seed: each clip is drawn from its own random stream keyed by (seed,
    class, clip), so the result does not depend on ``workers`` (processes; default: one per CPU).
    Cached: when ``out_dir/manifest.json`` records the same parameters and a completed run,
    nothing is written. A folder left by an interrupted or differently parametrised run is
    cleared (only the files this generator writes) and redone; a non-empty folder that is not a
    generated dataset is refused. ``progress``: True shows a tqdm bar on stderr; a callable gets
    ``(clips_done, clips_total)`` after each clip.
    """
    params = SyntheticParams(seed, clips_per_class, test_fraction, num_frames, height, width, fps, crf)
    root = Path(out_dir)
    if not _complete(root, params):
        output_folder(root)
        with folder_lock(root):  # two runs on one cache (two demos at once): the second finds it built
            if not _complete(root, params):
                _build(root, params, workers, progress)
    return SyntheticDataset(root, params)


def _complete(root: Path, params: SyntheticParams) -> bool:
    return _read_manifest(root) == _manifest(params, complete=True) and _files_present(root, params)


def _build(root: Path, params: SyntheticParams, workers: int | None, progress: bool | Callable[[int, int], None]) -> None:
    manifest = _read_manifest(root)
    ours = manifest is not None and manifest.get("generator") == __name__
    if not ours and any(root.iterdir()):
        raise DataError(f"{root}: not empty and not a generated dataset (no {MANIFEST} of ours); choose an empty or new folder")
    _clear(root)
    _write_json(root / MANIFEST, _manifest(params, complete=False))
    for cls in CLASSES:
        (root / cls.name).mkdir()

    tasks = [(root, params, cls.name, index) for cls in CLASSES for index in range(params.clips_per_class)]
    written = map_parallel(_write_clip, tasks, workers or os.cpu_count() or 1)
    show_bar = bool(progress) and not callable(progress)
    for done, _ in enumerate(progress_bar(written, total=len(tasks), description="synthetic dataset", unit="video", show=show_bar), start=1):
        if callable(progress):
            progress(done, len(tasks))
    _write_splits(root, params)
    _write_json(root / CLASSES_FILE, {"classes": [{"index": i + 1, **asdict(c)} for i, c in enumerate(CLASSES)]})
    _write_json(root / MANIFEST, _manifest(params, complete=True))  # the completion marker: last


def _write_clip(root: Path, params: SyntheticParams, class_name: str, index: int) -> None:
    frames = render_clip(class_name, params.seed, index, params.num_frames, params.height, params.width)
    with atomic_path(root / _video_name(class_name, index)) as temporary:  # whole or absent, as every output
        write_h264(temporary, frames, params.fps, {"crf": str(params.crf), "preset": "veryfast"})


def load(root: str | os.PathLike) -> SyntheticDataset:
    """A completely generated dataset folder (class metadata from its ``classes.json``)."""
    root = Path(root)
    manifest = _read_manifest(root)
    if manifest is None or not manifest.get("complete"):
        raise DataError(f"{root}: not a completely generated dataset (see {MANIFEST}); run `artnet synthetic --out {root}`")
    try:
        params = SyntheticParams(**manifest["params"])
        entries = json.loads((root / CLASSES_FILE).read_text())["classes"]
        classes = tuple(SyntheticClass(e["name"], e["kind"], e["partner"], e["description"]) for e in entries)
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise DataError(f"{root}: unreadable dataset description ({error})") from None
    return SyntheticDataset(root, params, classes)


def _video_name(class_name: str, index: int) -> str:
    return f"{class_name}/{class_name}_{index:03d}.mp4"


def _manifest(params: SyntheticParams, complete: bool) -> dict:
    return {"generator": __name__, "version": GENERATOR_VERSION, "params": asdict(params), "complete": complete}


def _read_manifest(root: Path) -> dict | None:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # unreadable: not known to be ours
    return manifest if isinstance(manifest, dict) else {}


def _files_present(root: Path, params: SyntheticParams) -> bool:
    names = [CLASS_IND, TRAIN_LIST, TEST_LIST, CLASSES_FILE]
    names += [_video_name(cls.name, i) for cls in CLASSES for i in range(params.clips_per_class)]
    return all((root / name).is_file() for name in names)


def _clear(root: Path) -> None:
    """Remove what this generator writes (and nothing else) from a folder it wrote before."""
    for cls in CLASSES:
        shutil.rmtree(root / cls.name, ignore_errors=True)
    for name in (CLASS_IND, TRAIN_LIST, TEST_LIST, CLASSES_FILE, MANIFEST):
        (root / name).unlink(missing_ok=True)


def _write_json(path: Path, payload: dict) -> None:
    with atomic_write(path, "w") as file:
        file.write(json.dumps(payload, indent=2) + "\n")


def _write_splits(root: Path, params: SyntheticParams) -> None:
    dataset = SyntheticDataset(root, params)
    (root / CLASS_IND).write_text("".join(f"{i + 1} {cls.name}\n" for i, cls in enumerate(CLASSES)))
    (root / TRAIN_LIST).write_text("".join(f"{p.relative_to(root).as_posix()} {y + 1}\n" for p, y in dataset.clips("train")))
    (root / TEST_LIST).write_text("".join(f"{p.relative_to(root).as_posix()}\n" for p, _ in dataset.clips("test")))


# ----------------------------------------------------------------------------------------------
# Rendering: float RGB in [0, 1], time-vectorised over (T, H, W), antialiased by signed distances.
# A scene returns its frames and the coverage of the object that carries its class.


def render_clip(class_name: str, seed: int, index: int, num_frames: int, height: int, width: int) -> np.ndarray:
    """The uint8 (T, H, W, 3) RGB frames of clip ``index`` of a class, before encoding.

    Clips are matched across the classes that must be told apart by one thing only, so that
    nothing else (background, colour, path, ...) can be learnt by heart for a class. Clip
    ``index`` of every appearance class has the same background, colours, size, path and noise;
    only the shape differs. Clip ``index`` of a temporal pair's second class is clip ``index`` of
    its first class played backwards, frame for frame: the two classes hold the same frames.
    """
    frames, _, rng = _render_scene(class_name, seed, index, num_frames, height, width)
    # Sensor noise, uniform with a random standard deviation of up to 6 grey levels.
    noise = rng.random(frames.shape, dtype=np.float32) - np.float32(0.5)
    frames *= 255
    frames += np.float32(rng.uniform(0.0, 6.0) * math.sqrt(12)) * noise + np.float32(0.5)
    frames = np.clip(frames, 0, 255, out=frames).astype(np.uint8)
    return _in_class_order(class_name, frames)


def render_mask(class_name: str, seed: int, index: int, num_frames: int, height: int, width: int) -> np.ndarray:
    """Where the class's object is in the frames :func:`render_clip` gives for the same arguments:
    float32 ``(T, H, W)`` coverage in [0, 1] (antialiased edges), frame for frame.

    The object is what carries the class: the patterned disc (appearance classes), the moving
    dots, the tunnel of hoops, the bubbles, the lamps (temporal classes); never the background.
    """
    _, mask, _ = _render_scene(class_name, seed, index, num_frames, height, width)
    return _in_class_order(class_name, np.ascontiguousarray(np.broadcast_to(mask, (num_frames, height, width)), dtype=np.float32))


def _render_scene(class_name: str, seed: int, index: int, num_frames: int, height: int, width: int):
    """The noiseless float frames, the object's coverage and the clip's random stream, in the
    forward process's time order."""
    if class_name not in _SCENES:
        raise DataError(f"unknown synthetic class {class_name!r}; classes: {', '.join(c.name for c in CLASSES)}")
    scene, _, stream = _SCENES[class_name]
    rng = np.random.default_rng([seed, _LABELS[stream], index])
    frames, mask = scene(rng, _Canvas(num_frames, height, width))
    return frames, mask, rng


def _in_class_order(class_name: str, clip: np.ndarray) -> np.ndarray:
    """A temporal pair's second class plays its partner's process backwards."""
    return np.ascontiguousarray(clip[::-1]) if _SCENES[class_name][1] else clip


class _Canvas:
    """Pixel-centre coordinates of a clip and the scale of its geometry."""

    def __init__(self, num_frames: int, height: int, width: int) -> None:
        self.T, self.H, self.W = num_frames, height, width
        self.scale = min(height, width) / _REFERENCE_SIDE
        self.t = np.arange(num_frames, dtype=np.float32)[:, None, None]  # (T, 1, 1)
        self.y = (np.arange(height, dtype=np.float32) + 0.5)[None, :, None]  # (1, H, 1)
        self.x = (np.arange(width, dtype=np.float32) + 0.5)[None, None, :]  # (1, 1, W)

    def centre_box(self, rng: np.random.Generator, fraction: float) -> tuple[float, float]:
        """A point in the centred box spanning ``fraction`` of each side (crops keep it in view)."""
        return (
            self.H / 2 + rng.uniform(-0.5, 0.5) * fraction * self.H,
            self.W / 2 + rng.uniform(-0.5, 0.5) * fraction * self.W,
        )


def _coverage(distance: np.ndarray) -> np.ndarray:
    """Antialiased alpha of a shape from its signed distance in pixels (negative inside)."""
    return np.clip(0.5 - distance, 0.0, 1.0)


def _paint(frames: np.ndarray, alpha: np.ndarray, colour) -> None:
    """Composite ``colour`` over ``frames`` in place with coverage ``alpha`` (broadcast to frames)."""
    frames += alpha[..., None] * (np.asarray(colour, dtype=np.float32) - frames)


def _luma(colour: np.ndarray) -> float:
    return 0.299 * float(colour[0]) + 0.587 * float(colour[1]) + 0.114 * float(colour[2])


def _bright_colour(rng: np.random.Generator, luma: float, margin: float = 0.3) -> np.ndarray:
    """A random colour at least ``margin`` brighter (in luma) than ``luma``.

    Everything that matters is brighter than the background: edge polarity is then one less
    nuisance to learn, which a small network trained for minutes needs far more than variety.
    """
    while True:
        colour = rng.uniform(0.0, 1.0, 3).astype(np.float32)
        if _luma(colour) >= luma + margin:
            return colour


def _background(rng: np.random.Generator, canvas: _Canvas) -> tuple[np.ndarray, float]:
    """A static, dark, low-contrast background (H, W, 3) of smooth random blobs, and its
    brightest luma. Smooth: edges and patterns belong to the things that carry the classes."""
    base = rng.uniform(0.05, 0.4, 3).astype(np.float32)
    other = np.clip(base + rng.uniform(-0.15, 0.15, 3), 0, 1).astype(np.float32)
    y, x = canvas.y[0], canvas.x[0]
    pattern = np.zeros((canvas.H, canvas.W), np.float32)
    for _ in range(4):  # a few long waves
        angle, wavelength, phase = rng.uniform(0, 2 * np.pi), rng.uniform(30, 120) * canvas.scale, rng.uniform(0, 2 * np.pi)
        pattern += np.cos(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / wavelength + phase)
    background = base + (other - base) * (0.5 + pattern[..., None] / 8)
    return background, max(_luma(base), _luma(other))


def _clip_of(background: np.ndarray, canvas: _Canvas) -> np.ndarray:
    return np.repeat(background[None].astype(np.float32), canvas.T, axis=0)


def _bounce(start: float, velocity: float, low: float, high: float, t: np.ndarray) -> np.ndarray:
    """Positions over time of a point moving at constant speed and reflecting off [low, high]."""
    span = high - low
    u = np.mod(start - low + velocity * t, 2 * span)
    return low + span - np.abs(u - span)


# -- appearance: one disc, its surface pattern decides; drifting and bouncing ---------------------


def _box_distance(u, v, half_u: float, half_v: float) -> np.ndarray:
    qu, qv = np.abs(u) - half_u, np.abs(v) - half_v
    return np.hypot(np.maximum(qu, 0), np.maximum(qv, 0)) + np.minimum(np.maximum(qu, qv), 0)


def _pattern(name: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray | float:
    """Coverage in [0, 1] of the dark part of a surface pattern at pattern coordinates (u, v)."""
    if name == "Plain":
        return 0.0
    if name == "Dotted":  # dots half a period wide at the cell centres
        return _coverage(np.hypot(np.mod(u, period) - period / 2, np.mod(v, period) - period / 2) - period / 4)
    if name == "Striped":
        return _coverage(-_band_edge(u, period))
    if name == "Checkered":  # squares 1.5x the stripes' width: plainly two-dimensional
        gu, gv = _band_edge(u, 1.5 * period), _band_edge(v, 1.5 * period)
        return _coverage(-np.sign(gu * gv) * np.minimum(np.abs(gu), np.abs(gv)))
    raise AssertionError(name)


def _band_edge(w: np.ndarray, period: float) -> np.ndarray:
    """Signed distance to the nearest band edge, positive in the first half of each period."""
    return period / 4 - np.abs(np.mod(w, period) - period / 4)


def _pattern_scene(name: str) -> Callable[[np.random.Generator, _Canvas], tuple[np.ndarray, np.ndarray]]:
    def scene(rng: np.random.Generator, canvas: _Canvas) -> tuple[np.ndarray, np.ndarray]:
        background, luma = _background(rng, canvas)
        radius = rng.uniform(26, 34) * canvas.scale
        speed, heading = rng.uniform(0.5, 1.5) * canvas.scale, rng.uniform(0, 2 * np.pi)
        cy, cx = canvas.centre_box(rng, 0.4)
        margin_y, margin_x = 0.4 * canvas.H, 0.3 * canvas.W
        y = _bounce(cy, speed * np.sin(heading), margin_y, canvas.H - margin_y, canvas.t)
        x = _bounce(cx, speed * np.cos(heading), margin_x, canvas.W - margin_x, canvas.t)
        du, dv = canvas.x - x, canvas.y - y  # the pattern moves with the disc
        # Near axis-aligned (a mirror-symmetric spread): orientation is a nuisance worth sparing.
        angle, period = rng.uniform(-0.25, 0.25), rng.uniform(10, 14) * canvas.scale
        u = du * np.cos(angle) + dv * np.sin(angle) + rng.uniform() * period
        v = -du * np.sin(angle) + dv * np.cos(angle) + rng.uniform() * period
        colour = _bright_colour(rng, luma)
        dark = colour * np.float32(rng.uniform(0.25, 0.5))
        fill = colour + (dark - colour) * np.asarray(_pattern(name, u, v, period), np.float32)[..., None]
        disc = _coverage(np.hypot(du, dv) - radius)
        frames = _clip_of(background, canvas)
        _paint(frames, disc, fill)
        return frames, disc

    return scene


# -- temporal pairs: stationary processes with an arrow of time -----------------------------------


def _rising_scene(rng: np.random.Generator, canvas: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Dots moving up at one speed, wrapping around: each frame shows dots at uniform heights."""
    background, luma = _background(rng, canvas)
    count = int(rng.integers(8, 15))
    speed = rng.uniform(2.0, 3.5) * canvas.scale
    colour = _bright_colour(rng, luma)
    max_radius = 7 * canvas.scale
    period = canvas.H + 2 * max_radius
    distance = np.full((canvas.T, canvas.H, canvas.W), np.inf, np.float32)
    for _ in range(count):
        radius = rng.uniform(4, 7) * canvas.scale
        x = rng.uniform(0.1, 0.9) * canvas.W
        y = np.mod(rng.uniform(0, period) - speed * canvas.t, period) - max_radius
        near = slice(max(0, int(x - radius) - 1), int(x + radius) + 2)  # the dot's columns: 10x less work
        distance[..., near] = np.minimum(distance[..., near], np.hypot(canvas.x[..., near] - x, canvas.y - y) - radius)
    dots = _coverage(distance)
    frames = _clip_of(background, canvas)
    _paint(frames, dots, colour)
    return frames, dots


def _approaching_scene(rng: np.random.Generator, canvas: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Flying into a tunnel of hoops: log-spaced rings zooming in at a constant rate, so that the
    picture is the same at every phase (only the phase moves) and each frame looks alike."""
    background, luma = _background(rng, canvas)
    cy, cx = canvas.centre_box(rng, 0.3)
    r = np.maximum(np.hypot(canvas.y - cy, canvas.x - cx), 1e-3)
    ring_ratio = rng.uniform(1.4, 1.7)  # radius of one hoop / the next one in
    rate = rng.uniform(0.06, 0.1)  # log-radius per frame: ~8% bigger each frame
    rings = np.cos(2 * np.pi * ((np.log(r) - rate * canvas.t) / np.log(ring_ratio) + rng.uniform()))
    # Soft edges: a hard sign would alias where rings get thinner than a pixel near the centre.
    hoops = np.clip(0.5 + 2 * rings, 0, 1)
    first = _bright_colour(rng, luma)
    second = first * np.float32(rng.uniform(0.1, 0.35))
    texture = first + (second - first) * hoops[..., None]
    tunnel = rng.uniform(36, 48) * canvas.scale
    inside = _coverage(r - tunnel) * (1 - _coverage(r - 5 * canvas.scale))  # nothing at the vanishing point
    frames = _clip_of(background, canvas)
    _paint(frames, inside, texture)
    return frames, inside


def _inflating_scene(rng: np.random.Generator, canvas: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Ring bubbles growing from a dot, vanishing at full size and restarting elsewhere.

    Each bubble's radius is a sawtooth with a uniformly random phase, and every cycle places it
    anew, so each frame shows bubbles of uniformly distributed sizes at random places.
    """
    background, luma = _background(rng, canvas)
    smallest, largest = 2 * canvas.scale, rng.uniform(20, 30) * canvas.scale
    period = (largest - smallest) / (rng.uniform(1.5, 2.5) * canvas.scale)  # frames per cycle
    thickness = rng.uniform(3.0, 5.0) * canvas.scale
    colour = _bright_colour(rng, luma)
    bubbles = 3
    first_phase = rng.uniform()
    cycles = math.ceil(canvas.T / period) + 3
    distance = np.full((canvas.T, canvas.H, canvas.W), np.inf, np.float32)
    for k in range(bubbles):
        phase = first_phase + k / bubbles + canvas.t / period  # (T, 1, 1)
        cycle = np.floor(phase).astype(int)
        radius = smallest + (largest - smallest) * (phase - cycle)
        places = np.array([canvas.centre_box(rng, 0.6) for _ in range(cycles)], dtype=np.float32)
        y, x = places[cycle, 0], places[cycle, 1]
        distance = np.minimum(distance, np.abs(np.hypot(canvas.y - y, canvas.x - x) - radius) - thickness / 2)
    bubbles = _coverage(distance)
    frames = _clip_of(background, canvas)
    _paint(frames, bubbles, colour)
    return frames, bubbles


def _cycle_scene(rng: np.random.Generator, canvas: _Canvas) -> tuple[np.ndarray, np.ndarray]:
    """A 3 x 3 panel of lamps, each cycling red -> green -> blue with its own random phase."""
    background, _ = _background(rng, canvas)
    half = rng.uniform(6, 9) * canvas.scale  # lamp half-side
    pitch = half * rng.uniform(2.5, 3.0)
    cy, cx = canvas.centre_box(rng, 0.3)
    dx, dy = canvas.x[0] - cx, canvas.y[0] - cy  # (1, W), (H, 1)
    panel = _box_distance(dx, dy, pitch * 1.5 + half * 0.3, pitch * 1.5 + half * 0.3)
    _paint(background, _coverage(panel - 2 * canvas.scale), rng.uniform(0.05, 0.25, 3))
    col, row = np.clip(np.rint(dx / pitch), -1, 1), np.clip(np.rint(dy / pitch), -1, 1)
    lamps = _coverage(_box_distance(dx - col * pitch, dy - row * pitch, half, half))  # (H, W)
    which = (3 * (row + 1) + (col + 1)).astype(int)  # (H, W): the nearest lamp
    dwell = int(rng.integers(3, 6))  # frames per colour: a 16-frame window sees >= 3 changes
    offsets = rng.integers(0, 3 * dwell, 9)
    state = ((np.arange(canvas.T)[:, None] + offsets) // dwell) % 3  # (T, 9): 0 red, 1 green, 2 blue
    palette = np.eye(3, dtype=np.float32) * rng.uniform(0.75, 1.0) + rng.uniform(0.0, 0.2)
    frames = _clip_of(background, canvas)
    _paint(frames, lamps, palette[state[:, which]])  # (T, H, W, 3)
    return frames, lamps  # the lamps change; the panel around them does not


# name -> (scene, played backwards, the class whose random draws it shares)
_SCENES: dict[str, tuple[Callable[[np.random.Generator, _Canvas], tuple[np.ndarray, np.ndarray]], bool, str]] = {
    **{name: (_pattern_scene(name), False, "Plain") for name in ("Plain", "Striped", "Checkered", "Dotted")},
    "Rising": (_rising_scene, False, "Rising"),
    "Falling": (_rising_scene, True, "Rising"),
    "Approaching": (_approaching_scene, False, "Approaching"),
    "Receding": (_approaching_scene, True, "Approaching"),
    "Inflating": (_inflating_scene, False, "Inflating"),
    "Deflating": (_inflating_scene, True, "Inflating"),
    "CycleRGB": (_cycle_scene, False, "CycleRGB"),
    "CycleBGR": (_cycle_scene, True, "CycleRGB"),
}
assert set(_SCENES) == {cls.name for cls in CLASSES}
_LABELS = {cls.name: label for label, cls in enumerate(CLASSES)}
