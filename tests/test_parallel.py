"""``map_parallel``'s workers belong to the command: killed with it, quiet on Ctrl-C (real processes, real signals)."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from .conftest import ROOT, child_pids, default_ctrl_c, is_running, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from artnet.parallel import map_parallel

    def task(index, folder):
        open(os.path.join(folder, f"started-{os.getpid()}"), "w").close()
        time.sleep(120)  # far longer than the test: a worker still alive later is one that was not stopped
        return index

    if __name__ == "__main__":
        for _ in map_parallel(task, [(i, sys.argv[1]) for i in range(6)], jobs=2):
            pass
    """
)


def _start(tmp_path, **popen):
    script = tmp_path / "work.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)], env=env, stderr=subprocess.PIPE, text=True, preexec_fn=default_ctrl_c, **popen
    )
    assert wait_until(lambda: len(list(tmp_path.glob("started-*"))) == 2, timeout=60), "the workers did not start"
    workers = child_pids(process.pid)
    assert len(workers) == 2
    return process, workers


def test_workers_die_with_a_killed_parent(tmp_path):
    process, workers = _start(tmp_path)
    process.kill()  # SIGKILL: no chance to clean up, as the out-of-memory killer or `kill -9` would
    process.wait(timeout=30)
    try:
        assert wait_until(lambda: not any(map(is_running, workers)), timeout=10), "workers outlived their parent"
    finally:
        for pid in workers:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)


def test_ctrl_c_stops_the_workers_at_once_and_only_the_parent_reports_it(tmp_path):
    process, workers = _start(tmp_path, start_new_session=True)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal does: every process of the foreground group
    try:
        _, stderr = process.communicate(timeout=30)  # not the two minutes the running tasks would take
        assert wait_until(lambda: not any(map(is_running, workers)), timeout=10)
    finally:
        for pid in [process.pid, *workers]:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
    assert stderr.count("Traceback") == 1 and stderr.rstrip().endswith("KeyboardInterrupt")  # the parent's alone
