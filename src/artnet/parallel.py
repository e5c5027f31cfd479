"""``map_parallel``: one function over many tasks in worker processes, results as they complete.

Shared by ``prepare``, ``check-data`` and the built-in dataset's generator.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Iterator


def map_parallel(function: Callable, tasks: list[tuple], jobs: int) -> Iterator[tuple[Any, Any]]:
    """``(first task argument, function(*task))`` in completion order, across ``jobs`` processes."""
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield task[0], function(*task)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(function, *task): task[0] for task in tasks}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:  # a caller that stops early (an error, Ctrl-C) does not wait for the queued tasks
            pool.shutdown(cancel_futures=True)
