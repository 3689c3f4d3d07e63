"""AGB's warm-up search (docs/protocol.md section 5, Algorithm 1): the lambda of
``agb(lam=search)`` chosen on a seeded held-out split before the run trains."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from augkd.training import distributed
from augkd.training.checkpoint import (
    atomic_write_csv,
)
from augkd.training.config import TrainConfig
from augkd.training.run import RunDir
from augkd.training.trainer import (
    Split,
    Trainer,
)

SEARCH_FIELDS = ("lambda", "holdout_top1", "holdout_loss", "epochs")


def holdout_splits(cfg: TrainConfig, train_split: Split) -> tuple[Split, Split]:
    """``(fit, held_out)``: the training split less a seeded ``cfg.holdout_fraction`` of it,
    and that fraction. AGB's lambda search and ``augkd.tune`` score on the held-out part; the
    test split is never read by a search."""
    n = len(train_split)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    order = order.to(train_split.images.device)
    n_hold = max(1, round(cfg.holdout_fraction * n))
    hold, rest = order[:n_hold], order[n_hold:]
    return (Split(train_split.images[rest], train_split.labels[rest]),
            Split(train_split.images[hold], train_split.labels[hold]))


def search_agb_lambda(
    cfg: TrainConfig, train_split: Split, run: RunDir, common: dict[str, Any],
    log: Callable[[str], None] = print,
) -> float:
    """AGB's warm-up search (docs/protocol.md §5): the lambda with the best held-out accuracy.

    A seeded ``holdout_fraction`` of the training set is held out (never the test set); each
    candidate lambda trains a fresh student for ``cfg.search_epochs`` epochs at the initial lr
    on the rest and is scored on the held-out part. The table is written to
    ``agb_search.csv`` row by row, so a resumed run does not repeat finished candidates.
    """
    fit_split, hold_split = holdout_splits(cfg, train_split)
    table_path = run.path / "agb_search.csv"
    rows = _read_search_table(table_path)
    for lam in cfg.agb_search_lambdas:
        if any(abs(r["lambda"] - lam) < 1e-12 for r in rows):
            continue
        warm = cfg.at_initial_lr(epochs=cfg.search_epochs, agb_search=False, agb_lambda=lam)
        trainer = Trainer(warm, fit_split, hold_split, run=None,
                          label=f"AGB search, lambda {lam:g}:", evaluated_on="held-out",
                          **common)
        last = trainer.fit()["last"]
        rows.append({"lambda": lam, "holdout_top1": last["test_top1"],
                     "holdout_loss": last["test_loss"], "epochs": warm.epochs})
        if distributed.current().is_main:
            atomic_write_csv(rows, SEARCH_FIELDS, table_path)
        log(f"AGB search: lambda {lam:g} -> held-out top-1 {last['test_top1']:.2f}%")
    best = max(rows, key=lambda r: (r["holdout_top1"], -r["holdout_loss"]))
    log(f"AGB search: chose lambda {best['lambda']:g}")
    return float(best["lambda"])


def _read_search_table(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:  # epochs stay integers, so a resumed table is the same
        return [{k: int(v) if k == "epochs" else float(v) for k, v in row.items()}
                for row in csv.DictReader(f)]
