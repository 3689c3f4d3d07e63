"""Small helpers shared by several test files."""

from __future__ import annotations

from pathlib import Path

#: The fast digits configuration of the end-to-end tests (TrainConfig fields).
FAST = dict(dataset="digits", progress=False, device="cpu")


def write_changed_spec(spec: dict, tmp_path: Path, **changes) -> Path:
    """Write ``spec`` with ``changes`` applied (``grid__seed=[1]`` sets spec["grid"]["seed"])
    to ``tmp_path / "spec.yaml"``; returns the path."""
    import yaml

    for dotted, value in changes.items():
        node = spec
        *head, last = dotted.split("__")
        for key in head:
            node = node[key]
        node[last] = value
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def train_killed_in_epoch(monkeypatch, epoch: int, cfg, out: Path, *, data=None,
                          before_epoch=None) -> None:
    """Train ``cfg`` into ``out`` and stop it with a KeyboardInterrupt as epoch ``epoch``
    starts, as a kill would: the folder then holds the checkpoint of epoch ``epoch - 1``.
    ``before_epoch(trainer, epoch)`` is called as each epoch starts (the killed one too)."""
    import pytest

    from augkd.training import train
    from augkd.training.trainer import Trainer

    original = Trainer.train_epoch

    def dies(self, e):
        if before_epoch is not None:
            before_epoch(self, e)
        if e == epoch:
            raise KeyboardInterrupt
        return original(self, e)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_epoch", dies)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, out, data=data, log=lambda s: None)
