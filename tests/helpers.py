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
