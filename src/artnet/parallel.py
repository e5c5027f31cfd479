"""``map_parallel``: one function over many tasks in worker processes, results as they complete.

Shared by ``prepare``, ``check-data`` and the built-in dataset's generator. The workers belong to the
command that started them: they ignore Ctrl-C (the terminal sends it to every process of the command;
the command alone reports it, without a traceback per worker), they are killed when the command stops
early (an error, Ctrl-C: no task runs on unseen), and they die with it when it is killed (on Linux, by
``prctl(PR_SET_PDEATHSIG)``), rather than work on for a command that is gone.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Iterator

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def map_parallel(function: Callable, tasks: list[tuple], jobs: int) -> Iterator[tuple[Any, Any]]:
    """``(first task argument, function(*task))`` in completion order, across ``jobs`` processes."""
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield task[0], function(*task)
        return
    with ProcessPoolExecutor(max_workers=jobs, initializer=_belong_to_parent) as pool:
        futures = {pool.submit(function, *task): task[0] for task in tasks}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:  # an error, Ctrl-C, or a caller that stopped early: the running tasks go too
            _kill_workers(pool)
            raise
        finally:
            pool.shutdown(cancel_futures=True)


def _belong_to_parent() -> None:
    """Worker initializer: ignore Ctrl-C, and die with the parent process (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        parent = multiprocessing.parent_process()
        if parent is not None and not parent.is_alive():  # it died before prctl took effect
            os._exit(1)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    terminate = getattr(pool, "kill_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()
