"""Real human motion: the demo's pipeline on the 20 ASL sign clips of ``../shared/media``.

There is one clip per word (two signers in one room), so there is no second clip to test on.
Each clip is cut in time instead: its first 60% of frames becomes the training video of its word,
the rest the test video. Frames are extracted with ``artnet prepare``'s library function, the
two parts are frame folders (symlinks, renumbered) in a folder per class, and training and the
25-clip test run through the same engine as every recipe.

    python examples/asl_gestures.py [--media ../shared/media/asl_gestures] [--work runs/asl] [--compare]

What it shows: real H.264 video (full-range colour, 640x480) through the whole pipeline, and how
far a small network gets from 20 short videos on a CPU. What it cannot show: generalisation to
other signers, rooms or takes. The test part of a clip is the same person, clothes and
background as its training part, and the end of a sign differs from its start, so the score
mixes recognising the scene with recognising the motion.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from artnet.data.prepare import EncodeOptions, prepare_videos
from artnet.demo import default_recipe
from artnet.engine.config import load_config
from artnet.engine.testing import run_test
from artnet.engine.train import train
from artnet.table import format_table

FRAME_PATTERN = "img_{:05d}.jpg"


def split_in_time(frames_root: Path, work: Path, train_share: float) -> tuple[Path, Path]:
    """``frames/<word>/`` -> ``train/<word>/<word>/`` (first part) and ``test/<word>/<word>/`` (rest)."""
    train_root, test_root = work / "train", work / "test"
    for folder in sorted(p for p in frames_root.iterdir() if p.is_dir()):
        frames = sorted(folder.glob("img_*.jpg"))
        cut = round(train_share * len(frames))
        for root, part in ((train_root, frames[:cut]), (test_root, frames[cut:])):
            target = root / folder.name / folder.name
            target.mkdir(parents=True, exist_ok=True)
            for index, frame in enumerate(part, start=1):
                link = target / FRAME_PATTERN.format(index)
                if not link.exists():
                    os.symlink(frame.resolve(), link)
    return train_root, test_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--media", default=str(Path(__file__).resolve().parents[2] / "shared" / "media" / "asl_gestures"))
    parser.add_argument("--work", default="runs/asl")
    parser.add_argument("--train-share", type=float, default=0.6)
    parser.add_argument("--compare", action="store_true", help="also C2D of the same size")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()

    work = Path(args.work)
    started = time.perf_counter()
    report = prepare_videos(args.media, work / "frames", EncodeOptions(to="frames", frame_pattern=FRAME_PATTERN), jobs=os.cpu_count() or 1)
    if report.failed:
        raise SystemExit(f"could not extract {report.failed}")
    train_root, test_root = split_in_time(work / "frames", work, args.train_share)

    rows = []
    for name in ("artnet_r18_d", "c2d_r18") if args.compare else ("artnet_r18_d",):
        run_dir = work / name
        config = load_config(
            default_recipe(),
            [
                "data.format=folders",
                f"data.root={train_root}",
                f"data.test_annotations={test_root}",
                f"data.frame_pattern={FRAME_PATTERN}",
                f"model.name={name}",
                f"output_dir={run_dir}",
                "solver.batch_size=20",  # one clip of every word per iteration
                "solver.max_iter=200",
                "solver.lr_steps=[150]",
                *args.overrides,
            ],
        )
        if not (run_dir / "final.pt").exists():
            train(config)
        (tested,) = run_test(config, str(run_dir / "final.pt"), protocol="25x1", out_dir=str(run_dir / "test_25x1"))
        metrics = tested.metrics
        rows.append((name, f"{metrics.top1:.1f}", f"{metrics.top5:.1f}", metrics.videos))
    print(format_table(("model", "top-1", "top-5", "test videos"), rows))
    print(f"20 words, chance 5%; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
