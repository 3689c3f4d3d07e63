"""Load weights trained by the CIFAR KD framework (``ckpt_epoch_240.pth``) into the zoo."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from augkd.models.base import KDModel
from augkd.models.registry import create_model

_DATA_PARALLEL_PREFIX = "module."
_MAX_LISTED = 8


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _extract_state_dict(obj: object, path: Path) -> dict[str, Tensor]:
    """The tensors of a checkpoint: ``obj["model"]`` when present, else ``obj`` itself."""
    state = obj.get("model", obj) if isinstance(obj, Mapping) else obj
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        top = list(obj.keys()) if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(
            f"checkpoint {path} holds no state_dict: expected a dict of tensors, or one under a "
            f"'model' key; found {top}"
        )
    if state and all(k.startswith(_DATA_PARALLEL_PREFIX) for k in state):
        state = {k[len(_DATA_PARALLEL_PREFIX) :]: v for k, v in state.items()}
    return dict(state)


def load_kd_checkpoint(
    path: str | Path,
    model_name: str,
    num_classes: int,
    in_channels: int = 3,
    map_location: str | torch.device = "cpu",
) -> KDModel:
    """Build ``model_name`` and load a checkpoint of the CIFAR KD framework into it.

    Accepts what that framework (and mdistiller) save, ``{"model": state_dict, "epoch": ...,
    ...}``, or a bare state_dict; a ``module.`` prefix on every key (``nn.DataParallel``) is
    stripped. The file is read with ``torch.load(weights_only=True)``: tensors and plain
    containers only, no arbitrary code. BatchNorm ``num_batches_tracked`` counters missing from
    old checkpoints are tolerated (the fresh model's zeros are kept); every other key must match
    exactly, in name and shape.

    Args:
        path: the checkpoint file.
        model_name: a registered architecture (see :func:`augkd.models.list_models`).
        num_classes: logits of the trained classifier (100 for CIFAR-100).
        in_channels: input channels the weights were trained with.
        map_location: device the tensors are loaded to; the model is moved there too.

    Returns:
        The model with the checkpoint's weights, in eval mode, on ``map_location``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable checkpoint, or its keys or shapes do not fit the
            architecture; the message names the file, the architecture and the offending keys.
        UnknownNameError: ``model_name`` is not registered.
    """
    path = Path(path)
    model = create_model(model_name, num_classes, in_channels)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling errors come in many types; report the file
        raise ValueError(
            f"cannot read checkpoint {path} (torch.load, weights_only): {err}"
        ) from err
    state = _extract_state_dict(obj, path)

    expected = model.state_dict()
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing keys ({len(missing)}): {_listing(missing)}")
        if unexpected:
            problems.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
        if mismatched:
            problems.append(f"shape mismatches ({len(mismatched)}): {_listing(mismatched)}")
        raise ValueError(
            f"checkpoint {path} does not fit {model_name!r} (num_classes={num_classes}, "
            f"in_channels={in_channels}): " + "; ".join(problems)
        )
    model.load_state_dict(state)
    return model.to(map_location).eval()
