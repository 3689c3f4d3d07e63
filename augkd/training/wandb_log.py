"""A run's per-epoch records in Weights & Biases (``wandb: true``, ``--wandb``).

One :class:`~augkd.training.loggers.EpochLogger` beside TensorBoard's: each epoch's
``metrics.jsonl`` record is logged as one W&B step (step = epoch, every numeric field under its
own name, as in TensorBoard), the run's config (the fields of its role) as the W&B config, the
run folder's name as the W&B run name and its role as the job type. The W&B run id is kept in
``RUN_DIR/wandb_id``, so ``--resume`` continues the same W&B run; the epochs finished before
W&B was first turned on for a run are replayed from ``metrics.jsonl``.

W&B's own settings come from its environment: ``WANDB_PROJECT`` (default ``augkd``),
``WANDB_ENTITY``, and ``WANDB_MODE=offline`` to log into ``RUN_DIR/wandb/`` without a network
(``wandb sync`` uploads it later). Needs ``pip install "augkd[wandb]"``.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from augkd.extras import require
from augkd.training.checkpoint import atomic_write_text
from augkd.training.run import RunDir

ID_FILE = "wandb_id"
DEFAULT_PROJECT = "augkd"


def wandb_module():
    """The ``wandb`` package, imported now.

    Raises:
        MissingExtraError: wandb is not installed (``pip install "augkd[wandb]"``).
    """
    return require("wandb", package="wandb", extra="wandb",
                   feature="Weights & Biases logging (--wandb)")


class WandbRun:
    """Logs a run's per-epoch records to W&B (see the module docstring).

    Args:
        run: the run folder.
        cfg: the run's TrainConfig (its role's fields become the W&B config).
        last_epoch: the last finished (checkpointed) epoch, 0 for a fresh run.
    """

    def __init__(self, run: RunDir, cfg: Any, last_epoch: int) -> None:
        wandb = wandb_module()
        id_file = run.path / ID_FILE
        resumed = id_file.is_file()
        # W&B run ids are lowercase letters and digits
        run_id = id_file.read_text().strip() if resumed else secrets.token_hex(6)
        if not resumed:
            atomic_write_text(run_id + "\n", id_file)
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT), id=run_id,
            name=run.path.name, job_type=cfg.role, dir=str(run.path),
            config=cfg.applicable_dict(), resume="allow", reinit="create_new",
        )
        if not resumed:  # turned on for a run that already has epochs: replay them
            for record in run.read_metrics():
                if record.get("epoch", 0) <= last_epoch:
                    self.write(record)

    def write(self, record: dict[str, Any]) -> None:
        """Log the numeric fields of one epoch's ``record`` at step ``record["epoch"]``."""
        values = {k: float(v) for k, v in record.items()
                  if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool)}
        self.run.log(values, step=int(record["epoch"]))

    def close(self) -> None:
        self.run.finish()
