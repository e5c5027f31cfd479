"""The package works without the repository.

The wheel is built from a copy of the checkout's sources (offline: ``--no-build-isolation``) and installed,
without its dependencies, into a fresh virtual environment outside the checkout; the dependencies (torch,
PyAV, ...) come from the environment running the tests, whose ``site-packages`` the new environment reads
through a ``.pth`` file (which does not run that environment's own ``.pth`` files, so an editable artnet
installed there stays out). No ``PYTHONPATH``, and the commands run from a folder outside the checkout:
``artnet`` is the wheel's.
"""

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from artnet.engine.config import list_recipes, recipes_root

from .conftest import ROOT


def run(command: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_the_wheel_lists_and_trains_packaged_recipes_outside_the_checkout(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", "--wheel-dir", tmp_path / "dist", "./source"], tmp_path)
    (wheel,) = (tmp_path / "dist").glob("artnet-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    recipes = {f"artnet/configs/{p.relative_to(recipes_root()).as_posix()}" for p in recipes_root().rglob("*.yaml")}
    assert len(recipes) > len(list_recipes()) >= 17 and recipes <= packaged  # every recipe and the _base files they share
    assert {"artnet/interop/hub.py", "artnet/data/resources/kinetics400_classes.txt", "artnet/py.typed"} <= packaged

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    python = venv / "bin" / "python"
    run([*pip, "--python", python, "install", "--no-deps", "--no-index", "--quiet", wheel], tmp_path)
    (own_site,) = (venv / "lib").glob("python3*/site-packages")
    (own_site / "dependencies.pth").write_text("".join(f"{path}\n" for path in site.getsitepackages()))

    work = tmp_path / "work"
    work.mkdir()
    where = run([python, "-c", "import artnet; print(artnet.__file__)"], work).stdout.strip()
    assert Path(where).is_relative_to(own_site) and not Path(where).is_relative_to(ROOT)
    artnet = venv / "bin" / "artnet"  # the wheel's console script

    assert "total" in run([artnet, "info", "artnet_r18_d"], work).stdout
    listed = run([artnet, "configs"], work).stdout
    assert all(f"| {name} " in listed for name in list_recipes()) and "| Table 2 | 69.2 / 88.3 " in listed

    run([artnet, "synthetic", "--out", "data", "--clips-per-class", "3", "--frames", "20", "--size", "40x52", "--workers", "1", "--quiet"], work)
    overrides = ["data.root=data", "data.annotations=data", "output_dir=run", "solver.max_iter=2", "solver.batch_size=4"]
    overrides += ["solver.lr_steps=[1]", "solver.warmup_iters=0"]  # a recipe's schedule must fit its iterations
    trained = run([artnet, "train", "synthetic/artnet_r18_d", *overrides, "train.eval_interval=0", "train.plots=false"], work)
    assert "finished 2 iterations" in trained.stdout + trained.stderr
    assert (work / "run" / "final.pt").is_file() and (work / "run" / "config.yaml").is_file()
