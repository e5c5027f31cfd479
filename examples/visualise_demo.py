"""The pictures of docs/visualise.md, made by the commands themselves from the demo's trained model.

    artnet demo                                   # once: trains runs/demo/artnet_r18_d (minutes)
    python examples/visualise_demo.py             # explain, timeline and serve pictures into docs/images/

1. ``artnet explain`` of two test videos of the built-in dataset (a temporal and an appearance class);
2. ``artnet predict --timeline`` of a video made of eight test clips one after the other, with its
   plot and an annotated video (a frame of which is kept as a PNG);
3. ``artnet serve`` on loopback and the page in headless chromium, after dropping a test video.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from artnet.data import open_video, synthetic  # noqa: E402
from artnet.data.h264 import write_h264  # noqa: E402

SEQUENCE = ("Rising", "Striped", "CycleRGB", "Approaching", "Dotted", "Falling", "Inflating", "Plain")


def artnet(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "artnet", *map(str, args)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise SystemExit(f"artnet {' '.join(map(str, args))} failed:\n{result.stderr[-2000:]}")
    print(f"$ artnet {' '.join(map(str, args))}\n{result.stdout.strip()}")
    return result.stdout


def test_clip(dataset, name: str, which: int = 0) -> Path:
    return [path for path, label in dataset.clips("test") if dataset.classes[label].name == name][which]


def sequence_video(dataset, out: Path) -> Path:
    """Eight test clips of different classes, one after the other, at the generated size and rate."""

    def frames():
        for name in SEQUENCE:
            with open_video(test_clip(dataset, name, 1), size=None) as reader:
                yield from reader.iter_frames()

    write_h264(out, frames(), dataset.params.fps, {"crf": "18", "preset": "veryfast"}, portable=False)
    return out


def screenshot_page(checkpoint: Path, video: Path, out: Path, block: tuple[str, ...]) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    sys.path.insert(0, str(ROOT))
    from tests.serve.test_browser import ADD_SOURCE, DROP, FLAGS

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "artnet", "serve", "--checkpoint", str(checkpoint), "--port", str(port), "--stride", "4", *block],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        stderr=subprocess.DEVNULL,
    )
    profile = tempfile.mkdtemp()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag.replace("--window-size=1400,1000", "--window-size=1250,1000"))
    browser = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                browser.get(f"http://127.0.0.1:{port}/")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        wait = WebDriverWait(browser, 300)
        wait.until(lambda b: "classes" in b.find_element(By.ID, "model").text)
        browser.execute_script(ADD_SOURCE)
        browser.find_element(By.ID, "test-source").send_keys(str(video))
        browser.execute_script(DROP)
        wait.until(lambda b: b.find_element(By.ID, "result").is_displayed())
        wait.until(
            lambda b: b.execute_script("return ['timeline', 'maps'].every(id => document.getElementById(id).naturalWidth > 0)")
        )
        browser.save_screenshot(str(out))
        from PIL import Image

        with Image.open(out) as shot:  # a page has few colours: a palette PNG, far smaller
            shot.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
        print(f"page: {browser.find_element(By.ID, 'status').text}")
    finally:
        browser.quit()
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="runs/demo/artnet_r18_d/final.pt")
    parser.add_argument("--data", default=None, help="the built-in dataset of the demo (default: its cache)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    parser.add_argument("--block", default=None, help="block of the explain pictures (default: explain's default)")
    args = parser.parse_args()
    if args.data is None:
        from artnet.demo import default_cache

        args.data = default_cache()
    dataset = synthetic.load(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    block = ("--block", args.block) if args.block else ()

    # Which test clip of each class: Grad-CAM's maps of a block are empty on some clips (ReLU of a
    # sum negative throughout; docs/visualise.md counts them), as conv1's are on the first Rising
    # clip of the demo's seed-0 model; the pictures show the second.
    for name, which in (("Rising", 1), ("Striped", 0)):
        artnet(
            "explain", test_clip(dataset, name, which), "--checkpoint", args.checkpoint, *block, "--out", out / f"explain_{name.lower()}",
            "--force",  # remaking the pictures is this script's job
        )

    with tempfile.TemporaryDirectory() as work:
        video = sequence_video(dataset, Path(work) / "sequence.mp4")
        annotated = Path(work) / "annotated.mp4"
        artnet(
            "predict",
            video,
            "--checkpoint",
            args.checkpoint,
            "--timeline",
            "--stride",
            "4",
            "--topk",
            "1",
            "--plot",
            out / "timeline.png",
            "--annotate",
            annotated,
            "--force",
        )
        with open_video(annotated, size=None) as reader:
            stills = reader.read(np.arange(8, reader.num_frames, 32))  # one frame of each clip
        from PIL import Image

        Image.fromarray(np.concatenate(list(stills), axis=1)).save(out / "annotated_frames.png")
        screenshot_page(Path(args.checkpoint), test_clip(dataset, "CycleBGR"), out / "serve.png", block)
    for picture in sorted(out.glob("*")):
        print(f"{picture}: {picture.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
