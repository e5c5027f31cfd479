"""Helpers to run the CLI as a user would, in a subprocess, on the tiny recipe."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = "tiny"  # the packaged recipe, by name


def tiny_overrides(dataset, run_dir: Path, *extra: str) -> list[str]:
    return [f"data.root={dataset.root}", f"data.annotations={dataset.root}", f"output_dir={run_dir}", *extra]


def _child_env() -> dict[str, str]:
    """This checkout's code, one thread per process (several run side by side on 2 cores)."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def cli(
    *args: str, timeout: float = 300, check: bool = True, launcher: list[str] | None = None, file_limit: int | None = None
) -> subprocess.CompletedProcess:
    """``python -m artnet ARGS`` (or under ``launcher``, e.g. torchrun), with this checkout's code. ``file_limit``:
    the largest file it may write, in bytes (RLIMIT_FSIZE: a larger write fails as on a full disk)."""
    command = [*(launcher or [sys.executable]), "-m", "artnet", *map(str, args)]

    def limited():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    limit = None if file_limit is None else limited
    result = subprocess.run(command, env=_child_env(), capture_output=True, text=True, timeout=timeout, preexec_fn=limit)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def popen_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "artnet", *map(str, args)], env=_child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
