"""``artnet prepare`` and ``artnet check-data`` on a small folder of real clips (copied into tmp_path)."""

import shutil

import numpy as np
import pytest

from artnet.cli import main
from artnet.data import load_list, open_video
from artnet.data.prepare import EncodeOptions, convert_video, find_videos, prepare_videos, select_shard
from artnet.errors import DataError

CLIPS = {
    "SoccerJuggling": ["ucf101/v_SoccerJuggling_g23_c01.avi"],
    "wave": ["hmdb51/TrumanShow_wave_f_nm_np1_fr_med_26.avi", "hmdb51/RATRACE_wave_f_nm_np1_fr_goo_37.avi"],
    "again": ["asl_gestures/again.mkv"],
}


@pytest.fixture
def clips(media, tmp_path):
    root = tmp_path / "clips"
    for label, files in CLIPS.items():
        (root / label).mkdir(parents=True)
        for name in files:
            shutil.copy(media / name, root / label)
    return root


def test_reencoded_video_keeps_frames_and_has_short_gop(media, tmp_path):
    source = media / "hmdb51" / "RATRACE_wave_f_nm_np1_fr_goo_37.avi"
    target = tmp_path / "out.mp4"
    assert convert_video(str(source), str(target), EncodeOptions(gop=8)) == 72
    with open_video(source, backend="pyav") as original, open_video(target, backend="pyav") as prepared:
        assert prepared.num_frames == 72 and prepared.frame_size == (128, 170)
        assert prepared._key_indices == list(range(0, 72, 8))
        a, b = original.read(range(72)).astype(int), prepared.read(range(72)).astype(int)
    assert np.abs(a - b).mean() < 3  # same frames, in the same order, through a near-lossless encode
    assert np.abs(a - b).mean() < np.abs(a[:-1] - b[1:]).mean()  # not shifted by a frame


def test_frames_target_and_resume(clips, tmp_path):
    out = tmp_path / "frames"
    report = prepare_videos(clips, out, EncodeOptions(to="frames"), jobs=1)
    assert report.converted == 4 and not report.failed
    folder = out / "wave" / "TrumanShow_wave_f_nm_np1_fr_med_26"
    assert len(list(folder.glob("img_*.jpg"))) == 48
    with open_video(folder) as reader:
        assert reader.num_frames == 48 and reader.read([47]).shape == (1, 128, 170, 3)
    (out / "again" / ".again.partial-deadbeef").mkdir()  # a run killed mid-video leaves only this
    again = prepare_videos(clips, out, EncodeOptions(to="frames"))
    assert (again.converted, again.skipped) == (0, 4)
    assert again.frames == report.frames


def test_shards_cover_every_video_once():
    items = [f"v{i}" for i in range(10)]
    shards = [select_shard(items, (i, 3)) for i in range(3)]
    assert sorted(sum(shards, [])) == items and all(shards)
    with pytest.raises(DataError, match="shard"):
        select_shard(items, (3, 3))


def test_failed_video_is_reported_and_others_kept(clips, tmp_path):
    (clips / "wave" / "broken.avi").write_bytes(b"RIFF" + bytes(2000))
    report = prepare_videos(clips, tmp_path / "out", EncodeOptions(gop=16), jobs=2)
    assert report.converted == 4 and len(report.failed) == 1
    assert "broken.avi" in report.failed[0][1]
    assert len(find_videos(tmp_path / "out")) == 4


def test_cli_prepare_then_check_data(clips, tmp_path, capsys):
    out = tmp_path / "prepared"
    assert main(["prepare", str(clips), str(out), "--lists", "folders", "--jobs", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "4 converted" in printed and "lists/folders.txt (4 videos, 3 classes)" in printed
    listed = load_list(out, list_file=out / "lists" / "folders.txt")
    assert sorted((r.video_id, r.num_frames, r.label) for r in listed.records) == [
        ("RATRACE_wave_f_nm_np1_fr_goo_37", 72, 2),
        ("TrumanShow_wave_f_nm_np1_fr_med_26", 48, 2),
        ("again", 77, 1),
        ("v_SoccerJuggling_g23_c01", 240, 0),
    ]
    classes = tmp_path / "classes.txt"
    classes.write_text("SoccerJuggling\nagain\nwave\n")
    assert main(["check-data", str(out / "lists" / "folders.txt"), "--classes", str(classes), "--quiet", "--jobs", "2"]) == 0
    assert "folders.txt: OK" in capsys.readouterr().out

    bad = out / "lists" / "bad.txt"
    bad.write_text(
        "SoccerJuggling/v_SoccerJuggling_g23_c01.mp4 240 2\n"  # in the SoccerJuggling folder, labelled wave
        "wave/TrumanShow_wave_f_nm_np1_fr_med_26.mp4 49 2\n"  # one frame more than it holds
        "wave/gone.mp4 10 2\n"
    )
    (out / "wave" / "RATRACE_wave_f_nm_np1_fr_goo_37.mp4").write_bytes(b"\x00" * 100)
    with bad.open("a") as handle:
        handle.write("wave/RATRACE_wave_f_nm_np1_fr_goo_37.mp4 72 2\n")
    assert main(["check-data", str(bad), "--classes", str(classes), "--quiet", "--jobs", "1"]) == 1
    printed = capsys.readouterr().out
    assert "missing: wave/gone.mp4" in printed
    assert "unreadable:" in printed and "RATRACE" in printed
    assert "miscounted:" in printed and "the list says 49 frames, 48 decode" in printed
    assert "mislabelled:" in printed and "its path says 'SoccerJuggling'" in printed
    assert "bad.txt: 4 problem(s)" in printed


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "nope"), str(tmp_path / "out"), "--quiet"]) == 2
    assert "source folder not found" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path), str(tmp_path / "out"), "--shard", "4/2"]) == 2
    assert main(["check-data", str(tmp_path / "none.txt")]) == 2
    assert "annotation file not found" in capsys.readouterr().err


def test_check_data_reports_inputs_that_would_be_misread_naming_each_once(tmp_path, capsys):
    from PIL import Image

    from .conftest import encode, frame_folder

    root = tmp_path / "data"
    root.mkdir()
    encode(root / "good.mp4")
    frame_folder(root / "v_gap", [*range(1, 8), *range(9, 21)])
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(root / "photo.mp4", format="PNG")
    (root / "broken.mp4").write_bytes(b"\x00" * 100)
    listed = root / "list.txt"
    listed.write_text("good.mp4 36 0\nv_gap 20 0\nphoto.mp4 1 0\nbroken.mp4 10 0\n")
    assert main(["check-data", str(listed), "--root", str(root), "--clip-len", "8", "--quiet", "--jobs", "1"]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("unreadable:")]
    assert len(lines) == 3
    assert f"unreadable: {root / 'v_gap'}: frame img_00008.jpg is missing; 12 frame(s) after the gap" in lines[2]
    assert f"unreadable: {root / 'photo.mp4'}: a still image, not a video" in lines[1]
    for name, line in zip(["broken.mp4", "photo.mp4", "v_gap"], lines):
        assert line.count(name) == 1, line  # the file is named once

    listed.write_text("good.mp4 36 0\ngood.mp4 0\n")  # the second line's 0 would be taken for a label
    assert main(["check-data", str(listed), "--root", str(root), "--quiet"]) == 2
    assert "list.txt:2: a '<path> <label>' line among '<path> <num_frames> <label>' lines" in capsys.readouterr().err
    listed.write_text("\n")
    assert main(["check-data", str(listed), "--root", str(root), "--quiet"]) == 2
    assert "list.txt: lists no video" in capsys.readouterr().err


@pytest.mark.parametrize("rotation", [(90, False, False), (180, False, False), (270, False, False), (90, True, False)])
def test_prepared_output_of_a_rotated_video_is_upright_and_carries_no_rotation(tmp_path, rotation):
    import av
    from av.sidedata.sidedata import Type

    from .conftest import encode_rotated, upright_picture

    upright = upright_picture()
    source = encode_rotated(tmp_path / "phone.mov", upright, rotation)
    video, frames = tmp_path / "phone.mp4", tmp_path / "phone"
    assert convert_video(str(source), str(video), EncodeOptions(size=None)) == 4
    assert convert_video(str(source), str(frames), EncodeOptions(to="frames", size=None)) == 4
    with av.open(str(video)) as container:
        first = next(container.decode(video=0))
        assert first.side_data.get(Type.DISPLAYMATRIX) is None and (first.height, first.width) == (64, 40)
        stored = first.to_ndarray(format="rgb24").astype(int)
    assert np.abs(stored - upright).mean() < 3  # upright in the file itself, through a lossy encode
    for prepared in (video, frames):
        with open_video(prepared, size=None) as reader:
            assert reader.frame_size == (64, 40)
            assert np.abs(reader.read([3]).astype(int) - upright).mean() < 3, prepared


@pytest.fixture
def long_videos(tmp_path):
    """Four 300-frame videos: long enough to stop prepare in the middle of one."""
    from artnet.data.h264 import write_h264

    root = tmp_path / "long"
    (root / "a").mkdir(parents=True)
    ramp = np.arange(300, dtype=np.uint8)[:, None, None, None]
    for index in range(4):
        texture = np.random.default_rng(index).integers(0, 200, (1, 64, 80, 3), dtype=np.uint8)
        write_h264(root / "a" / f"v{index}.mp4", list(texture + ramp % 50), 25, {"crf": "30", "preset": "ultrafast"})
    return root


def _partials(folder):
    return [p for p in folder.rglob(".*") if ".partial-" in p.name]


@pytest.mark.parametrize("stop", ["ctrl-c", "sigkill"])
def test_an_interrupted_prepare_leaves_no_worker_and_a_rerun_cleans_up(long_videos, tmp_path, stop):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it): one line, exit 130, no worker
    traceback; SIGKILL of the command: its workers die with it. Either way the next run removes what the
    stopped one left half-written and completes."""
    import os
    import signal
    import subprocess
    import sys

    from ..conftest import ROOT, child_pids, default_ctrl_c, is_running, wait_until

    out = tmp_path / "frames"
    command = [sys.executable, "-m", "artnet", "prepare", str(long_videos), str(out), "--to", "frames", "--jobs", "2", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=default_ctrl_c
    )
    try:
        assert wait_until(lambda: bool(out.is_dir() and _partials(out)), timeout=120), "no video was being converted"
        workers = child_pids(process.pid)
        assert workers
        if stop == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.kill()
        _, stderr = process.communicate(timeout=60)
        assert wait_until(lambda: not any(map(is_running, workers)), timeout=10), "workers outlived the command"
    finally:
        for pid in [process.pid, *child_pids(process.pid)]:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
    if stop == "ctrl-c":
        assert (process.returncode, stderr) == (130, "artnet prepare: interrupted\n")
    else:
        assert process.returncode == -signal.SIGKILL
    (out / "a" / ".v3.partial-deadbeef").mkdir(exist_ok=True)  # and one for certain, whenever the stop came

    assert main(["prepare", str(long_videos), str(out), "--to", "frames", "--jobs", "2", "--quiet"]) == 0
    assert not _partials(out)
    for index in range(4):
        with open_video(out / "a" / f"v{index}") as reader:
            assert reader.num_frames == 300


def test_prepare_writes_into_its_own_folder_only(clips, tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["prepare", str(clips), str(foreign), "--to", "none", "--lists", "folders", "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"artnet prepare: error: {foreign}: not empty and not an output of artnet prepare (no .artnet-prepare.json);"
        " choose an empty or new folder, or --force to write into it\n"
    )
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]  # nothing written

    out = tmp_path / "prepared"
    assert main(["prepare", str(clips), str(out), "--to", "frames", "--size", "32x40", "--jobs", "1", "--quiet"]) == 0
    assert main(["prepare", str(clips), str(out), "--to", "frames", "--size", "32x40", "--jobs", "1", "--quiet"]) == 0  # resumed
    assert "0 converted, 4 already done" in capsys.readouterr().out
    assert main(["prepare", str(clips), str(out), "--to", "frames", "--size", "64x80", "--jobs", "1", "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"artnet prepare: error: {out}: prepared with other options (size [32, 40] there, [64, 80] now);"
        " choose another folder, or --force to mix them\n"
    )
    assert main(["prepare", str(clips), str(foreign), "--to", "none", "--lists", "folders", "--quiet", "--force"]) == 0
    assert (foreign / "notes.txt").read_text() == "mine" and (foreign / "lists" / "folders.txt").is_file()
