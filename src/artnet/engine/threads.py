"""Threads of a process that may share its cores: how many, and how idle ones wait.

PyTorch's CPU kernels run on an OpenMP thread pool. Two defaults go wrong when artnet shares
the cores with other work (a test beside a training run, a Slurm or container allocation):

* Waiting. At the end of each parallel region, GNU OpenMP's idle threads spin for a while
  before they sleep. Alone, that saves a wake-up; beside another busy process, the spinning
  threads of each process take the cores the other's working threads need, and a network of
  many small operators (artnet's at demo size) slows down many times over. Passive waiting
  (``OMP_WAIT_POLICY=PASSIVE``) makes them sleep at once. The OpenMP runtime reads the
  variable once, when torch loads it: it must be set before ``import torch``, which the CLI
  does first thing (``python -m artnet`` and the ``artnet`` script import no torch before).
* Counting. The default thread count is the number of CPUs in the affinity mask: it ignores a
  cgroup CPU quota (a container limited to 4 CPUs on a 64-core node) and the other processes of
  the same job (torchrun's local processes), and so oversubscribes the cores.

:func:`configure_threads` fixes both, unless the user decided: ``OMP_WAIT_POLICY`` and
``OMP_NUM_THREADS`` are left as set, ``ARTNET_THREADS=N`` asks for N threads, and
``ARTNET_THREADS=torch`` leaves everything as PyTorch and OpenMP have it.

This module imports no torch at module level.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SETTING_ENV = "ARTNET_THREADS"  # auto (default) | torch | a number
CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")


@dataclass(frozen=True)
class CoreShare:
    """The cores this process may keep busy, and what limited them (for the log)."""

    cores: int
    why: str


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> float | None:
    """CPUs per period the process's cgroup (or one above it) may use; None when unlimited.

    cgroup v2: ``cpu.max`` (``"150000 100000"`` or ``"max 100000"``); v1: ``cpu.cfs_quota_us``
    (-1 = unlimited) over ``cpu.cfs_period_us``. The tightest limit on the way from the
    process's cgroup up to the hierarchy's root counts; a path that is not visible (a container
    sees its own cgroup as the root) is skipped.
    """
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    limits = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2 unified hierarchy: "0::/path" (mounted at root, or root/unified beside v1)
            for mount in (root, root / "unified"):
                limits += [_v2_limit(folder) for folder in _up_to(mount, path)]
        elif "cpu" in controllers.split(","):
            for mount in (root / controllers, root / "cpu", root / "cpu,cpuacct"):
                limits += [_v1_limit(folder) for folder in _up_to(mount, path)]
    if not lines:  # no /proc: look at the roots
        limits += [_v2_limit(root), _v1_limit(root / "cpu")]
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def _up_to(mount: Path, path: str) -> list[Path]:
    """``mount/a/b``, ``mount/a``, ``mount``: the cgroup and those above it, as far as they exist."""
    folder = mount / path.strip("/")
    chain = [folder, *folder.parents]
    return [f for f in chain[: chain.index(mount) + 1] if f.is_dir()] if mount in chain else []


def _v2_limit(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_limit(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def usable_cores(
    *,
    affinity: int | None = None,
    cpu_count: int | None = None,
    cgroup_root: Path = CGROUP_ROOT,
    self_cgroup: Path = SELF_CGROUP,
    environ: Mapping[str, str] = os.environ,
) -> CoreShare:
    """min(CPUs in the affinity mask, the cgroup's CPU limit rounded down, the machine's CPUs),
    divided by the processes of this job on this machine (``LOCAL_WORLD_SIZE``, set by torchrun);
    at least 1. The arguments stand in for what is read from the system (tests)."""
    if affinity is None:
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cpu_limit = cgroup_cpu_limit(cgroup_root, self_cgroup)
    cpu_count = cpu_count or os.cpu_count() or affinity
    cores, reasons = min(affinity, cpu_count), [f"{affinity} CPUs in the affinity mask" if affinity < cpu_count else f"{cpu_count} CPUs"]
    if cpu_limit is not None and math.floor(cpu_limit) < cores:
        cores = max(1, math.floor(cpu_limit))
        reasons.append(f"a cgroup limit of {cpu_limit:g} CPUs")
    local = int(environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    if local > 1:
        cores = max(1, cores // local)
        reasons.append(f"shared by {local} local processes")
    return CoreShare(cores, ", ".join(reasons))


@dataclass(frozen=True)
class ThreadSetup:
    threads: int  # PyTorch's intra-op threads now
    changed: bool  # whether that differs from PyTorch's own choice (worth a line in the log)
    message: str  # one line: how many, why, and how idle threads wait


def configure_threads(environ: Mapping[str, str] | None = None) -> ThreadSetup:
    """Set OpenMP's wait policy (before torch loads) and PyTorch's intra-op threads.

    Call it before anything imports torch, as the CLI does; later, the wait policy can no longer
    change (the message says so) but the thread count still does.
    """
    environ = os.environ if environ is None else environ
    setting = environ.get(SETTING_ENV, "auto").strip().lower()
    if setting == "torch":
        import torch

        return ThreadSetup(torch.get_num_threads(), False, f"threads: as PyTorch and OpenMP set them ({SETTING_ENV}=torch)")
    if setting != "auto" and not (setting.isdigit() and int(setting) > 0):
        from ..errors import ConfigError

        raise ConfigError(f"{SETTING_ENV}={setting!r}: write auto, torch, or a number of threads")

    if "OMP_WAIT_POLICY" in environ:
        waiting = f"OpenMP waits as OMP_WAIT_POLICY={environ['OMP_WAIT_POLICY']} says"
    elif "torch" in sys.modules:
        waiting = "OpenMP's wait policy as it was (torch was loaded before artnet could set it)"
    else:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        waiting = "idle OpenMP threads sleep at once (OMP_WAIT_POLICY=PASSIVE)"

    import torch

    default = torch.get_num_threads()
    if "OMP_NUM_THREADS" in environ:
        return ThreadSetup(default, False, f"threads: {default} (OMP_NUM_THREADS={environ['OMP_NUM_THREADS']}); {waiting}")
    if setting != "auto":
        threads, why = int(setting), f"{SETTING_ENV}={setting}"
    else:
        share = usable_cores(environ=environ)
        threads, why = share.cores, share.why
    if threads != default:
        torch.set_num_threads(threads)
    return ThreadSetup(threads, threads != default, f"threads: {threads} ({why}; PyTorch's default: {default}); {waiting}")
