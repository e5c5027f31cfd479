"""benchmarks/gpu.py: its dry run (CPU, tiny sizes, gloo) goes through every cell kind, and a cell that
fails or does not fit in the time budget becomes a table cell instead of the end of the run."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from .conftest import benchmark_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def gpu_benchmark():
    with benchmark_script("gpu") as module:
        yield module


@pytest.mark.slow  # 20-30 s on 2 cores: every kind of cell once, at tiny sizes
def test_dry_run_measures_every_kind_of_cell(tmp_path):
    out = tmp_path / "dry.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--budget", "600", "--out", str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Machine: ") and "(dry run)" in lines[0]
    header = next(line for line in lines if line.startswith("| section"))
    assert [h.strip() for h in header.strip("|").split("|")] == ["section", "model", "path", "result", "peak GiB", "note"]
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[:3]) for line in lines if line.startswith("| ") and line is not header}
    expected = {("train", "artnet_r18_d", f"{p}{cl}") for p in ("fp32", "bf16", "fp16") for cl in ("", " + channels_last")}
    expected |= {("train", "r3d_18", "fp32"), ("train", "c2d_r18", "fp32"), ("train", "artnet_r18_d", "bf16 + channels_last + compile")}
    expected |= {("test 25x10", "artnet_r18_d", "fp32"), ("test 25x10", "artnet_r18_d", "bf16 + channels_last + compile")}
    workers = min(2, os.cpu_count())
    expected |= {("data", source, f"{mode}, {workers} workers") for source in ("prepared MP4", "prepared JPEG") for mode in ("train", "test 25x10")}
    assert expected <= rows
    ddp = [row for row in rows if row[0] == "DDP"]  # in the fastest eager path of the train rows
    assert len(ddp) == 1 and ddp[0][2] in {f"gloo, 1 process, {p}{cl}" for p in ("fp32", "bf16", "fp16") for cl in ("", " + channels_last")}

    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["machine"]["device"] == "cpu" and report["batch"] == 2
    cells = report["cells"]
    assert len(cells) == len(rows) and all(cell["status"] == "ok" and cell["value"] > 0 for cell in cells), cells
    units = {cell["section"]: cell["unit"] for cell in cells if cell["section"] != "data"}
    assert units == {"train": "clips/s", "test 25x10": "videos/s", "DDP": "clips/s"}
    loaders = [cell for cell in cells if cell["model"].startswith("prepared")]
    assert all(("keeps up" in cell["note"]) != ("starved" in cell["note"]) for cell in loaders)
    speedup = next(c for c in cells if c["section"] == "train" and c["path"] == "bf16 + channels_last")
    assert speedup["note"].endswith("x fp32")
    timed = [cell for cell in cells if cell["section"] in ("train", "test 25x10")]
    assert all(cell["kind"].endswith(" compiled") == ("compile" in cell["path"]) for cell in timed)  # estimated as compilations


def test_a_failing_cell_is_a_result_not_a_crash(gpu_benchmark):
    # a budget that no cell meets: what a cell's clean-up costs (TorchDynamo's reset and a garbage
    # collection, 30 s late in a long suite on a slow CPU) must not make the second cell a skip
    budget = gpu_benchmark.Budget(3600, {"train": 1.0})
    device = torch.device("cpu")

    def out_of_memory():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    def compile_failure():
        raise RuntimeError("backend='inductor' raised:\nCalledProcessError: g++ not found")

    oom = gpu_benchmark.run_cell(gpu_benchmark.Cell("train", "r3d_18", "fp32", "train"), budget, out_of_memory, device)
    assert oom.status == "out of memory" and oom.value is None
    failed = gpu_benchmark.run_cell(gpu_benchmark.Cell("train", "r3d_18", "fp32 + compile", "train"), budget, compile_failure, device)
    assert failed.status == "failed" and failed.note == "RuntimeError: backend='inductor' raised: CalledProcessError: g++ not found"
    table = gpu_benchmark.table([oom, failed])
    assert "| out of memory |" in table and "| failed " in table


def test_cells_that_do_not_fit_the_budget_are_skipped(gpu_benchmark):
    budget = gpu_benchmark.Budget(30, {"train": 5.0, "train compiled": 100.0})
    device, calls = torch.device("cpu"), []

    def measure():
        calls.append(1)
        return 1.0, ""

    compiled = gpu_benchmark.run_cell(gpu_benchmark.Cell("train", "m", "fp32 + compile", "train compiled"), budget, measure, device)
    eager = gpu_benchmark.run_cell(gpu_benchmark.Cell("train", "m", "fp32", "train"), budget, measure, device)
    assert compiled.status == "skipped" and eager.status == "ok" and len(calls) == 1
    assert budget.estimate("train") == eager.seconds  # measured cells replace the first guess
    assert len(gpu_benchmark.table([compiled]).splitlines()) == 2  # the header alone: skipped cells are counted under the table


def test_compiled_cells_are_estimated_by_the_longest_compilation_so_far(gpu_benchmark):
    """A compiled cell is mostly its compilation, whose time varies by path and model; training and test
    compile alike, so a test's first compiled cell is not estimated as an eager test."""
    budget = gpu_benchmark.Budget(600, {"train": 15.0, "train compiled": 150.0, "test": 10.0, "test compiled": 100.0})
    assert budget.estimate("test compiled") == 100.0
    for seconds in (40.0, 90.0, 50.0):
        budget.record("train compiled", seconds)
    budget.record("test", 3.0)
    assert budget.estimate("train compiled") == 90.0 and budget.estimate("test compiled") == 90.0
    assert budget.estimate("test") == 3.0 and budget.estimate("train") == 15.0


def test_a_cell_still_running_at_the_budgets_end_is_stopped_there(gpu_benchmark):
    """A compilation that outgrows its estimate: the cell ends at the deadline, as a result, and the run goes on."""
    budget = gpu_benchmark.Budget(0.3, {"train compiled": 0.1})
    ran, swallowed = [], []

    def compile_forever():
        started = time.monotonic()
        try:
            time.sleep(30)
        except Exception as error:  # noqa: BLE001  (a library's broad handler on the way must not keep the stop)
            swallowed.append(error)
        finally:
            ran.append(time.monotonic() - started)
        return 1.0, ""

    compiled = gpu_benchmark.Cell("train", "m", "fp32 + compile", "train compiled")
    cell = gpu_benchmark.run_cell(compiled, budget, compile_forever, torch.device("cpu"))
    assert ran[0] < 2 and swallowed == [] and cell.status == "over budget" and cell.value is None
    assert cell.note.startswith("stopped at the budget's end after 0 s (estimated 0 s)")
    assert "| over budget |" in gpu_benchmark.table([cell])
    cpu, later = torch.device("cpu"), gpu_benchmark.Budget(60, {"train": 1.0})
    slow_enough = lambda: (time.sleep(0.5), (2.0, ""))[1]  # past the first cell's deadline
    again = gpu_benchmark.run_cell(gpu_benchmark.Cell("train", "m", "fp32", "train"), later, slow_enough, cpu)
    assert again.status == "ok" and again.value == 2.0  # the alarm went off with the cell before
