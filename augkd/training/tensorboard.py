"""TensorBoard scalars of a run, one point per epoch (``tensorboard: true``, ``--tensorboard``).

Each epoch's ``metrics.jsonl`` record goes to ``RUN_DIR/tensorboard/`` as one scalar per
numeric field, tagged by the field's own name, at step = epoch: ``train_task``,
``train_distill``, ``train_kd_original`` (the method's terms), ``test_top1``, ``test_top5``,
``test_loss``, ``lr``, ``epoch_time_s`` and, for student runs, the balancer's statistics
(``balance_alpha``, ``balance_beta``, ``balance_w_task``, ... for AGB). TensorBoard then shows
exactly what ``metrics.jsonl`` holds; ``tensorboard --logdir runs/`` compares every run below.

The trainer writes an epoch's scalars, flushed, before that epoch's checkpoint. A run
resumed after epoch E therefore finds at most the scalars of the epoch it will repeat (E + 1,
when the kill fell between the two writes); the writer opens with ``purge_step = E + 1``, which
hides every event from step E + 1 on, so each step is shown once. A run that had no TensorBoard
log yet (it was started without ``--tensorboard``) gets its finished epochs replayed from
``metrics.jsonl`` first. Only the rank-0 process of a run writes, once per epoch: nothing of
this touches the training step.
"""

from __future__ import annotations

from typing import Any

from augkd.extras import require
from augkd.training.run import RunDir

EVENT_FILES = "events.out.tfevents.*"


def summary_writer_class() -> type:
    """torch's ``SummaryWriter``, imported now.

    Raises:
        MissingExtraError: tensorboard is not installed (``pip install "augkd[tensorboard]"``).
    """
    module = require("torch.utils.tensorboard", package="tensorboard", extra="tensorboard",
                     feature="TensorBoard logging (--tensorboard)")
    return module.SummaryWriter


class EpochScalars:
    """Writes a run's per-epoch records into ``run.tensorboard`` (see the module docstring).

    Args:
        run: the run folder.
        last_epoch: the last finished (checkpointed) epoch, 0 for a fresh run.
    """

    def __init__(self, run: RunDir, last_epoch: int) -> None:
        writer_class = summary_writer_class()
        folder = run.tensorboard
        logged_before = folder.is_dir() and any(folder.glob(EVENT_FILES))
        self.writer = writer_class(log_dir=str(folder),
                                   purge_step=last_epoch + 1 if logged_before else None)
        if not logged_before:
            for record in run.read_metrics():
                if record.get("epoch", 0) <= last_epoch:
                    self.write(record)

    def write(self, record: dict[str, Any]) -> None:
        """Add the numeric fields of one epoch's ``record`` at step ``record["epoch"]`` and
        flush them to disk."""
        step = int(record["epoch"])
        for name, value in record.items():
            if name != "epoch" and isinstance(value, int | float) and not isinstance(value, bool):
                self.writer.add_scalar(name, float(value), global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
