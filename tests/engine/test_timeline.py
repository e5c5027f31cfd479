"""``artnet predict --timeline``: windows over a long video, scored as the clips they are, written as
CSV / JSON, a plot and an annotated video; the memory it takes does not grow with the video."""

import csv
import io
import json
import subprocess
import sys
import textwrap
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from PIL import Image

from artnet import create_model
from artnet.cli import main
from artnet.data import ClipSpec, open_video
from artnet.data.transforms import apply_crop, center_crop, normalize
from artnet.engine.checkpoint import model_payload, save_checkpoint
from artnet.engine.predict import Predictor

from ..conftest import calibrated_model, tsn_folder
from .conftest import ROOT, cli


def write_video(path, frames, rate=25, audio_seconds=0.0):
    """An H.264 MP4 of ``frames`` (an iterable of uint8 RGB arrays), with a silent audio track if asked."""
    with av.open(str(path), "w") as container:
        video = None
        sound = container.add_stream("aac", rate=48000) if audio_seconds else None
        for index, rgb in enumerate(frames):
            if video is None:
                video = container.add_stream("libx264", rate=rate)
                video.height, video.width = rgb.shape[:2]
                video.pix_fmt = "yuv420p"
                video.codec_context.options = {"preset": "ultrafast"}
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, rate)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            for start in range(0, int(audio_seconds * 48000), 1024):
                samples = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                samples.sample_rate, samples.pts = 48000, start
                container.mux(sound.encode(samples))
            container.mux(sound.encode())
    return path


@pytest.fixture(scope="module")
def long_video(synthetic, tmp_path_factory):
    """Four built-in clips one after the other (80 frames, 3.2 s), with sound."""
    clips = [path for path, label in synthetic.clips("test") if label in (0, 4, 6, 10)]
    frames = []
    for path in clips:
        with open_video(path, size=None) as reader:
            frames.extend(reader.iter_frames())
    return write_video(tmp_path_factory.mktemp("timeline") / "long.mp4", frames, audio_seconds=len(frames) / 25)


def test_each_window_is_scored_as_its_clip_alone(reference_run, long_video):
    predictor = Predictor(reference_run / "final.pt", device="cpu", acceleration="fp32")
    timeline = predictor.timeline(long_video, step=6, num_workers=2, view_batch=4)
    clip = predictor.clip
    assert timeline.num_frames == 80 and timeline.frame_rate == 25
    assert timeline.frames.tolist() == [[s, s + clip.clip_len - 1] for s in range(0, 80 - clip.clip_len + 1, 6)]
    with open_video(long_video, size=clip.frame_size) as reader, torch.no_grad():
        for window, (first, last) in enumerate(timeline.frames):
            frames = torch.from_numpy(reader.read(np.arange(first, last + 1)))
            view = apply_crop(frames, center_crop(*frames.shape[1:3], clip.crop_size), clip.crop_size)
            expected = predictor.model(normalize(view[None], clip.normalization)).softmax(dim=1)[0].numpy()
            np.testing.assert_allclose(timeline.probabilities[window], expected, rtol=1e-4, atol=1e-6)
    labels, scores = timeline.top(3)
    assert labels.shape == scores.shape == (len(timeline.frames), 3) and (np.diff(scores, axis=1) <= 0).all()


def test_the_command_writes_csv_json_a_plot_and_an_annotated_video(reference_run, long_video, tmp_path):
    checkpoint = reference_run / "final.pt"
    common = (
        "predict",
        long_video,
        "--checkpoint",
        checkpoint,
        "--timeline",
        "--stride",
        "16",
        "--topk",
        "2",
        "--acceleration",
        "fp32",
    )
    result = cli(*common, "--format", "csv", "--plot", tmp_path / "timeline.png", "--annotate", tmp_path / "annotated.mp4")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 5 * 2 and [r["first_frame"] for r in rows[::2]] == ["0", "16", "32", "48", "64"]
    assert rows[2]["start_s"] == "0.64" and rows[2]["end_s"] == "0.96" and rows[2]["rank"] == "1"
    with Image.open(tmp_path / "timeline.png") as plot:
        assert plot.size[0] > 400 and plot.size[1] > 200

    with av.open(str(long_video)) as source, av.open(str(tmp_path / "annotated.mp4")) as annotated:
        assert len(source.streams.audio) == 1 and len(annotated.streams.audio) == 0  # sound dropped
        assert annotated.streams.video[0].average_rate == source.streams.video[0].average_rate == 25
        original = np.stack([f.to_ndarray(format="rgb24") for f in source.decode(video=0)]).astype(int)
        drawn = np.stack([f.to_ndarray(format="rgb24") for f in annotated.decode(video=0)]).astype(int)
    assert drawn.shape == original.shape == (80, 40, 52, 3)
    change = np.abs(drawn - original).mean(axis=(0, 3))
    assert change[:12, :26].mean() > 5 * change[20:, :].mean()  # the label, top left; elsewhere the same frames

    record = json.loads(cli(*common, "--format", "json").stdout)
    assert record["frame_rate"] == 25 and record["num_frames"] == 80 and len(record["windows"]) == 5
    assert all(len(w["labels"]) == 2 and w["scores"][0] >= w["scores"][1] for w in record["windows"])


def test_a_flow_model_reads_the_flow_of_a_tsn_folder(tmp_path):
    """TSN's layout keeps RGB frames and flow side by side: the windows of a flow model are its flow."""
    clip = ClipSpec(clip_len=4, frame_size=(32, 40), crop_size=24, normalization="flow")
    folder = tsn_folder(tmp_path / "video", num_frames=12, size=(36, 44))
    model = calibrated_model("artnet_r18_d", clip, num_classes=3, width_mult=0.125)
    checkpoint = save_checkpoint(tmp_path / "flow.pt", model_payload(model, list("abc"), clip))
    predictor = Predictor(checkpoint, device="cpu", acceleration="fp32")
    timeline = predictor.timeline(folder, step=3, num_workers=0)
    assert timeline.num_frames == 11 and timeline.frames.tolist() == [[0, 3], [3, 6], [6, 9]]  # 11 flow frames, not 12 RGB
    with open_video(folder, size=clip.frame_size, modality="flow") as reader, torch.no_grad():
        for window, (first, last) in enumerate(timeline.frames):
            frames = torch.from_numpy(reader.read(np.arange(first, last + 1)))
            view = apply_crop(frames, center_crop(*frames.shape[1:3], clip.crop_size), clip.crop_size)
            expected = predictor.model(normalize(view[None], "flow")).softmax(dim=1)[0].numpy()
            np.testing.assert_allclose(timeline.probabilities[window], expected, rtol=1e-4, atol=1e-6)


def test_a_timeline_is_of_one_video(reference_run, long_video):
    result = cli("predict", long_video, long_video, "--checkpoint", reference_run / "final.pt", "--timeline", check=False)
    assert result.returncode == 2 and "--timeline takes one video, got 2" in result.stderr and result.stderr.count("\n") == 1


def test_the_plot_and_the_annotated_video_replace_nothing_unless_asked_and_never_the_video(
    reference_run, long_video, tmp_path, capsys
):
    common = ["predict", str(long_video), "--checkpoint", str(reference_run / "final.pt"), "--timeline", "--acceleration", "fp32"]
    before = long_video.read_bytes()
    assert main([*common, "--annotate", str(long_video), "--force"]) == 2
    error = f"artnet predict: error: {long_video}: is an input of this command; write the output elsewhere\n"
    assert capsys.readouterr() == ("", error)  # refused before the work: no window was scored
    assert long_video.read_bytes() == before

    mine, video = tmp_path / "mine.png", tmp_path / "annotated.mp4"
    mine.write_bytes(b"the user's picture")
    assert main([*common, "--plot", str(mine), "--annotate", str(video)]) == 2
    assert capsys.readouterr() == ("", f"artnet predict: error: {mine}: exists; --force replaces it\n")
    assert mine.read_bytes() == b"the user's picture" and not video.exists()

    # a write that fails (a file size limit, as a full disk) leaves the file that was there, and no temporary file
    for option, path in (("--plot", mine), ("--annotate", video)):
        path.write_bytes(b"the previous file")
        result = cli(*common, "--workers", "0", option, path, "--force", check=False, file_limit=4096)
        assert result.returncode == 2 and result.stdout  # the timeline itself was printed first
        last_line = result.stderr.splitlines()[-1]
        assert last_line == f"artnet predict: error: {path}: not written (File too large); the previous file is unchanged"
        assert path.read_bytes() == b"the previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4", "mine.png"]

    assert main([*common, "--plot", str(mine), "--force"]) == 0
    with Image.open(mine) as plot:
        assert plot.format == "PNG"


# The peak of this process, and of each DataLoader worker as the kernel reports it when the worker is
# reaped (os.wait4): RUSAGE_CHILDREN would also hold the children that importing torch runs, which report
# the size they were forked at, larger than a worker's.
PEAK_MEMORY = textwrap.dedent(
    """
    import os, resource, sys
    from artnet.engine.predict import Predictor

    workers = {}

    def waitpid(pid, options):
        reaped, status, usage = os.wait4(pid, options)
        if reaped:
            workers[reaped] = usage.ru_maxrss
        return reaped, status

    os.waitpid = waitpid
    Predictor(sys.argv[1], device="cpu", acceleration="fp32").timeline(sys.argv[2], step=16, num_workers=int(sys.argv[3]))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, len(workers), max(workers.values(), default=0))
    """
)


@pytest.fixture(scope="module")
def short_and_long(tmp_path_factory):
    """A model that decodes at 128 x 170 (65 KB a frame), and a video of 500 frames and one ten times as
    long (5000 frames, 200 s: 325 MB of frames if they were all held)."""
    folder = tmp_path_factory.mktemp("memory")
    model = create_model("c3d_r18", num_classes=5, width_mult=0.125, depths=[1, 1, 1, 1])
    checkpoint = save_checkpoint(
        folder / "model.pt", model_payload(model, list("abcde"), ClipSpec(clip_len=8, frame_size=(128, 170), crop_size=32))
    )
    noise = np.random.default_rng(0).integers(0, 256, (50, 48, 64, 3), dtype=np.uint8)
    lengths = {"short": 500, "long": 5000}
    videos = {name: write_video(folder / f"{name}.mp4", (noise[i % 50] for i in range(count))) for name, count in lengths.items()}
    return checkpoint, videos


@pytest.mark.slow
@pytest.mark.parametrize("num_workers", [0, 2])
def test_memory_does_not_grow_with_the_video(short_and_long, num_workers):
    """The video ten times as long takes no more memory at its peak, but for the windows' probabilities:
    neither in the process that scores the windows nor in the workers that decode them."""
    checkpoint, videos = short_and_long
    peaks = {}
    for name, video in videos.items():
        child = subprocess.run(
            [sys.executable, "-c", PEAK_MEMORY, str(checkpoint), str(video), str(num_workers)],
            env={"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "PATH": ""},
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        scoring, workers, decoding = map(int, child.stdout.split()[-3:])
        assert workers == num_workers, child.stdout  # every worker reaped, so counted
        peaks[name] = {"scoring": scoring / 1024, "workers": decoding / 1024}  # MiB
    assert peaks["long"]["scoring"] - peaks["short"]["scoring"] < 40, peaks
    assert peaks["long"]["workers"] - peaks["short"]["workers"] < 40, peaks
