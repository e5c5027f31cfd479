"""The demo's training beside a second artnet job on the same cores: seconds per iteration, with
PyTorch's thread defaults and with artnet's (``artnet.engine.threads``).

    python benchmarks/shared_cores.py                     # both modes (about 5 min on a quiet 2-core machine)
    python benchmarks/shared_cores.py --alone 10 --rounds 1
    python benchmarks/shared_cores.py --mode one-thread:ARTNET_THREADS=1   # another mode beside the two

The main job is the packaged demo recipe (``artnet train demo``,
a log line every iteration) on a small built-in dataset. The side job is what a user starts
beside it: a tiny training run (the packaged ``tiny`` recipe), then ``artnet predict`` of a few
videos with its checkpoint. For each mode and round, the main job runs ``--warmup`` iterations,
then ``--alone`` iterations alone, then the side job starts; the main job's iterations that ran
wholly while the side job ran are its "beside" figure, and it is stopped when the side job ends.

Modes (the environment of both jobs; inherited OMP_*/GOMP_*/KMP_*/ARTNET_THREADS are cleared):

* ``torch``: ``ARTNET_THREADS=torch``: PyTorch's and OpenMP's defaults (threads = CPUs in the
  affinity mask, idle OpenMP threads spin before they sleep), as before artnet set them;
* ``artnet``: the default: threads from the usable cores; a job that finds the cores busy when it
  starts (the side job) waits passively and leaves the busy cores alone, one that finds them
  free (the main job) keeps OpenMP's default spinning;
* ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` in both jobs, whatever they find.

Modes run interleaved (round 1 of every mode, then round 2, ...) and the table gives medians, so a
busy neighbour slows every mode alike; on a shared machine, compare ratios within a run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from artnet.data.synthetic import generate  # noqa: E402
from artnet.demo import default_recipe  # noqa: E402
from artnet.engine.config import load_config  # noqa: E402
from artnet.machine import cpu_name  # noqa: E402
from artnet.table import format_table  # noqa: E402

TINY_RECIPE = "tiny"  # the packaged recipe
MODES = {"torch": {"ARTNET_THREADS": "torch"}, "artnet": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}
CLEARED = ("OMP_", "GOMP_", "KMP_", "MKL_NUM_THREADS", "ARTNET_THREADS")


def log(message: str) -> None:
    print(f"[shared_cores] {message}", file=sys.stderr, flush=True)


def environment(extra: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(CLEARED)}
    return {**env, "PYTHONPATH": str(ROOT / "src"), **extra}


def artnet_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "artnet", *map(str, args)]


def data_overrides(dataset) -> list[str]:
    return [f"data.root={dataset.root}", f"data.annotations={dataset.root}"]


def iteration_times(log_path: Path) -> list[float]:
    """Wall-clock time at the end of each logged training iteration, in order."""
    if not log_path.exists():
        return []
    times = []
    for line in log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # a line being written
            continue
        if entry.get("kind") == "train":
            times.append(entry["time"])
    return times


@dataclass
class Round:
    alone: list[float] = field(default_factory=list)  # seconds per iteration, main job alone
    beside: list[float] = field(default_factory=list)  # ... while the side job ran
    side_seconds: float = float("nan")  # the side job's wall time


def run_round(mode: str, env: dict[str, str], dataset, work: Path, warmup: int, alone: int, timeout: float) -> Round:
    run_dir = work / f"{mode}-{time.monotonic_ns()}"
    main_log = run_dir / "main" / "log.jsonl"
    errors = run_dir.with_suffix(".main.err")
    with open(errors, "w") as main_stderr:
        main = subprocess.Popen(
            artnet_command(
                "train",
                default_recipe(),
                *data_overrides(dataset),
                f"output_dir={run_dir / 'main'}",
                "solver.max_iter=1000000",
                "train.log_interval=1",
                "train.checkpoint_interval=1000000",
                "train.plots=false",
            ),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=main_stderr,
            start_new_session=True,  # its own process group: stopped with its DataLoader workers
        )
    result = Round()
    try:
        deadline = time.monotonic() + timeout
        while len(iteration_times(main_log)) < warmup + alone + 1:
            if main.poll() is not None:
                raise RuntimeError(f"the main job ended ({main.returncode}): see {errors}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the main job did not reach iteration {warmup + alone + 1} in {timeout:.0f} s")
            time.sleep(0.2)
        log(f"{mode}: main job alone done; side job starts")
        side_start = time.time()
        side_dir = run_dir / "side"
        for command in (
            artnet_command("train", TINY_RECIPE, *data_overrides(dataset), f"output_dir={side_dir}"),
            artnet_command("predict", *sorted(dataset.root.glob("*/*.mp4"))[:4], "--checkpoint", side_dir / "final.pt", "--protocol", "1clip"),
        ):
            done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=timeout)
            if done.returncode:
                raise RuntimeError(f"the side job failed: {' '.join(command[2:4])}: {done.stderr[-2000:]}")
        side_end = time.time()
        result.side_seconds = side_end - side_start
    finally:
        os.killpg(main.pid, signal.SIGTERM)
        main.wait()
    times = iteration_times(main_log)
    steps = list(itertools.pairwise(times))
    result.alone = [end - start for start, end in steps[warmup : warmup + alone]]
    result.beside = [end - start for start, end in steps if start >= side_start and end <= side_end]
    log(
        f"{mode}: alone {statistics.median(result.alone):.2f} s/it; beside {len(result.beside)} iterations"
        f" ({statistics.median(result.beside) if result.beside else float('nan'):.2f} s/it); side job {result.side_seconds:.1f} s"
    )
    return result


def main_job_summary() -> str:
    config = load_config(default_recipe())
    model = config.model
    return (
        f"batch {config.solver.batch_size}, {model.name} at width {model.width_mult:g},"
        f" {config.data.clip.summary()} clips, {config.data.num_workers} DataLoader workers"
    )


def parse_mode(text: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = text.partition(":")
    env = dict(item.split("=", 1) for item in assignments.split(",") if item)
    return name, env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=int, default=5, help="main-job iterations not counted (default 5)")
    parser.add_argument("--alone", type=int, default=20, help="main-job iterations timed alone per round (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every mode, interleaved (default 2)")
    parser.add_argument("--mode", action="append", default=[], metavar="NAME:VAR=VALUE,...", help="another mode: its environment")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a phase may take before the benchmark gives up")
    parser.add_argument("--work", default=None, help="folder for the dataset and runs (default: a temporary folder)")
    args = parser.parse_args(argv)
    modes = {**MODES, **dict(map(parse_mode, args.mode))}

    with tempfile.TemporaryDirectory(prefix="artnet-shared-cores-") as temporary:
        work = Path(args.work or temporary)
        work.mkdir(parents=True, exist_ok=True)
        dataset = generate(work / "data", clips_per_class=8, seed=0)
        results: dict[str, list[Round]] = {mode: [] for mode in modes}
        for round_index in range(args.rounds):
            for mode, extra in modes.items():
                log(f"round {round_index + 1}/{args.rounds}, mode {mode}")
                results[mode].append(run_round(mode, environment(extra), dataset, work, args.warmup, args.alone, args.timeout))

    rows = []
    for mode, rounds in results.items():
        alone = statistics.median(s for r in rounds for s in r.alone)
        beside_steps = [s for r in rounds for s in r.beside]
        beside = statistics.median(beside_steps) if beside_steps else float("nan")
        side = statistics.median(r.side_seconds for r in rounds)
        env = ", ".join(f"{k}={v}" for k, v in modes[mode].items()) or "(artnet's defaults)"
        rows.append([mode, env, f"{alone:.2f}", f"{beside:.2f}", f"{beside / alone:.1f}x", len(beside_steps), f"{side:.0f}"])
    headers = ["mode", "environment", "alone s/it", "beside s/it", "slowdown", "iterations beside", "side job s"]
    print(format_table(headers, rows))
    load = os.getloadavg()[0]
    print(
        f"\nmain job: the demo recipe ({main_job_summary()});"
        f" side job: tiny.yaml training (9 iterations) then predict of 4 videos (1clip). Medians over {args.rounds} round(s)."
    )
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, load average {load:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
