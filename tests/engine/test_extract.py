"""``artnet extract`` on the built-in dataset: 2 gloo processes write what 1 writes, a killed run resumes,
unreadable videos are reported; and a trained run's model folder quotes the test it passed."""

import csv
import json
import shutil
import signal
import sys
import time

import numpy as np
import pytest

from artnet.cli import main

from .conftest import TINY_CONFIG, cli, popen_cli, tiny_overrides

EXTRACT = ("--acceleration", "fp32", "--workers", "1")
IN_PROCESS = ("--acceleration", "fp32", "--workers", "0")  # decoding in this process (the test above runs workers)


def features(folder) -> dict[str, np.ndarray]:
    return {p.relative_to(folder).as_posix(): np.load(p) for p in sorted(folder.rglob("*.npy"))}


def index_rows(folder) -> list[dict[str, str]]:
    with open(folder / "index.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_extract_writes_only_into_its_own_folder_and_takes_nothing_unchecked_as_done(synthetic, reference_run, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    for path, _ in synthetic.clips("test")[:2]:
        shutil.copy(path, videos / path.name)
    name = f"{synthetic.clips('test')[0][0].stem}.npy"
    command = ["extract", str(videos), "--checkpoint", str(reference_run / "final.pt"), "--protocol", "1clip", *IN_PROCESS]

    shared = tmp_path / "shared"  # the user's folder, with a file at a video's features name
    shared.mkdir()
    (shared / "notes.txt").write_text("the user's")
    np.save(shared / name, np.arange(3))
    assert main([*command, "--out", str(shared)]) == 2
    assert capsys.readouterr().err == (
        f"artnet extract: error: {shared}: holds files that are not features of artnet extract ({name}, notes.txt); --force"
        " writes there all the same, or choose another --out\n"
    )
    assert sorted(p.name for p in shared.iterdir()) == [name, "notes.txt"] and np.load(shared / name).tolist() == [0, 1, 2]
    assert main([*command, "--out", str(shared), "--force"]) == 0  # nothing there is taken as done
    assert "2 videos: 2 written, 0 already there" in capsys.readouterr().out
    assert np.load(shared / name).shape == (64,) and (shared / "notes.txt").read_text() == "the user's"

    out = tmp_path / "features"
    assert main([*command, "--out", str(out)]) == 0
    np.save(out / name, np.zeros(3, np.int64))  # not features of this extraction: refused, never taken as done
    capsys.readouterr()
    assert main([*command, "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (  # after the line naming the acceleration: the settings need the model
        f"artnet extract: error: {out / name}: not features of this extraction (a per-video float32 .npy); --force extracts it"
        " again, or remove it"
    )
    assert not list(out.glob(".*.tmp"))
    assert main([*command, "--out", str(out), "--force"]) == 0
    assert "2 videos: 1 written, 1 already there" in capsys.readouterr().out
    assert [row["shape"] for row in index_rows(out)] == ["64", "64"]
    written = sorted(["extract.json", "index.csv", *(p.with_suffix(".npy").name for p in videos.iterdir())])
    assert sorted(p.name for p in out.iterdir()) == written  # no temporary file left

    listing = out / "index.csv"  # a list of the user's where the index goes: the output is never an input
    listing.write_text("".join(f"{path.name} 0\n" for path in videos.iterdir()))
    assert main(["extract", str(listing), "--root", str(videos), *command[2:], "--out", str(out), "--force"]) == 2
    assert capsys.readouterr().err.endswith(f"error: {listing}: is an input of this command; write the output elsewhere\n")


@pytest.mark.slow
def test_two_processes_write_what_one_writes_and_a_killed_run_resumes(synthetic, reference_run, tmp_path):
    checkpoint = reference_run / "final.pt"
    one, two, killed = tmp_path / "one", tmp_path / "two", tmp_path / "killed"
    result = cli("extract", synthetic.root, "--checkpoint", checkpoint, "--out", one, *EXTRACT)
    assert "36 videos: 36 written, 0 already there" in result.stdout and "video/s" in result.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    result = cli("extract", synthetic.root, "--checkpoint", checkpoint, "--out", two, *EXTRACT, launcher=torchrun)
    assert "36 videos: 36 written (18 + 18 by 2 processes), 0 already there" in result.stdout  # each video by one process

    single, double = features(one), features(two)
    assert len(single) == 36 and single.keys() == double.keys()
    assert {a.shape for a in single.values()} == {(64,)}  # the pooled features of the tiny recipe's model
    for name in single:
        np.testing.assert_allclose(double[name], single[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert index_rows(one) == index_rows(two)
    assert [row["features"] for row in index_rows(one)] == sorted(single) and all(row["shape"] == "64" for row in index_rows(one))

    process = popen_cli("extract", synthetic.root, "--checkpoint", checkpoint, "--out", killed, *EXTRACT)
    deadline = time.monotonic() + 240
    while len(list(killed.rglob("*.npy"))) < 3:
        assert process.poll() is None, f"extract ended before the kill:\n{process.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "extract wrote nothing"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    before = {p: p.stat().st_mtime_ns for p in killed.rglob("*.npy")}
    assert 3 <= len(before) < 36 and not (killed / "index.csv").exists()

    resumed = cli("extract", synthetic.root, "--checkpoint", checkpoint, "--out", killed, *EXTRACT)
    assert f"36 videos: {36 - len(before)} written, {len(before)} already there" in resumed.stdout
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in before.items())  # skipped, not rewritten
    assert not list(killed.rglob("*.tmp"))
    again = features(killed)
    assert again.keys() == single.keys() and all(np.array_equal(again[name], single[name]) for name in single)
    assert index_rows(killed) == index_rows(one)


@pytest.mark.slow
def test_per_clip_stages_lists_and_unreadable_videos(synthetic, reference_run, tmp_path, capsys):
    checkpoint = str(reference_run / "final.pt")
    videos = tmp_path / "videos"
    videos.mkdir()
    for path, _ in synthetic.clips("test")[:2]:
        shutil.copy(path, videos / path.name)
    (videos / "broken.mp4").write_bytes(b"not a video at all" * 100)

    out = tmp_path / "per_clip"  # a process of its own: what a user sees on stderr, from the decoding worker too
    command = ["extract", videos, "--checkpoint", checkpoint, "--out", out, "--per-clip", "--protocol", "10x3", *EXTRACT]
    result = cli(*command, check=False)
    assert result.returncode == 1  # every readable video written, the broken one reported
    assert "3 videos: 2 written, 0 already there, 1 unreadable" in result.stdout
    reports = [line for line in result.stderr.splitlines() if "broken.mp4" in line]
    assert len(reports) == 1 and "cannot open as a video" in reports[0], result.stderr  # once, naming the file
    rows = {row["video"]: row for row in index_rows(out)}
    broken = rows[str(videos / "broken.mp4")]
    assert broken["features"] == "" and "broken.mp4" in broken["error"]
    assert {a.shape for a in features(out).values()} == {(10, 64)}  # 10 clips, the 3 crops of each averaged

    entries = synthetic.clips("test")[:3]
    listing = tmp_path / "videos.txt"  # artnet's list format, paths relative to --root
    listing.write_text("".join(f"{path.relative_to(synthetic.root)} {label}\n" for path, label in entries))
    out = tmp_path / "layer2"
    command = ["extract", str(listing), "--root", str(synthetic.root), "--checkpoint", checkpoint, "--out", str(out), *IN_PROCESS]
    assert main([*command, "--stage", "layer2"]) == 0
    rows = index_rows(out)
    assert [(row["video"], row["label"]) for row in rows] == [(str(path), str(label)) for path, label in entries]
    assert [row["features"] for row in rows] == [
        path.relative_to(synthetic.root).with_suffix(".npy").as_posix() for path, _ in entries
    ]
    assert {a.shape for a in features(out).values()} == {(16,)}  # conv3_x of the tiny model: 128 x 0.125 channels, pooled

    capsys.readouterr()
    assert main([*command, "--stage", "layer3"]) == 2
    assert "holds features extracted with stage 'layer2', not 'layer3'" in capsys.readouterr().err
    unknown = [
        "extract",
        str(listing),
        "--root",
        str(synthetic.root),
        "--checkpoint",
        checkpoint,
        "--out",
        str(tmp_path / "x"),
        "--stage",
        "layer9",
    ]
    assert main(unknown) == 2
    assert "stage 'layer9': no such module in artnet_r18_d" in capsys.readouterr().err


@pytest.mark.slow
def test_a_trained_runs_model_folder_quotes_its_test_and_predicts_as_the_checkpoint(synthetic, reference_run, tmp_path, capsys):
    checkpoint = tmp_path / "final.pt"
    shutil.copy(reference_run / "final.pt", checkpoint)
    assert (
        main(["test", TINY_CONFIG, *tiny_overrides(synthetic, tmp_path), "--checkpoint", str(checkpoint), "--protocol", "1clip"])
        == 0
    )
    measured = json.loads((tmp_path / "test_1clip" / "metrics.json").read_text())

    folder = tmp_path / "tiny-synthetic"
    assert main(["export", str(checkpoint), "--format", "hf", "--out", str(folder)]) == 0
    config = json.loads((folder / "config.json").read_text())
    (evaluation,) = config["evaluations"]
    assert evaluation["source"] == "artnet test (test_1clip/metrics.json)" and evaluation["protocol"] == "1clip"
    assert evaluation["top1"] == measured["top1"] and evaluation["videos"] == 12
    assert config["trained"] == {"run": "tiny", "model": "artnet_r18_d", "iteration": 9}
    card = (folder / "README.md").read_text()
    row = next(line for line in card.splitlines() if "artnet test (test_1clip/metrics.json)" in line)
    assert [cell.strip() for cell in row.strip("|").split("|")][:3] == [
        "artnet test (test_1clip/metrics.json)",
        "1clip",
        f"{measured['top1']:.2f}",
    ]

    # --metrics: a report of these weights is quoted from wherever it lies; one of other weights is refused
    report = tmp_path / "test_1clip" / "metrics.json"
    same = reference_run / "final.pt"  # what the tested copy was copied from: the same tensors, another file
    quoted = tmp_path / "quoted"
    assert main(["export", str(same), "--format", "hf", "--out", str(quoted), "--metrics", str(report)]) == 0
    evaluations = json.loads((quoted / "config.json").read_text())["evaluations"]
    assert [(e["source"], e["top1"]) for e in evaluations] == [("artnet test (metrics.json)", measured["top1"])]
    other = reference_run / "checkpoints" / "iter_0000003.pt"
    capsys.readouterr()
    assert main(["export", str(other), "--format", "hf", "--out", str(tmp_path / "refused"), "--metrics", str(report)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith(f"{report}: measures {checkpoint}, not the weights of {other}; give the reports of artnet test on them")
    assert len(error.splitlines()) == 1 and not (tmp_path / "refused" / "config.json").exists()

    capsys.readouterr()
    predictions = []
    for source in (checkpoint, folder):
        command = ["predict", str(synthetic.clips("test")[0][0]), "--checkpoint", str(source), "--format", "json"]
        assert main([*command, "--protocol", "25x1", "--acceleration", "fp32", "--workers", "0"]) == 0
        predictions.append(json.loads(capsys.readouterr().out))
    assert predictions[0] == predictions[1] and len(predictions[0][0]["labels"]) == 5
