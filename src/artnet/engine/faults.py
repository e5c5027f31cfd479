"""Faults of the machine, not of the input: a killed DataLoader worker, a lost or silent peer process.

PyTorch reports each as a bare ``RuntimeError`` with a long message (and, from a collective, several
lines of C++ location). :func:`describe_fault` recognises them and says in one line what happened and
what helps; :func:`stopping_run` turns them, and a failed write, into a one-line
:class:`~artnet.errors.ArtnetError` that says how the run goes on.
"""

from __future__ import annotations

import contextlib
import re
from typing import Callable, Iterator

import torch.distributed as dist

from ..errors import FaultError, OutputError

_LOADER_WORKER = re.compile(r"DataLoader worker \(pids?(?:\(s\))? ([\d, ]+)\)")
# gloo names itself in most of its errors, but not in the one a pair closed by a timeout gives the next collective
_COLLECTIVE = re.compile(r"gloo|nccl|caused pair closure", re.IGNORECASE)


def describe_fault(error: BaseException) -> str | None:
    """One line for a fault of the machine; None for any other error."""
    if not isinstance(error, RuntimeError):
        return None
    text = str(error)
    worker = _LOADER_WORKER.search(text)
    if worker:
        return (
            f"a data loading process (DataLoader worker, pid {worker.group(1)}) died: killed, as the out-of-memory killer does,"
            " or crashed; fewer data.num_workers or smaller batches need less memory"
        )
    if dist.is_available() and dist.is_initialized() and (isinstance(error, dist.DistError) or _COLLECTIVE.search(text)):
        return f"another process of this {dist.get_world_size()}-process run stopped or stopped answering ({_gist(text)})"
    return None


@contextlib.contextmanager
def stopping_run(what_next: Callable[[], str]) -> Iterator[None]:
    """Faults and failed writes inside the block become one line ending with ``what_next()`` (e.g. how to resume)."""
    try:
        yield
    except OutputError as error:
        raise OutputError(f"{error}; {what_next()}") from None
    except RuntimeError as error:
        reason = describe_fault(error)
        if reason is None:
            raise
        raise FaultError(f"{reason}; {what_next()}") from None


def _gist(text: str) -> str:
    """gloo's ``[/path/pair.cc:545] Read error [addr]: Connection reset by peer. This is typically ...`` -> its middle."""
    line = " ".join(text.split())
    line = re.sub(r"^\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", line)
    return line.split(". This is typically")[0].rstrip(".")
