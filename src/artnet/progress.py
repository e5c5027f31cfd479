"""Progress that suits where it goes: a live bar on a terminal, plain lines in a log file.

Under Slurm, nohup or CI, stderr is a file, and a progress bar's redraws would fill it with
carriage-return updates; there :class:`LineProgress` prints one full line every ``interval`` seconds
(``ARTNET_PROGRESS_INTERVAL``, default 30) and a last one when it closes.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable, Iterator, TextIO


def progress_bar(
    iterable: Iterable | None = None,
    *,
    total: int,
    description: str = "",
    unit: str = "it",
    initial: int = 0,
    show: bool = True,
    file: TextIO | None = None,
):
    """A tqdm bar on a terminal, a :class:`LineProgress` elsewhere; ``show=False``: silent.

    Wraps ``iterable`` when given (iterate over the result), else is updated by hand
    (``update``, ``set_postfix``, ``write``, ``close``).
    """
    file = file or sys.stderr
    if show and _is_terminal(file):
        from tqdm import tqdm

        return tqdm(iterable, total=total, initial=initial, desc=description or None, unit=unit, dynamic_ncols=True, file=file, smoothing=0.1)
    return LineProgress(iterable, total=total, initial=initial, description=description, unit=unit, show=show, file=file)


class LineProgress:
    """``description: 120/800 it (15%), 2.1 it/s, 5 min 24 s left, loss 1.93`` every ``interval`` seconds."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: int,
        initial: int = 0,
        description: str = "",
        unit: str = "it",
        show: bool = True,
        file: TextIO | None = None,
        interval: float | None = None,
    ):
        self.iterable, self.total, self.n, self.unit = iterable, total, initial, unit
        self.description, self.show, self.file = description, show, file or sys.stderr
        self.interval = interval if interval is not None else float(os.environ.get("ARTNET_PROGRESS_INTERVAL", 30))
        self.postfix: dict[str, Any] = {}
        self._start_n, self._start = initial, time.monotonic()
        self._last = self._start
        self._closed = False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def update(self, steps: int = 1) -> None:
        self.n += steps
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._print()

    def set_postfix(self, values: dict[str, Any], refresh: bool = False) -> None:
        self.postfix = dict(values)

    def write(self, text: str, file: TextIO | None = None) -> None:
        if self.show:
            print(text, file=file or self.file, flush=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.n > self._start_n:
                self._print()

    def _print(self) -> None:
        if not self.show:
            return
        elapsed = time.monotonic() - self._start
        rate = (self.n - self._start_n) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.n}/{self.total} {self.unit}" + (f" ({self.n / self.total:.0%})" if self.total else "")]
        if rate > 0:
            parts.append(f"{rate:.3g} {self.unit}/s")
            if self.total and self.n < self.total:
                parts.append(f"{_duration((self.total - self.n) / rate)} left")
        parts += [f"{key} {value}" for key, value in self.postfix.items()]
        print(f"{self.description + ': ' if self.description else ''}{', '.join(parts)}", file=self.file, flush=True)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _is_terminal(file: TextIO) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False
