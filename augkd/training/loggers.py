"""Where a run's per-epoch record goes besides ``metrics.jsonl``: one plain line, and the
experiment trackers.

* The line: ``epoch 3/8  lr 0.05  train loss 0.8123 top-1 74.2%  test loss 0.6543 top-1 80.1%
  4.1 s  w_task 0.31 w_distill 0.69`` (:func:`epoch_line`), printed and appended to
  ``RUN_DIR/train.log`` with every other line of the run (:class:`RunLog`), whether or not the
  output is a terminal. Progress bars are drawn only on a terminal (:func:`show_bars`).
* The trackers: TensorBoard (:mod:`augkd.training.tensorboard`, ``--tensorboard``) and
  Weights & Biases (:mod:`augkd.training.wandb_log`, ``--wandb``) serve one interface,
  :class:`EpochLogger`: ``write(record)`` once per epoch, after the epoch's metrics.jsonl line and
  before its checkpoint, and ``close()`` at the end. :func:`open_loggers` opens the ones a
  config asks for.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

TRAIN_LOG = "train.log"


class EpochLogger(Protocol):
    """A sink of per-epoch records (``metrics.jsonl``'s objects, ``epoch`` is the step)."""

    def write(self, record: dict[str, Any]) -> None:
        """Record one finished epoch."""

    def close(self) -> None:
        """Flush and release; called once, also when the run stops early."""


def open_loggers(cfg, run, last_epoch: int) -> list[EpochLogger]:
    """The trackers ``cfg`` asks for (``tensorboard``, ``wandb``) on ``run``, continuing after
    ``last_epoch`` (0 for a fresh run)."""
    loggers: list[EpochLogger] = []
    try:
        if cfg.tensorboard:
            from augkd.training.tensorboard import EpochScalars

            loggers.append(EpochScalars(run, last_epoch))
        if cfg.wandb:
            from augkd.training.wandb_log import WandbRun

            loggers.append(WandbRun(run, cfg, last_epoch))
    except BaseException:
        for logger in loggers:
            logger.close()
        raise
    return loggers


def show_bars(progress: bool, stream=None) -> bool:
    """Whether to draw progress bars: asked for (``progress``) and ``stream`` (stderr, where
    tqdm draws) is a terminal. In a log file or a pipe the bars' escape codes are noise; the
    per-epoch lines say the same."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(progress and isatty is not None and isatty())


def _number(value: float) -> str:
    return f"{value:.4g}"


def epoch_line(record: dict[str, Any], epochs: int, label: str = "",
               evaluated_on: str = "test") -> str:
    """One epoch in one line: epoch, lr, train loss(es) and top-1, test loss and top-1, the
    seconds it took (and the training pass's images per second) and the balancer's mean
    weights (student runs).

    ``label`` prefixes the line (e.g. ``AGB search, lambda 0.3:``); ``evaluated_on`` names what
    the ``test_*`` figures are of (``held-out`` in a search). A teacher's train loss is its
    cross-entropy; a student's is shown as its ``task`` and ``distill`` terms.
    """
    parts = [f"epoch {record['epoch']}/{epochs}", f"lr {_number(record['lr'])}"]
    train = []
    if "train_distill" in record:
        train += [f"task {record['train_task']:.4f}", f"distill {record['train_distill']:.4f}"]
    elif "train_task" in record:
        train.append(f"loss {record['train_task']:.4f}")
    if "train_top1" in record:
        train.append(f"top-1 {record['train_top1']:.2f}%")
    if train:
        parts.append("train " + " ".join(train))
    parts.append(f"{evaluated_on} loss {record['test_loss']:.4f} "
                 f"top-1 {record['test_top1']:.2f}%")
    if "epoch_time_s" in record:
        speed = (f" ({record['train_images_per_s']:,.0f} img/s)"
                 if "train_images_per_s" in record else "")
        parts.append(f"{record['epoch_time_s']:.1f} s{speed}")
    weights = [f"{k.removeprefix('balance_')} {_number(record[k])}"
               for k in ("balance_w_task", "balance_w_distill") if k in record]
    if weights:
        parts.append(" ".join(weights))
    return (f"{label} " if label else "") + "  ".join(parts)


class RunLog:
    """A run's log: each line goes to ``echo`` and, once :meth:`attach` named the run folder,
    is appended to ``RUN_DIR/train.log`` (lines logged before that are written then).

    ``train.log`` holds what the console showed, across resumes: a resumed run appends.
    """

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self._pending: list[str] = []
        self.path: Path | None = None

    def __call__(self, line: str) -> None:
        self.echo(line)
        if self.path is None:
            self._pending.append(line)
        else:
            self._append([line])

    def keep(self, line: str) -> None:
        """Append ``line`` to ``train.log`` only (the command prints it itself, e.g. on
        stderr); nothing before :meth:`attach`."""
        if self.path is not None:
            self._append([line])

    def attach(self, folder: Path) -> None:
        """Write to ``folder / train.log`` from now on, the lines logged so far first."""
        self.path = Path(folder) / TRAIN_LOG
        pending, self._pending = self._pending, []
        self._append(pending)

    def _append(self, lines: list[str]) -> None:
        if not lines:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
