"""Faults of the machine during training, made for real: a killed DataLoader worker, a file that cannot be
written, a process of a 2-process gloo run that dies or hangs. Each stops the run with one line that says
how to go on, and the same command goes on.
"""

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from artnet.engine.checkpoint import load_checkpoint
from artnet.engine.monitor import read_log

from ..conftest import child_pids, is_running, wait_until
from .conftest import TINY_CONFIG, _child_env, cli, tiny_overrides

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the tests find processes through /proc")


def _logged_iteration(run_dir) -> int:
    entries = [e for e in read_log(run_dir / "log.jsonl") if e["kind"] == "train"] if (run_dir / "log.jsonl").exists() else []
    return entries[-1]["iteration"] if entries else 0


def _start(args, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "artnet", *map(str, args)]
    return subprocess.Popen(command, env=popen.pop("env", _child_env()), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _stop_all(*processes: subprocess.Popen) -> None:
    for process in processes:
        for pid in [process.pid, *child_pids(process.pid)]:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)


def _error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    return stderr.strip().splitlines()[-1]


def test_a_killed_dataloader_worker_stops_the_run_in_one_line_and_the_same_command_resumes(synthetic, tmp_path):
    run_dir = tmp_path / "run"
    args = ["train", TINY_CONFIG, *tiny_overrides(synthetic, run_dir, "solver.max_iter=30", "solver.lr_steps=[20]")]
    process = _start(args)
    try:
        assert wait_until(lambda: _logged_iteration(run_dir) >= 4 or process.poll() is not None, timeout=240)
        workers = child_pids(process.pid)  # while training, the DataLoader's workers are its only child processes
        assert process.poll() is None and len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)  # as the out-of-memory killer does
        _, stderr = process.communicate(timeout=120)
    finally:
        _stop_all(process)
    assert process.returncode == 2
    line = _error_line(stderr)
    pattern = (
        r"artnet train: error: a data loading process \(DataLoader worker, pid \d+\) died: killed, as the out-of-memory killer does,"
        r" or crashed; fewer data.num_workers or smaller batches need less memory; training stopped at iteration (\d+):"
        r" the same command resumes from iteration (\d+) \((.+)\)"
    )
    match = re.fullmatch(pattern, line)
    assert match, line
    stopped, saved = int(match.group(1)), int(match.group(2))
    assert saved % 3 == 0 and 3 <= saved <= stopped < 30

    resumed = cli(*args)
    assert f"resumed from {match.group(3)} at iteration {saved}" in resumed.stdout
    assert load_checkpoint(run_dir / "final.pt")["iteration"] == 30
    logged = [e["iteration"] for e in read_log(run_dir / "log.jsonl") if e["kind"] == "train"]
    assert logged == list(range(1, 31))  # each iteration once


def test_a_run_whose_loss_turns_nan_stops_in_one_line_and_goes_on_from_its_last_good_checkpoint(synthetic, tmp_path):
    """A learning rate far too high, from iteration 3 on: the weights of iteration 4 give a NaN loss at
    iteration 5, so the checkpoint of iteration 4 is no good; the run stops there rather than train on."""
    run_dir = tmp_path / "run"
    args = ["train", TINY_CONFIG, *tiny_overrides(synthetic, run_dir, "data.num_workers=0", "train.checkpoint_interval=1")]
    cli(*args, "solver.max_iter=3", "solver.lr_steps=[]")
    good = run_dir / "checkpoints" / "iter_0000003.pt"
    result = cli(*args, "solver.base_lr=1e20", check=False)
    assert result.returncode == 2
    assert _error_line(result.stderr) == (
        "artnet train: error: iteration 5: the training loss is nan: the run diverged and stopped; to go on from its last good"
        f" checkpoint (iteration 3), add train.resume={good} and a lower solver.base_lr (or solver.clip_grad_norm)"
    )
    assert _logged_iteration(run_dir) == 4  # not trained on
    result = cli(*args, f"train.resume={good}")
    assert f"resumed from {good} at iteration 3" in result.stdout
    assert load_checkpoint(run_dir / "final.pt")["iteration"] == 9


def test_a_checkpoint_that_cannot_be_written_stops_training_and_keeps_the_previous_one(synthetic, reference_run, tmp_path):
    """A real failed write: the command runs under a file size limit (RLIMIT_FSIZE; Python ignores SIGXFSZ,
    so write() fails with EFBIG partway through the checkpoint), which is what a full disk (ENOSPC) does to
    the writer. The finished reference run is continued to 12 iterations; iteration 12's checkpoint fails."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir)
    previous = run_dir / "checkpoints" / "iter_0000009.pt"
    before = previous.read_bytes()
    final_before = (run_dir / "final.pt").read_bytes()
    limit = ((run_dir / "best.pt").stat().st_size + len(before)) // 2  # best.pt (weights) fits, a training state does not
    args = ["train", TINY_CONFIG, *tiny_overrides(synthetic, run_dir, "solver.max_iter=12", "solver.lr_steps=[6]")]

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    process = _start(args, preexec_fn=limited)
    try:
        _, stderr = process.communicate(timeout=240)
    finally:
        _stop_all(process)
    assert process.returncode == 2
    target = run_dir / "checkpoints" / "iter_0000012.pt"
    assert _error_line(stderr) == (
        f"artnet train: error: {target}: not written (File too large); nothing was left; training stopped at iteration 12:"
        f" the same command resumes from iteration 9 ({previous})"
    )
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["iter_0000003.pt", "iter_0000006.pt", "iter_0000009.pt"]
    assert previous.read_bytes() == before and load_checkpoint(previous)["iteration"] == 9
    assert (run_dir / "final.pt").read_bytes() == final_before

    resumed = cli(*args)
    assert f"resumed from {previous} at iteration 9" in resumed.stdout
    assert load_checkpoint(run_dir / "final.pt")["iteration"] == 12


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _two_processes(synthetic, run_dir, *extra):
    """The two ranks of a gloo run, started as a cluster scheduler starts them (RANK, WORLD_SIZE, MASTER_*
    set per process, no torchrun watching them): only the processes themselves can notice a lost peer."""
    base = {**_child_env(), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": "2"}
    overrides = tiny_overrides(synthetic, run_dir, "solver.max_iter=300", "solver.lr_steps=[200]", "train.checkpoint_interval=100", *extra)
    return [_start(["train", TINY_CONFIG, *overrides], env={**base, "RANK": str(rank), "LOCAL_RANK": str(rank)}) for rank in (0, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0])
def test_when_one_process_dies_the_other_stops_in_one_line(synthetic, tmp_path, victim):
    run_dir = tmp_path / "run"
    processes = _two_processes(synthetic, run_dir)
    try:
        assert wait_until(lambda: _logged_iteration(run_dir) >= 2 or any(p.poll() is not None for p in processes), timeout=240)
        assert all(p.poll() is None for p in processes), processes[0].stderr.read()[-2000:]
        processes[victim].kill()
        killed = time.monotonic()
        survivor = processes[1 - victim]
        _, stderr = survivor.communicate(timeout=120)
        elapsed = time.monotonic() - killed
    finally:
        _stop_all(*processes)
    assert survivor.returncode == 2 and elapsed < 30, (survivor.returncode, elapsed)
    line = _error_line(stderr)
    assert re.fullmatch(
        r"artnet train: error: another process of this 2-process run stopped or stopped answering \(.+\);"
        r" training stopped at iteration \d+: the same command resumes from the start \(no checkpoint yet\)",
        line,
    ), line


@pytest.mark.slow
def test_when_one_process_hangs_the_other_stops_within_the_timeout(synthetic, tmp_path):
    """A process that stops answering without dying (SIGSTOP: swapped out, stuck on a file system): the other
    gives up after train.dist_timeout seconds instead of waiting for ever."""
    run_dir = tmp_path / "run"
    processes = _two_processes(synthetic, run_dir, "train.dist_timeout=10")
    try:
        assert wait_until(lambda: _logged_iteration(run_dir) >= 2 or any(p.poll() is not None for p in processes), timeout=240)
        assert all(p.poll() is None for p in processes)
        os.kill(processes[1].pid, signal.SIGSTOP)
        stopped = time.monotonic()
        _, stderr = processes[0].communicate(timeout=120)
        elapsed = time.monotonic() - stopped
    finally:
        _stop_all(*processes)
    assert processes[0].returncode == 2 and 10 <= elapsed < 60, (processes[0].returncode, elapsed)
    assert re.fullmatch(r"artnet train: error: another process of this 2-process run stopped or stopped answering \(.+\); .+", _error_line(stderr))
