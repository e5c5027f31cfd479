"""Seeing a run: progress (a bar on a terminal, plain lines in a log), a JSONL log, TensorBoard
scalars and PNG curves at the end.

Only the main process writes; the others keep quiet.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..plots import pyplot, save_figure
from ..progress import progress_bar


class RunMonitor:
    def __init__(self, run_dir: Path, total: int, start: int, *, enabled: bool, tensorboard: bool, unit: str = "it"):
        self.run_dir = run_dir
        self.enabled = enabled
        self.log_path = run_dir / "log.jsonl"
        self.bar = progress_bar(total=total, initial=start, unit=unit, show=enabled)
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:  # TensorBoard is an optional extra
                self.message("tensorboard is not installed: scalars go to log.jsonl only (pip install 'artnet[tensorboard]')")

    def message(self, text: str) -> None:
        if self.enabled:
            self.bar.write(text, file=sys.stderr)

    def record(self, kind: str, iteration: int, values: dict[str, Any]) -> None:
        """Append one line to the JSONL log and the scalars to TensorBoard."""
        if not self.enabled:
            return
        try:
            with open(self.log_path, "a") as file:
                file.write(json.dumps({"kind": kind, "iteration": iteration, "time": time.time(), **values}) + "\n")
        except OSError as error:  # a write error names no file: say which
            raise OutputError(f"{self.log_path}: not written ({error.strerror or error})") from None
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{kind}/{key}", value, iteration)

    def progress(self, steps: int = 1, **postfix: Any) -> None:
        if not self.enabled:
            return
        self.bar.update(steps)
        if postfix:
            self.bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in postfix.items()}, refresh=False)

    def close(self, plots: bool = True) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
        if self.enabled and plots:
            plot_curves(self.log_path, self.run_dir)


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(log_path: Path, out_dir: Path) -> list[Path]:
    """``loss.png`` (training loss and lr) and ``accuracy.png`` (validation) from the JSONL log."""
    plt = pyplot()
    if plt is None:
        return []
    entries = read_log(log_path)
    written = []
    train = [e for e in entries if e["kind"] == "train"]
    if train:
        fig, loss_axis = plt.subplots(figsize=(7, 4))
        loss_axis.plot([e["iteration"] for e in train], [e["loss"] for e in train], label="loss", color="tab:blue")
        loss_axis.set_xlabel("iteration")
        loss_axis.set_ylabel("training loss")
        lr_axis = loss_axis.twinx()
        lr_axis.plot([e["iteration"] for e in train], [e["lr"] for e in train], color="tab:orange", label="lr")
        lr_axis.set_ylabel("learning rate")
        lr_axis.set_yscale("log")
        fig.tight_layout()
        save_figure(fig, out_dir / "loss.png")
        plt.close(fig)
        written.append(out_dir / "loss.png")
    evals = [e for e in entries if e["kind"] == "val"]
    if evals:
        fig, axis = plt.subplots(figsize=(7, 4))
        for key in ("top1", "top5", "mean_class_accuracy"):
            axis.plot([e["iteration"] for e in evals], [e[key] for e in evals], marker="o", label=key)
        axis.set_xlabel("iteration")
        axis.set_ylabel("validation accuracy (%)")
        axis.legend()
        fig.tight_layout()
        save_figure(fig, out_dir / "accuracy.png")
        plt.close(fig)
        written.append(out_dir / "accuracy.png")
    return written
