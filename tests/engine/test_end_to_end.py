"""Through the CLI, on real video files: train, kill, resume, test with every protocol, predict.

The runs are real processes (``python -m artnet``, ``torchrun``), reading real MP4 files of the
built-in dataset and writing real checkpoints.
"""

import json
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from artnet.engine.checkpoint import load_checkpoint
from artnet.engine.monitor import read_log

from .conftest import TINY_CONFIG, _child_env, cli, tiny_overrides


def _last_logged_iteration(run_dir) -> int:
    entries = [e for e in read_log(run_dir / "log.jsonl") if e["kind"] == "train"] if (run_dir / "log.jsonl").exists() else []
    return entries[-1]["iteration"] if entries else 0


# The training process kills itself with SIGKILL right after logging a chosen iteration: polling its
# log from here cannot land a kill between two checkpoints on a CPU where the tiny recipe's nine
# iterations take 0.2 s in all (seen on a Sapphire Rapids Xeon).
_KILLED_AFTER_LOGGING = """
import os, signal, sys
from artnet.cli import main
from artnet.engine.monitor import RunMonitor

record = RunMonitor.record

def record_then_die(self, kind, iteration, values):
    record(self, kind, iteration, values)
    if kind == "train" and iteration == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)

RunMonitor.record = record_then_die
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_and_resume_give_the_uninterrupted_result(synthetic, reference_run, tmp_path):
    run_dir = tmp_path / "killed"
    args = ("train", TINY_CONFIG, *tiny_overrides(synthetic, run_dir))
    kill_at = random.Random(7).choice([4, 5, 7, 8])  # not on a checkpoint (every 3 iterations)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_LOGGING.format(kill_at=kill_at), *args], env=_child_env(), capture_output=True, text=True, timeout=240
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (run_dir / "final.pt").exists()
    killed_at = _last_logged_iteration(run_dir)
    assert killed_at == kill_at

    resumed = cli(*args)
    assert "resumed from" in resumed.stdout
    resumed_from = int(resumed.stdout.split("at iteration ")[1].split()[0])
    assert resumed_from % 3 == 0 and resumed_from <= killed_at

    final = load_checkpoint(run_dir / "final.pt")["state_dict"]
    reference = load_checkpoint(reference_run / "final.pt")["state_dict"]
    assert final.keys() == reference.keys()
    for key in final:
        assert torch.equal(final[key], reference[key]), key
    losses = [e["loss"] for e in read_log(run_dir / "log.jsonl") if e["kind"] == "train"]
    reference_losses = [e["loss"] for e in read_log(reference_run / "log.jsonl") if e["kind"] == "train"]
    assert losses == reference_losses  # every iteration logged once, with the same loss
    metrics = [e for e in read_log(run_dir / "log.jsonl") if e["kind"] == "val"][-1]
    reference_metrics = [e for e in read_log(reference_run / "log.jsonl") if e["kind"] == "val"][-1]
    assert {k: metrics[k] for k in ("top1", "top5", "mean_class_accuracy")} == {k: reference_metrics[k] for k in ("top1", "top5", "mean_class_accuracy")}


@pytest.mark.parametrize("protocol, views", [("1clip", 1), ("25x10", 250), ("10x3", 30), ("25x1", 25)])
def test_every_test_protocol_reports(synthetic, reference_run, tmp_path, protocol, views):
    from artnet.cli import main

    out = tmp_path / protocol
    overrides = tiny_overrides(synthetic, reference_run, "test.view_batch=50")
    assert main(["test", str(TINY_CONFIG), *overrides, "--checkpoint", str(reference_run / "final.pt"), "--protocol", protocol, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["videos"] == 12 and metrics["missing"] == 0 and metrics["protocol"] == protocol
    assert metrics["avg"] == pytest.approx((metrics["top1"] + metrics["top5"]) / 2)
    scores = np.load(out / "scores.npz")
    assert scores["scores"].shape == (12, 12) and len(scores["video_ids"]) == 12
    assert (out / "per_class.csv").read_text().count("\n") == 13
    assert (out / "confusion.png").exists()


def test_clips_are_cut_as_the_checkpoint_was_trained(synthetic, reference_run, tmp_path, capsys):
    """A config written for another clip size tests the model on the clips it was trained on, and says so."""
    from artnet.cli import main

    def scores(name, *extra):
        out = tmp_path / name
        args = ["test", str(TINY_CONFIG), *tiny_overrides(synthetic, reference_run, *extra), "--checkpoint", str(reference_run / "final.pt")]
        assert main([*args, "--protocol", "25x1", "--out", str(out)]) == 0
        return np.load(out / "scores.npz")["scores"]

    as_trained = scores("as_trained")
    assert "not as the config says" not in "".join(capsys.readouterr())
    other = scores("other", "data.clip.clip_len=4", "data.clip.crop_size=24", "data.clip.normalization=kinetics")
    notes = "data.clip.clip_len 4 -> 8, data.clip.crop_size 24 -> 32, data.clip.normalization kinetics -> caffe"
    assert notes in "".join(capsys.readouterr())
    np.testing.assert_array_equal(other, as_trained)


def test_predict_names_classes_from_the_checkpoint(synthetic, reference_run):
    video, label = synthetic.clips("test")[0]
    folder = synthetic.root / synthetic.classes[0].name
    result = cli("predict", video, folder, "--checkpoint", reference_run / "final.pt", "--topk", "3", "--format", "json")
    predictions = json.loads(result.stdout)
    assert len(predictions) == 1 + 3  # the file, then the three clips of one class folder
    names = [c.name for c in synthetic.classes]
    for prediction in predictions:
        assert len(prediction["labels"]) == 3 and set(prediction["labels"]) <= set(names)
        assert prediction["scores"] == sorted(prediction["scores"], reverse=True) and 0 < sum(prediction["scores"]) <= 1.0001


def test_distributed_training_and_evaluation_match_one_process(synthetic, tmp_path):
    """2 gloo processes train and evaluate; one process re-evaluates the checkpoint: same metrics."""
    run_dir = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cli("train", TINY_CONFIG, *tiny_overrides(synthetic, run_dir, "solver.max_iter=4", "solver.lr_steps=[2]"), launcher=torchrun)
    distributed = [e for e in read_log(run_dir / "log.jsonl") if e["kind"] == "val"][-1]
    assert distributed["videos"] == 12 and distributed["missing"] == 0  # each video once, none padded

    for name, launcher in (("one", None), ("two", torchrun)):
        cli("test", TINY_CONFIG, *tiny_overrides(synthetic, run_dir), "--checkpoint", run_dir / "final.pt", "--out", tmp_path / name, launcher=launcher)
    single = json.loads((tmp_path / "one" / "metrics.json").read_text())
    double = json.loads((tmp_path / "two" / "metrics.json").read_text())
    keys = ("top1", "top5", "mean_class_accuracy", "clip_top1", "videos")
    assert {k: single[k] for k in keys} == {k: distributed[k] for k in keys} == {k: double[k] for k in keys}
    np.testing.assert_allclose(np.load(tmp_path / "one" / "scores.npz")["scores"], np.load(tmp_path / "two" / "scores.npz")["scores"], rtol=1e-4, atol=1e-5)


LIBRARY_TRAINING = """
import sys
import torch.distributed as dist
from artnet.engine.config import load_config
from artnet.engine.train import train

root, runs = sys.argv[1], sys.argv[2]
short = [f"data.root={root}", f"data.annotations={root}", "solver.max_iter=2", "solver.lr_steps=[1]", "data.num_workers=0"]
left = []
for run in ("first", "again"):  # the second joins a group again, in the store the first left its keys in
    train(load_config("tiny", [*short, f"output_dir={runs}/{run}"]))
    left.append(not dist.is_initialized())
dist.init_process_group("gloo")
train(load_config("tiny", [*short, f"output_dir={runs}/in_the_callers_group"]))
print(f"rank {dist.get_rank()}: left the groups it joined {all(left)}, kept the caller's {dist.is_initialized()}")
"""


def test_train_called_as_a_library_leaves_the_process_group_it_joined(synthetic, tmp_path):
    """Under torchrun, train() joins the processes' group and leaves it when it returns, so a program can
    train again; a group the program joined itself stays, for the program's own collectives."""
    script = tmp_path / "train_thrice.py"
    script.write_text(LIBRARY_TRAINING)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)]
    result = subprocess.run(
        [*command, str(synthetic.root), str(tmp_path / "runs")], env=_child_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in (0, 1):
        assert f"rank {rank}: left the groups it joined True, kept the caller's True" in result.stdout


def test_misspelt_key_and_wrong_checkpoint_are_one_line_errors(synthetic, reference_run, tmp_path):
    result = cli("train", TINY_CONFIG, "solver.base_lrr=0.1", check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "artnet train: error: override 'solver.base_lrr=0.1': unknown config key 'solver.base_lrr' (did you mean 'solver.base_lr'?)"

    other = tmp_path / "other"
    result = cli("test", TINY_CONFIG, *tiny_overrides(synthetic, other, "model.name=c3d_r18"), "--checkpoint", reference_run / "missing.pt", check=False)
    assert result.returncode == 2 and "no such checkpoint file" in result.stderr and result.stderr.count("\n") == 1

    bad_init = cli("train", TINY_CONFIG, *tiny_overrides(synthetic, other, "model.name=c3d_r18", f"train.init={reference_run / 'final.pt'}"), check=False)
    assert bad_init.returncode == 2
    assert "weights of artnet_r18_d, but the run trains c3d_r18" in bad_init.stderr and bad_init.stderr.strip().count("\n") == 0
