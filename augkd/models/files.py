"""Reading weight files without running code: ``torch.load(weights_only=True)`` with the few
plain objects KD codebases pickle beside their tensors, and the checks a model's weights must
pass. A leaf of :mod:`augkd.models` (the zoo's checkpoint readers and the torchvision/timm
builders both use it)."""

from __future__ import annotations

import argparse
import tarfile
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["check_tensors", "read_checkpoint_file"]

# Pickled objects besides tensors and plain containers that these codebases put in their files:
# torchdistill's 'args' and RepDistiller's 'opt' (argparse options).
_SAFE_GLOBALS = [argparse.Namespace]


def read_checkpoint_file(path: str | Path, map_location: str | torch.device = "cpu") -> object:
    """``torch.load(path, weights_only=True)``: tensors and plain containers, no arbitrary code.

    ``argparse.Namespace`` is also allowed (torchdistill's ``args``, RepDistiller's ``opt``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file cannot be read that way; the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    # torch < 2.5 has no allow-list: files holding a Namespace then fail below, by name
    allow = getattr(torch.serialization, "safe_globals", None)
    try:
        with allow(_SAFE_GLOBALS) if allow is not None else nullcontext():
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling errors come in many types; report the file
        if tarfile.is_tarfile(path):  # e.g. RepDistiller's cifar_teachers.tar itself
            with tarfile.open(path) as archive:
                inside = [m.name for m in archive.getmembers()
                          if m.name.endswith((".pth", ".pt", ".ckpt"))]
            raise ValueError(
                f"{path} is a tar archive, not a checkpoint: extract it (tar -xf {path.name}) and "
                "pass the .pth file inside" + (f", e.g. {inside[0]}" if inside else "")) from None
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        # torch's message opens with advice to drop weights_only; the object refused is the news
        reason = next((line for line in lines if "unsupported" in line.lower()), " ".join(lines))
        raise ValueError(
            f"cannot read checkpoint {path} (torch.load, weights_only): {reason[:300]}"
        ) from err


def check_tensors(state: dict[str, object], path: Path) -> None:
    """Refuse weights no trained model holds, naming the file and the tensor: sparse or
    complex tensors (loading would drop the imaginary part), and NaN or infinite values.

    Raises:
        ValueError: the first such tensor.
    """
    for key, value in state.items():
        if not isinstance(value, Tensor):
            continue
        if value.layout != torch.strided:
            raise ValueError(f"checkpoint {path}: tensor {key!r} is {value.layout} (sparse); a "
                             "model's weights are dense")
        if value.is_complex():
            raise ValueError(f"checkpoint {path}: tensor {key!r} is {value.dtype} (complex); a "
                             "model's weights are real")
        if value.is_floating_point() and not torch.isfinite(value).all():
            bad = value[~torch.isfinite(value)].flatten()[0].item()
            raise ValueError(f"checkpoint {path}: tensor {key!r} holds non-finite values (e.g. "
                             f"{bad}); a trained model's weights are finite")
