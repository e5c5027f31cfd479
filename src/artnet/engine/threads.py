"""Threads of a process that may share its cores: how many, and how idle ones wait.

PyTorch's CPU kernels run on an OpenMP thread pool. Two defaults go wrong when artnet shares
the cores with other work (a test beside a training run, a Slurm or container allocation):

* Waiting. At the end of each parallel region, GNU OpenMP's idle threads spin for a while
  before they sleep. Alone, that saves a wake-up per operator, which is much of the time of a
  network of many small operators (artnet's at demo size trains 1.6x faster spinning than
  sleeping). Beside another busy process, each process's spinning threads take the cores the
  other's working threads need, and such a network slows down ten times or more.
* Counting. The default thread count is the number of CPUs in the affinity mask: it ignores a
  cgroup CPU quota (a container limited to 4 CPUs on a 64-core node), the other processes of
  the same job (torchrun's local processes) and the cores other work keeps busy.

:func:`configure_threads`, which the CLI runs before torch loads, counts the usable cores
(affinity, cgroup limit, local processes) and looks at the machine: when other processes keep
cores busy at that moment, idle threads sleep at once (``OMP_WAIT_POLICY=PASSIVE``; OpenMP reads
it once, when torch loads) and the busy cores are left alone; otherwise OpenMP's default stands.
A long job (training) also keeps a :class:`CoreWatch`: when other work starts beside it, it
drops to one intra-op thread (one thread has no threads to wait for, so nothing spins), and it
takes its cores back when that work ends.

What the user set wins: ``OMP_WAIT_POLICY`` and ``OMP_NUM_THREADS`` are left as set (and the
watch stays off), ``ARTNET_THREADS=N`` asks for N threads, and ``ARTNET_THREADS=torch`` leaves
everything as PyTorch and OpenMP have it.

This module imports no torch at module level.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SETTING_ENV = "ARTNET_THREADS"  # auto (default) | torch | a number
CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")
PROC = Path("/proc")
SHARED_WHEN_BUSY = 0.75  # CPUs kept busy by other processes from which the cores count as shared
FREE_WHEN_BUSY = 0.25  # ... and below which a watched job takes its cores back (between the two: as it is)


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


def _cpu_ticks(proc: Path) -> tuple[int, int] | None:
    """(all ticks, idle ticks) of the machine since boot, from ``/proc/stat``; None where unreadable.
    Time stolen by a hypervisor counts as busy: those cores are not there to use either."""
    try:
        fields = (proc / "stat").read_text().split("\n", 1)[0].split()
        ticks = [int(value) for value in fields[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError, IndexError):
        return None
    return sum(ticks), ticks[3] + ticks[4]


def _family_ticks(proc: Path, root: int) -> int:
    """CPU ticks used so far by process ``root`` and its descendants (a DataLoader's workers).

    The family is walked down from ``root`` through the kernel's lists of each thread's children
    (``/proc/PID/task/TID/children``), a few files however many processes the machine runs; where
    the kernel keeps no such lists, every process's parent is read instead."""
    family = _descendants(proc, root)
    if family is None:
        parents = {pid: stat[0] for pid, stat in _process_stats(proc, [e.name for e in proc.iterdir()]).items()}
        family, grown = {root}, True
        while grown:
            children = {pid for pid, parent in parents.items() if parent in family and pid not in family}
            family |= children
            grown = bool(children)
    return sum(used for _, used in _process_stats(proc, family).values())


def _descendants(proc: Path, root: int) -> set[int] | None:
    """``root`` and the processes below it, from the children lists; None where there are none to read."""
    family, todo = {root}, [root]
    while todo:
        pid = todo.pop()
        try:
            tasks = list((proc / str(pid) / "task").iterdir())
        except OSError:
            if pid == root:
                return None
            continue  # gone meanwhile
        lists = [task / "children" for task in tasks]
        if pid == root and not any(path.exists() for path in lists):
            return None
        for path in lists:
            try:
                children = {int(child) for child in path.read_text().split()} - family
            except (OSError, ValueError):
                continue
            family |= children
            todo += children
    return family


def _process_stats(proc: Path, pids) -> dict[int, tuple[int, int]]:
    """{pid: (parent, CPU ticks used)} of the processes among ``pids`` that can be read."""
    stats = {}
    for pid in pids:
        if not str(pid).isdigit():
            continue
        try:
            stat = (proc / str(pid) / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) ": state ppid ... utime stime cutime cstime
        # with the children it has reaped (cutime, cstime): a DataLoader's workers of the last epoch
        # leave the family, their time does not
        stats[int(pid)] = (int(fields[1]), sum(int(value) for value in fields[11:15]))
    return stats


class BusyCores:
    """CPUs kept busy by processes other than this one and its children, over the time since
    the last reading (``/proc``); None where it cannot be read (not Linux)."""

    def __init__(self, proc: Path = PROC, pid: int | None = None) -> None:
        self.proc, self.pid = proc, os.getpid() if pid is None else pid
        self.last = self._read()

    def _read(self) -> tuple[int, int, int] | None:
        machine = _cpu_ticks(self.proc)
        if machine is None:
            return None
        try:
            family = _family_ticks(self.proc, self.pid)
        except (OSError, ValueError, IndexError):
            return None
        return (*machine, family)

    def reading(self) -> float | None:
        now, before = self._read(), self.last
        self.last = now
        return _busy_between(before, now)


def _busy_between(before: tuple[int, ...] | None, after: tuple[int, ...] | None) -> float | None:
    """CPUs busy between two readings of (all ticks, idle ticks[, ticks of ours, not counted])."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    total, idle, *ours = (a - b for a, b in zip(after, before))
    return max(0.0, (os.cpu_count() or 1) * (total - idle - sum(ours)) / total)


def busy_cpus(interval: float = 0.1, proc: Path = PROC) -> float | None:
    """CPUs that other processes keep busy now: the machine's non-idle time over a short sleep of
    this process, which so adds nothing (and has no children yet: no scan of the processes)."""
    before = _cpu_ticks(proc)
    time.sleep(interval)
    return _busy_between(before, _cpu_ticks(proc))


def cores_shared(busy: float | None) -> bool:
    """Whether other processes keep enough CPU busy (``busy``, None: unknown) to count the cores as shared."""
    return busy is not None and busy >= SHARED_WHEN_BUSY


@dataclass(frozen=True)
class ThreadSetup:
    threads: int  # PyTorch's intra-op threads now
    changed: bool  # whether that differs from PyTorch's own choice (worth a line in the log)
    message: str  # one line: how many, why, and how idle threads wait
    watch: bool = False  # whether a long job should keep a CoreWatch (artnet chose the count)


def configure_threads(environ: Mapping[str, str] | None = None, busy: float | None = None) -> ThreadSetup:
    """Set OpenMP's wait policy (before torch loads) and PyTorch's intra-op threads.

    Call it before anything imports torch, as the CLI does; later, the wait policy can no longer
    change (the message says so) but the thread count still does. ``busy`` stands in for
    :func:`busy_cpus` (tests); the machine is sampled only when a choice depends on it.
    """
    environ = os.environ if environ is None else environ
    setting = environ.get(SETTING_ENV, "auto").strip().lower()
    if setting == "torch":
        import torch

        return ThreadSetup(torch.get_num_threads(), False, f"threads: as PyTorch and OpenMP set them ({SETTING_ENV}=torch)")
    if setting != "auto" and not (setting.isdigit() and int(setting) > 0):
        from ..errors import ConfigError

        raise ConfigError(f"{SETTING_ENV}={setting!r}: write auto, torch, or a number of threads")

    choose_waiting = "OMP_WAIT_POLICY" not in environ and "torch" not in sys.modules
    choose_count = "OMP_NUM_THREADS" not in environ and setting == "auto"
    alone_in_job = int(environ.get("LOCAL_WORLD_SIZE", "1") or 1) == 1  # torchrun's siblings start together: not others
    if busy is None and alone_in_job and (choose_waiting or choose_count):
        busy = busy_cpus()
    shared = cores_shared(busy)
    if "OMP_WAIT_POLICY" in environ:
        waiting = f"OpenMP waits as OMP_WAIT_POLICY={environ['OMP_WAIT_POLICY']} says"
    elif "torch" in sys.modules:
        waiting = "OpenMP's wait policy as it was (torch was loaded before artnet could set it)"
    elif shared:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        waiting = f"idle OpenMP threads sleep at once (OMP_WAIT_POLICY=PASSIVE: {busy:.1f} CPUs busy with other work)"
    else:
        waiting = "idle OpenMP threads spin a while, as OpenMP does (the cores are free)"

    import torch

    default = torch.get_num_threads()
    if "OMP_NUM_THREADS" in environ:
        return ThreadSetup(default, False, f"threads: {default} (OMP_NUM_THREADS={environ['OMP_NUM_THREADS']}); {waiting}")
    if setting != "auto":
        threads, why = int(setting), f"{SETTING_ENV}={setting}"
    else:
        share = usable_cores(environ=environ)
        threads, why = leave_busy_cores(share.cores, busy), share.why
        if threads < share.cores:
            why += f", {busy:.1f} busy with other work"
    if threads != default:
        torch.set_num_threads(threads)
    message = f"threads: {threads} ({why}; PyTorch's default: {default}); {waiting}"
    setup = ThreadSetup(threads, threads != default, message, watch=setting == "auto" and alone_in_job and choose_waiting)
    global _setup
    _setup = setup
    return setup


_setup: ThreadSetup | None = None  # what configure_threads chose in this process


def core_watch() -> CoreWatch | None:
    """A CoreWatch for a long job, where artnet chose this process's threads (the CLI); else None."""
    if _setup is None or not _setup.watch:
        return None
    return CoreWatch(usable_cores().cores)


def leave_busy_cores(cores: int, busy: float | None) -> int:
    """The threads to run on ``cores`` usable cores while others keep ``busy`` CPUs busy."""
    return max(1, cores - round(busy)) if cores_shared(busy) else cores


class CoreWatch:
    """Keeps a long job's intra-op threads off the cores other work takes while it runs.

    :meth:`check`, called once per iteration, reads the machine every ``interval`` seconds: while
    other processes keep cores busy, the job runs on the cores left (one thread at least), and it
    takes its ``cores`` back when they are free again. The messages are for the log.
    """

    def __init__(self, cores: int, interval: float = 2.0, busy: BusyCores | None = None) -> None:
        import torch

        self.cores, self.interval, self.busy = cores, interval, busy or BusyCores()
        self.threads, self.next_look = torch.get_num_threads(), time.monotonic() + interval

    def check(self) -> str | None:
        now = time.monotonic()
        if now < self.next_look:
            return None
        self.next_look = now + self.interval
        busy = self.busy.reading()
        if busy is None:
            return None
        if FREE_WHEN_BUSY <= busy < SHARED_WHEN_BUSY:
            return None  # neither clearly shared nor clearly free: no flapping on noise
        threads = leave_busy_cores(self.cores, busy)
        if threads == self.threads:
            return None
        import torch

        torch.set_num_threads(threads)
        before, self.threads = self.threads, threads
        return f"threads: {before} -> {threads} ({busy:.1f} CPUs busy with other work)"
