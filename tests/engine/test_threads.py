"""Threads on shared cores: the usable cores (affinity, cgroup limits, local processes), what the user
set wins, the wait policy chosen from how busy the machine is before torch loads, and the watch
that gives a training run's cores up while other work runs and takes them back after."""

import functools
import os
import subprocess
import sys

import pytest
import torch

from artnet.engine.threads import BusyCores, CoreWatch, cgroup_cpu_limit, configure_threads, usable_cores
from artnet.errors import ConfigError

from .conftest import ROOT


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def cgroup(tmp_path):
    """A cgroup file system in a folder, and the /proc/self/cgroup that points into it."""
    root, self_cgroup = tmp_path / "sys_fs_cgroup", tmp_path / "proc_self_cgroup"
    root.mkdir()
    return root, self_cgroup


def test_cgroup_v2_limit_and_the_tightest_one_above(cgroup):
    root, self_cgroup = cgroup
    write(self_cgroup, "0::/job/step\n")
    write(root / "job" / "cpu.max", "400000 100000\n")
    write(root / "job" / "step" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(root, self_cgroup) == 4.0
    write(root / "job" / "step" / "cpu.max", "150000 100000\n")
    assert cgroup_cpu_limit(root, self_cgroup) == 1.5


def test_cgroup_v1_quota_over_period(cgroup):
    root, self_cgroup = cgroup
    write(self_cgroup, "4:memory:/slurm/job\n3:cpu,cpuacct:/slurm/job\n")
    folder = root / "cpu,cpuacct" / "slurm" / "job"
    write(folder / "cpu.cfs_quota_us", "200000\n")
    write(folder / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(root, self_cgroup) == 2.0
    write(folder / "cpu.cfs_quota_us", "-1\n")
    assert cgroup_cpu_limit(root, self_cgroup) is None


def test_hybrid_layout_and_a_container_that_sees_its_cgroup_as_the_root(cgroup):
    root, self_cgroup = cgroup
    write(self_cgroup, "1:cpu:/\n0::/kubepods/pod1/abc\n")  # the path is the host's; the container sees only the root
    write(root / "unified" / "cpu.max", "300000 100000\n")
    write(root / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(root / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(root, self_cgroup) == 3.0


def test_no_limit_anywhere(cgroup):
    root, self_cgroup = cgroup
    write(self_cgroup, "0::/\n")
    assert cgroup_cpu_limit(root, self_cgroup) is None


@pytest.mark.parametrize(
    "affinity, limit, local, cores, why",
    [
        (64, None, None, 64, "64 CPUs"),
        (8, None, None, 8, "8 CPUs in the affinity mask"),  # a Slurm allocation of 8 cores
        (64, "400000 100000", None, 4, "64 CPUs, a cgroup limit of 4 CPUs"),  # docker --cpus=4
        (64, "50000 100000", None, 1, "64 CPUs, a cgroup limit of 0.5 CPUs"),
        (8, None, "3", 2, "8 CPUs in the affinity mask, shared by 3 local processes"),
        (8, "400000 100000", "8", 1, "8 CPUs in the affinity mask, a cgroup limit of 4 CPUs, shared by 8 local processes"),
    ],
)
def test_usable_cores(cgroup, affinity, limit, local, cores, why):
    root, self_cgroup = cgroup
    write(self_cgroup, "0::/\n")
    if limit:
        write(root / "cpu.max", limit)
    environ = {"LOCAL_WORLD_SIZE": local} if local else {}
    share = usable_cores(affinity=affinity, cpu_count=64, cgroup_root=root, self_cgroup=self_cgroup, environ=environ)
    assert (share.cores, share.why) == (cores, why)


def test_usable_cores_of_this_process():
    assert 1 <= usable_cores().cores <= len(os.sched_getaffinity(0))


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_omp_num_threads_wins(restore_threads):
    torch.set_num_threads(1)
    setup = configure_threads({"OMP_NUM_THREADS": "1", "ARTNET_THREADS": "2", "LOCAL_WORLD_SIZE": "1"})
    assert torch.get_num_threads() == setup.threads == 1 and not setup.changed
    assert setup.message.startswith("threads: 1 (OMP_NUM_THREADS=1)")


def test_an_explicit_count_and_the_switch_to_leave_everything(restore_threads):
    default = torch.get_num_threads()
    assert configure_threads({"ARTNET_THREADS": "torch"}).message == "threads: as PyTorch and OpenMP set them (ARTNET_THREADS=torch)"
    assert torch.get_num_threads() == default
    setup = configure_threads({"ARTNET_THREADS": "1"})
    assert torch.get_num_threads() == setup.threads == 1 and setup.changed == (default != 1)
    assert "torch was loaded before artnet could set it" in setup.message  # in this process, pytest loaded torch first
    with pytest.raises(ConfigError, match="ARTNET_THREADS='many': write auto, torch, or a number of threads"):
        configure_threads({"ARTNET_THREADS": "many"})


def choose_in_a_fresh_process(busy):
    """configure_threads in a process that has not loaded torch, with the machine's load given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "ARTNET_THREADS", "LOCAL_WORLD_SIZE"))}
    env["PYTHONPATH"] = str(ROOT / "src")
    code = (
        "import os, sys; from artnet.engine.threads import configure_threads, usable_cores;"
        f"setup = configure_threads(busy={busy!r}); import torch;"
        "print(setup.threads, torch.get_num_threads(), usable_cores().cores, os.environ.get('OMP_WAIT_POLICY'), setup.watch);"
        "print(setup.message)"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    numbers, message = result.stdout.strip().splitlines()
    threads, torch_threads, cores, policy, watch = numbers.split()
    assert threads == torch_threads
    return int(threads), int(cores), policy, watch == "True", message


def test_free_cores_keep_openmps_spinning_and_busy_ones_make_it_sleep_and_step_aside():
    threads, cores, policy, watch, message = choose_in_a_fresh_process(0.1)
    assert threads == cores and policy == "None" and watch
    assert message.endswith("idle OpenMP threads spin a while, as OpenMP does (the cores are free)")
    threads, cores, policy, watch, message = choose_in_a_fresh_process(1.0)
    assert policy == "PASSIVE" and threads == max(1, cores - 1) and watch
    assert message.endswith("idle OpenMP threads sleep at once (OMP_WAIT_POLICY=PASSIVE: 1.0 CPUs busy with other work)")


def test_the_cli_chooses_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
    env.update(PYTHONPATH=str(ROOT / "src"), ARTNET_THREADS="1")  # a count unlike PyTorch's prints the line
    if torch.get_num_threads() == 1:
        env["ARTNET_THREADS"] = "2"
    result = subprocess.run([sys.executable, "-m", "artnet", "info"], env=env, capture_output=True, text=True, timeout=120)
    threads, error = result.stderr.strip().splitlines()
    assert threads.startswith(f"artnet info: threads: {env['ARTNET_THREADS']} (ARTNET_THREADS=")
    assert "torch was loaded before" not in threads and ("spin a while" in threads or "sleep at once" in threads)
    assert error == "artnet info: error: give a model name or --all" and result.returncode == 2


def fake_proc(folder, machine_busy, machine_idle, processes, children_lists=False):
    """A /proc with the machine's ticks and processes {pid: (ppid, ticks used)}; ``children_lists``:
    also each process's list of children (in the file of its main thread, as the kernel keeps it)."""
    write(folder / "stat", f"cpu  {machine_busy} 0 0 {machine_idle} 0 0 0 0 0 0\ncpu0 1 2 3 4\n")
    for pid, (ppid, used) in processes.items():
        write(folder / str(pid) / "stat", f"{pid} (python x) S {ppid} 1 1 0 -1 4194560 0 0 0 0 {used} 0 0 0 20 0\n")
        if children_lists:
            children = " ".join(str(child) for child, (parent, _) in processes.items() if parent == pid)
            write(folder / str(pid) / "task" / str(pid) / "children", f"{children} " if children else "")
            (folder / str(pid) / "task" / f"{pid + 1000}").mkdir(exist_ok=True)  # a thread that started no process


@pytest.mark.parametrize("children_lists", [True, False], ids=["children-lists", "parents-only"])
def test_busy_cores_count_other_processes_but_not_ours_and_our_workers(tmp_path, children_lists):
    cpus = os.cpu_count()
    make_proc = functools.partial(fake_proc, children_lists=children_lists)
    make_proc(tmp_path, 0, 0, {10: (1, 0), 11: (10, 0), 12: (11, 0), 20: (1, 0)})
    busy = BusyCores(tmp_path, pid=10)
    # 100 ticks of the machine: 60 idle; 30 used by us (10) and our worker's worker (12), 10 by process 20
    make_proc(tmp_path, 40, 60, {10: (1, 20), 11: (10, 0), 12: (11, 10), 20: (1, 10)})
    assert busy.reading() == pytest.approx(cpus * 0.10)
    make_proc(tmp_path, 40, 160, {10: (1, 20), 11: (10, 0), 12: (11, 10), 20: (1, 10)})
    assert busy.reading() == 0.0
    # the workers end and are reaped over an idle 100 ticks: their 10 move to their parent's cutime,
    # and are not taken for another process's work
    write(tmp_path / "stat", "cpu  40 0 0 260 0 0 0 0 0 0\n")
    for gone in (11, 12):
        (tmp_path / str(gone) / "stat").unlink()
    write(tmp_path / "10" / "stat", "10 (python x) S 1 1 1 0 -1 4194560 0 0 0 0 20 0 10 0 20 0\n")
    assert busy.reading() == 0.0
    assert BusyCores(tmp_path / "absent").reading() is None


def test_with_children_lists_only_the_family_is_read(tmp_path):
    """On a node of thousands of processes the watch reads a few files, not every process's."""
    fake_proc(tmp_path, 0, 0, {10: (1, 0), 11: (10, 0), 20: (1, 0)}, children_lists=True)
    busy = BusyCores(tmp_path, pid=10)
    fake_proc(tmp_path, 50, 50, {10: (1, 20), 11: (10, 10), 20: (1, 20)}, children_lists=True)
    write(tmp_path / "20" / "stat", "unreadable")  # were it read, the reading would fail
    assert busy.reading() == pytest.approx(os.cpu_count() * 0.2)


class ScriptedLoad:
    def __init__(self, readings):
        self.readings = list(readings)

    def reading(self):
        return self.readings.pop(0)


def test_the_watch_gives_cores_up_while_others_work_and_takes_them_back(restore_threads):
    torch.set_num_threads(2)
    watch = CoreWatch(2, interval=0.0, busy=ScriptedLoad([0.1, 0.6, 1.9, 1.2, None, 0.4, 0.2]))
    assert watch.check() is None and watch.check() is None and torch.get_num_threads() == 2  # 0.6: not clearly shared
    assert watch.check() == "threads: 2 -> 1 (1.9 CPUs busy with other work)" and torch.get_num_threads() == 1
    assert watch.check() is None and watch.check() is None and torch.get_num_threads() == 1
    assert watch.check() is None and torch.get_num_threads() == 1  # 0.4: not clearly free
    assert watch.check() == "threads: 1 -> 2 (0.2 CPUs busy with other work)" and torch.get_num_threads() == 2
    assert CoreWatch(2, interval=3600.0, busy=ScriptedLoad([])).check() is None  # not before its interval


def test_help_and_version_do_not_wait_to_sample_the_machine(monkeypatch, capsys):
    def sample(*_):
        raise AssertionError("sampled the machine")

    monkeypatch.setenv("ARTNET_THREADS", "auto")
    monkeypatch.setattr("artnet.engine.threads.busy_cpus", sample)
    from artnet.cli import main

    for flags in (["--help"], ["train", "-h"], ["--version"]):
        with pytest.raises(SystemExit) as stopped:
            main(flags)
        assert stopped.value.code == 0
    assert "usage: artnet" in capsys.readouterr().out
