"""Training clips per second per worker: decode + sample + augment (16 x 112 x 112), one process, one thread.

Inputs are generated here (UCF101-like: 320 x 240, 150-250 frames, 25-30 fps) with PyAV into a cache
folder: raw MPEG-4 part 2 AVIs (as UCF101 ships) and H.264 MP4s (as Kinetics ships), then prepared
with ``artnet.data.prepare``: short-GOP H.264 at 170 x 128, and JPEG frame folders at 170 x 128.

Beside ours, on the same files, a naive baseline: PyAV decoding from the start of the file up to the
clip's last frame, converting every decoded frame at full size, resizing the clip with numpy
(bilinear), then the same crop / flip / normalisation. Configurations run round-robin, several rounds,
and the table shows the median, so a busy machine slows all of them alike.

    python benchmarks/data_speed.py [--videos 12] [--clips 60] [--rounds 5] [--cache DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from artnet.data import VideoDataset, VideoRecord, readers  # noqa: E402
from artnet.data.prepare import EncodeOptions, prepare_videos  # noqa: E402
from artnet.data.readers import decord_available  # noqa: E402
from artnet.data.transforms import apply_crop, normalize, random_crop  # noqa: E402
from artnet.machine import cpu_name  # noqa: E402
from artnet.table import format_table  # noqa: E402

TARGET_PREPARED = 150  # clips/s per worker, issue target
TARGET_SPEEDUP = 3.0


def make_video(path: Path, num_frames: int, rng: np.random.Generator, codec: str) -> None:
    """A UCF101-like clip: a textured background panning slowly, a few moving blobs, sensor noise."""
    import av

    height, width = 240, 320
    background = rng.integers(40, 220, (height // 16 + 2, width // 16 + 2, 3)).astype(np.float32)
    background = np.kron(background, np.ones((16, 16, 1), np.float32))  # blocks ...
    background = (background + np.roll(background, 8, 0) + np.roll(background, 8, 1)) / 3  # ... softened
    yy, xx = np.mgrid[0:height, 0:width]
    blobs = [(rng.uniform(0, width), rng.uniform(0, height), rng.uniform(-4, 4), rng.uniform(-2, 2), rng.integers(0, 255, 3)) for _ in range(3)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30 if codec == "libx264" else 25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "mpeg4":  # Xvid-like: ~1 Mbit/s, B-frames off as in most UCF101 files
            stream.codec_context.bit_rate = 1_000_000
            stream.codec_context.gop_size = 12
        for i in range(num_frames):
            shift = i // 2
            frame = background[:, shift % 16 : shift % 16 + width] if background.shape[1] >= width + 16 else background[:, :width]
            frame = frame[:height].copy()
            for x, y, dx, dy, colour in blobs:
                mask = (xx - (x + dx * i) % width) ** 2 + (yy - (y + dy * i) % height) ** 2 < 600
                frame[mask] = colour
            frame += rng.normal(0, 2, frame.shape)
            array = np.clip(frame, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def build_inputs(cache: Path, count: int) -> dict[str, list[str]]:
    rng = np.random.default_rng(0)
    raw = cache / "raw"
    sets: dict[str, list[str]] = {"raw AVI (MPEG-4, 320x240)": [], "raw MP4 (H.264, 320x240)": []}
    for i in range(count):
        frames = int(rng.integers(150, 251))
        for codec, ext, key in (("mpeg4", "avi", "raw AVI (MPEG-4, 320x240)"), ("libx264", "mp4", "raw MP4 (H.264, 320x240)")):
            path = raw / ext / f"v_Bench_g{i:02d}_c01.{ext}"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                make_video(path, frames, np.random.default_rng(i), codec)
            sets[key].append(str(path))
    prepared = prepare_videos(raw / "avi", cache / "prepared_video", EncodeOptions(to="video", gop=16), jobs=os.cpu_count() or 1)
    frames = prepare_videos(raw / "avi", cache / "prepared_frames", EncodeOptions(to="frames", quality=90), jobs=os.cpu_count() or 1)
    sets["prepared MP4 (H.264 GOP 16, 170x128)"] = sorted(prepared.frames)
    sets["prepared JPEG frames (170x128)"] = sorted(frames.frames)
    return sets


# -- the naive baseline: what a first implementation does ----------------------------------------------


def numpy_resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of (T, H, W, 3) uint8 with numpy (half-pixel centres, as cv2.resize)."""
    src_h, src_w = frames.shape[1:3]
    ys = np.clip((np.arange(height) + 0.5) * src_h / height - 0.5, 0, src_h - 1)
    xs = np.clip((np.arange(width) + 0.5) * src_w / width - 0.5, 0, src_w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, src_h - 1), np.minimum(x0 + 1, src_w - 1)
    wy, wx = (ys - y0)[None, :, None, None], (xs - x0)[None, None, :, None]
    f = frames.astype(np.float32)
    top = f[:, y0][:, :, x0] * (1 - wx) + f[:, y0][:, :, x1] * wx
    bottom = f[:, y1][:, :, x0] * (1 - wx) + f[:, y1][:, :, x1] * wx
    return np.round(top * (1 - wy) + bottom * wy).astype(np.uint8)


def naive_clip(path: str, rng: np.random.Generator) -> torch.Tensor:
    import av

    with av.open(path) as container:
        num_frames = container.streams.video[0].frames  # trusts the container, as naive code does
        start = int(rng.integers(0, max(num_frames - 16, 0) + 1))
        wanted = set(range(start, start + 16))
        frames = []
        for index, frame in enumerate(container.decode(video=0)):
            array = frame.to_ndarray(format="rgb24")  # every frame, full size
            if index in wanted:
                frames.append(array)
            if index >= start + 15:
                break
    while len(frames) < 16:
        frames.append(frames[-1])
    clip = numpy_resize(np.stack(frames), 128, 170)
    crop = random_crop(128, 170, rng)
    return normalize(apply_crop(clip, crop), "caffe")


# -- measurement -----------------------------------------------------------------------------------------


def timer(make_clip, paths: list[str], clips: int, seed: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process) per clip over ``clips`` random videos."""
    rng = np.random.default_rng(seed)
    order = rng.integers(0, len(paths), clips)
    start, cpu_start = time.perf_counter(), time.process_time()
    for k in order:
        clip = make_clip(int(k), rng)
        assert clip.shape == (3, 16, 112, 112)
    return (time.perf_counter() - start) / clips, (time.process_time() - cpu_start) / clips


def ours(paths: list[str], backend: str = "auto", jpeg: str = "auto"):
    dataset = VideoDataset([VideoRecord(p, 0) for p in paths], mode="train", backend=backend, max_bad_ratio=0.0)

    def make_clip(k: int, rng) -> torch.Tensor:
        readers.JPEG_DECODER = jpeg
        dataset.set_epoch(int(rng.integers(1 << 30)))
        return dataset[k][0]

    return make_clip


def naive(paths: list[str]):
    return lambda k, rng: naive_clip(paths[k], rng)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--clips", type=int, default=60, help="clips per configuration per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "artnet-data-bench"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # a DataLoader worker's setting

    t0 = time.time()
    sets = build_inputs(Path(args.cache), args.videos)
    print(f"inputs: {args.videos} videos per set in {args.cache} ({time.time() - t0:.0f} s to make / check)\n")

    configs = []  # (source, reader, make_clip)
    for source, paths in sets.items():
        if "JPEG" in source:
            configs.append((source, "artnet frames (torchvision decode_jpeg)", ours(paths, jpeg="auto")))
            configs.append((source, "artnet frames (Pillow)", ours(paths, jpeg="pil")))
            continue
        configs.append((source, "naive PyAV (from start, full size, numpy resize)", naive(paths)))
        configs.append((source, "artnet PyAV (seek, decoder resize)", ours(paths, backend="pyav")))
        if decord_available() and ".mp4" in paths[0]:
            configs.append((source, "artnet decord", ours(paths, backend="decord")))

    for source, _, make_clip in configs:  # warm up: imports, first-open costs
        make_clip(0, np.random.default_rng(0))
    wall: dict[int, list[float]] = {i: [] for i in range(len(configs))}
    cpu: dict[int, list[float]] = {i: [] for i in range(len(configs))}
    for round_ in range(args.rounds):
        for i, (_, _, make_clip) in enumerate(configs):
            seconds, cpu_seconds = timer(make_clip, sets[configs[i][0]], args.clips, seed=round_ * 100 + i)
            wall[i].append(seconds)
            cpu[i].append(cpu_seconds)
    median = {i: statistics.median(t) for i, t in wall.items()}
    median_cpu = {i: statistics.median(t) for i, t in cpu.items()}
    naive_of = {configs[i][0]: median[i] for i in median if configs[i][1].startswith("naive")}
    naive_avi = naive_of["raw AVI (MPEG-4, 320x240)"]

    rows = []
    for i, (source, reader, _) in enumerate(configs):
        base = naive_of.get(source, naive_avi)
        rows.append((source, reader, f"{1 / median[i]:.0f}", f"{1 / median_cpu[i]:.0f}", f"{median[i] * 1e3:.1f}", f"{base / median[i]:.1f}x"))
    print(format_table(("input", "reader", "clips/s", "clips/CPU-s", "ms/clip", "vs naive"), rows))
    print(
        "\nclips/s: wall clock, one process, one thread. clips/CPU-s: per second of this process's CPU time, i.e. what"
        " one worker gets from a core of its own (the machine is shared). vs naive: the naive baseline on the same"
        " files (JPEG frames: against the naive reader of the raw AVIs they came from), wall clock."
    )
    cpu = cpu_name()
    print(f"machine: {cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; Python {platform.python_version()}, torch {torch.__version__}, 1 thread")

    best_prepared = max(1 / median_cpu[i] for i, c in enumerate(configs) if c[0].startswith("prepared"))
    speedups = [naive_of.get(c[0], naive_avi) / median[i] for i, c in enumerate(configs) if c[1].startswith("artnet") and c[0].startswith("prepared")]
    print(
        f"\ntarget >= {TARGET_PREPARED} clips/s per worker from prepared data: best {best_prepared:.0f} per CPU-second"
        f" ({'met' if best_prepared >= TARGET_PREPARED else f'missed by {TARGET_PREPARED - best_prepared:.0f}'})"
    )
    print(f"target >= {TARGET_SPEEDUP:.0f}x the naive baseline (prepared inputs): {min(speedups):.1f}x - {max(speedups):.1f}x")


if __name__ == "__main__":
    main()
