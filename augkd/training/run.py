"""The run folder: one folder per run, holding everything needed to read or repeat it.

::

    RUN_DIR/
      config.yaml      the frozen TrainConfig
      metrics.jsonl    one JSON object per epoch (appended as the run goes)
      checkpoint.pt    full training state of the last finished epoch (atomic, for --resume)
      model.pt         final weights + manifest (what a student run loads as its teacher)
      summary.json     last-epoch figures, written when the run ends (no test-selected epoch)
      agb_search.csv   AGB's lambda search table (AGB student runs unless --agb-lambda)
      train.log        what the run printed: one line per epoch and its other lines (appended
                       across resumes)
      tensorboard/     per-epoch scalars for TensorBoard (runs with --tensorboard only)
      wandb/, wandb_id Weights & Biases' local files and the W&B run id (--wandb only)
      .lock            held (flock) while a process writes the run
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from augkd.training.checkpoint import atomic_write_text
from augkd.training.config import TrainConfig, read_config_file
from augkd.trust import reading_folder


class RunFolderBusyError(BlockingIOError):
    """Another process holds the run folder's lock: it is writing that run right now."""


@contextlib.contextmanager
def _flock(lock_path: Path, wait: Callable[[], bool]) -> Iterator[bool]:
    """Hold an exclusive OS lock (flock) on ``lock_path``; yields whether it is held.

    When another process holds it, ``wait()`` decides: True blocks until the lock is free,
    False gives up at once. The lock dies with its holder, so a killed process never leaves a
    stale lock behind.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait():
                yield False
                return
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def exclusive(lock_path: Path, log=print, what: str = "this") -> Iterator[None]:
    """Hold a blocking OS lock on ``lock_path``: one process at a time trains ``what`` (a
    cached teacher, a shared scorer student); the others wait, then find it finished."""

    def wait() -> bool:
        log(f"waiting for another process to finish {what}")
        return True

    with _flock(lock_path, wait):
        yield


def try_exclusive(lock_path: Path) -> contextlib.AbstractContextManager[bool]:
    """Try the OS lock on ``lock_path`` without waiting; the context yields whether it was
    taken."""
    return _flock(lock_path, lambda: False)


def default_run_name(cfg: TrainConfig) -> str:
    """``<role>-<model>-<dataset>[-<aug>]-s<seed>-<timestamp>``, filesystem safe."""
    parts = [cfg.role, cfg.model, cfg.dataset]
    if cfg.role == "student":
        parts.append(cfg.aug or "noaug")
    parts += [f"s{cfg.seed}", time.strftime("%Y%m%d-%H%M%S")]
    return safe_name("-".join(parts))


def safe_name(text: str) -> str:
    """``text`` as a file name: characters other than letters, digits and ``-_.+`` become ``_``."""
    return "".join(c if c.isalnum() or c in "-_.+" else "_" for c in text)


class RunDir:
    """Paths and small I/O helpers of one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config = property(lambda self: self.path / "config.yaml")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    model = property(lambda self: self.path / "model.pt")
    summary = property(lambda self: self.path / "summary.json")
    tensorboard = property(lambda self: self.path / "tensorboard")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an OS lock on the folder while a run writes it (released on exit or kill).

        Raises:
            RunFolderBusyError: another process holds the folder's lock (it writes this run).
        """
        with _flock(self.path / ".lock", lambda: False) as held:
            if not held:
                raise RunFolderBusyError(
                    f"run folder {self.path} is being written by another process; wait for it "
                    "or choose another --out"
                )
            yield

    def create(self, cfg: TrainConfig) -> None:
        """Make the folder and freeze ``cfg`` into it."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cfg.to_yaml(), self.config)

    def read_config(self) -> TrainConfig:
        """The run's frozen config, read as a folder's (:mod:`augkd.trust`): its DA spec may
        import no module unless folders are trusted, and a download it asks for is dropped
        (only ``--download`` on the command line starts one)."""
        with reading_folder(self.config):
            values = read_config_file(self.config)  # blocks, or the flat keys of old runs
            options = values.get("dataset_options")
            if isinstance(options, dict) and "download" in options:
                values["dataset_options"] = {k: v for k, v in options.items() if k != "download"}
            return TrainConfig.from_dict(values)

    def append_metrics(self, record: dict[str, Any]) -> None:
        with self.metrics.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """The per-epoch records. An incomplete last line (a write cut by a power loss or a
        full disk: it was never acknowledged) is dropped; a bad line elsewhere is an error
        naming the file and the line."""
        if not self.metrics.is_file():
            return []
        text = self.metrics.read_text(encoding="utf-8", errors="replace")
        lines = text.split("\n")
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                if number == len(lines):  # the last line, without its newline: never finished
                    break
                raise ValueError(f"{self.metrics}, line {number}: not a JSON record ({err.msg})"
                                 ) from None
        return records

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the ``.*.tmp`` files a killed atomic write left behind; returns them."""
        stale = sorted(self.path.glob(".*.tmp")) if self.path.is_dir() else []
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def truncate_metrics(self, last_epoch: int) -> None:
        """Drop records after ``last_epoch`` (written before a kill, after the last checkpoint)."""
        kept = [r for r in self.read_metrics() if r.get("epoch", 0) <= last_epoch]
        atomic_write_text("".join(json.dumps(r) + "\n" for r in kept), self.metrics)

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        atomic_write_text(json.dumps(data, indent=2) + "\n", self.path / name)

    def is_finished(self) -> bool:
        return self.summary.is_file() and self.model.is_file()
