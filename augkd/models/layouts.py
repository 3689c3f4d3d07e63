"""Where other KD codebases put a trained model's tensors in the files they save.

A foreign checkpoint is read in two steps: :func:`find_layout` recognises the codebase by the
file's top-level keys, then :func:`extract_weights` takes the trained model's state_dict out of
it (unwrapping a distiller or an auxiliary wrapper) together with the accuracy the file records.
Which architecture the tensors belong to is decided afterwards, in :mod:`augkd.models.checkpoint`.

The layouts, as the codebases write them (checked against their saving code):

* **RepDistiller / mdistiller** (``KD_FRAMEWORK``): a dict with the weights under ``model``.
  RepDistiller's ``train_teacher.py`` / ``train_student.py`` save ``ckpt_epoch_<E>.pth``
  ``{"epoch", "model", "accuracy", ("optimizer")}``, ``<model>_best.pth`` with ``best_acc``
  instead of ``accuracy``, and ``<model>_last.pth`` ``{"opt", "model", ("optimizer")}``;
  mdistiller's ``cifar_teachers.tar`` holds those files (``resnet32x4_vanilla/ckpt_epoch_240.pth``).
  mdistiller's own trainer (``mdistiller/engine/trainer.py``, ``save_checkpoint``) writes
  ``latest``, ``best`` and ``epoch_<E>`` as ``{"epoch", "model", "optimizer", "best_acc"}`` where
  ``model`` is the state_dict of the distiller in ``nn.DataParallel``: the trained network under
  ``module.student.``, the frozen teacher under ``module.teacher.`` and the method's own modules
  beside them (FitNet's ``module.conv_reg.``); ``student_latest`` / ``student_best`` /
  ``student_<E>`` are ``{"model": <student state_dict>}``.
* **torchdistill** (``TORCHDISTILL``): ``save_ckpt`` (``torchdistill/common/main_util.py``) writes
  ``{"model", "optimizer", "best_value", "lr_scheduler", "args"}`` (before v1.0 also ``config``);
  ``model`` is the student's state_dict (``save_ckpt`` itself unwraps DataParallel/DDP), or that
  of an auxiliary wrapper (``torchdistill/models/wrapper.py``) with the student under
  ``student_model.`` (FT, VID, ReviewKD, ...) or ``model.`` (CRD, CCKD, SSKD), then possibly
  ``module.`` (a DDP inside the wrapper); ``best_value`` is the best validation top-1 in
  percent; ``args`` is an ``argparse.Namespace``.
* **bare state_dict** (``STATE_DICT``): ``torch.save(model.state_dict())``, as torchdistill's
  released CIFAR weights (``cifar10-resnet20.pt``).

In every layout a ``module.`` prefix on all keys of the model (``nn.DataParallel``) is removed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path

from torch import Tensor

_DATA_PARALLEL_PREFIX = "module."


@dataclasses.dataclass(frozen=True)
class Wrapper:
    """A key prefix under which a codebase nests the trained model inside a bigger module.

    Attributes:
        prefix: the keys' prefix (``"module.student."``); ``""``: the weights are the model.
        holds: what sits there, in words, for logs (``"the student of mdistiller's distiller"``).
    """

    prefix: str
    holds: str


@dataclasses.dataclass(frozen=True)
class Layout:
    """How one codebase saves a model.

    Attributes:
        name: the codebase, as logs and errors name it.
        required: top-level keys that every file of the layout holds (and that identify it).
        weights_key: the top-level key holding the weights; ``None``: the file is the weights.
        accuracy_keys: top-level keys that may hold the top-1 the file records, in percent;
            the first one present is read.
        wrappers: where the trained model may sit inside the weights, most specific first; the
            first prefix that some key carries is taken and the keys outside it (a distiller's
            teacher, a method's modules) are left out.
    """

    name: str
    required: frozenset[str]
    weights_key: str | None
    accuracy_keys: tuple[str, ...]
    wrappers: tuple[Wrapper, ...]


_WHOLE = Wrapper("", "the model")

TORCHDISTILL = Layout(
    name="torchdistill save_ckpt",
    required=frozenset({"model", "optimizer", "best_value", "lr_scheduler", "args"}),
    weights_key="model",
    accuracy_keys=("best_value",),
    wrappers=(
        Wrapper("student_model.", "the student of an auxiliary wrapper"),
        Wrapper("model.", "the student of an auxiliary wrapper"),
        _WHOLE,
    ),
)

KD_FRAMEWORK = Layout(
    name="RepDistiller / mdistiller",
    required=frozenset({"model"}),
    weights_key="model",
    accuracy_keys=("accuracy", "best_acc"),
    wrappers=(Wrapper("module.student.", "the student of mdistiller's distiller"), _WHOLE),
)

STATE_DICT = Layout(
    name="bare state_dict",
    required=frozenset(),
    weights_key=None,
    accuracy_keys=(),
    wrappers=(_WHOLE,),
)

LAYOUTS = (TORCHDISTILL, KD_FRAMEWORK, STATE_DICT)
"""The layouts :func:`find_layout` tries, in this order (torchdistill's files also hold
``model``, so it is tried before the KD framework's)."""

SUPPORTED = (
    "an augkd run folder or model.pt; a dict with the weights under 'model' (RepDistiller, "
    "mdistiller, its trainer's distiller with the student under 'module.student.'); "
    "torchdistill's save_ckpt dict ('model', 'optimizer', 'best_value', 'lr_scheduler', "
    "'args'); or a bare state_dict"
)


@dataclasses.dataclass(frozen=True)
class ForeignWeights:
    """The trained model found in a foreign checkpoint.

    Attributes:
        state: its state_dict (CPU or ``map_location`` tensors), keys without any wrapper prefix.
        layout: the layout the file is in.
        where: where in the file the weights were, in words (for logs).
        recorded_top1: the top-1 (percent) the file records, or ``None``.
        recorded_as: the key it was read from (``"best_acc"``), or ``None``.
    """

    state: dict[str, Tensor]
    layout: Layout
    where: str
    recorded_top1: float | None
    recorded_as: str | None

    @property
    def description(self) -> str:
        """``"<layout>: <where>"``: ``"RepDistiller / mdistiller: the model (under 'model')"``."""
        return f"{self.layout.name}: {self.where}"


def _is_state_dict(obj: object) -> bool:
    return (isinstance(obj, Mapping) and bool(obj)
            and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()))


def _top_level(obj: object) -> str:
    if isinstance(obj, Mapping):
        return "top-level keys " + ", ".join(repr(k) for k in list(obj)[:8])
    return f"a {type(obj).__name__}"


def find_layout(contents: object, path: Path) -> Layout:
    """The layout of a loaded checkpoint file.

    Args:
        contents: what ``torch.load`` returned for the file.
        path: the file, for the error message.

    Raises:
        ValueError: the file is in none of :data:`LAYOUTS`; the message names the file, what
            it holds and the layouts augkd reads.
    """
    if isinstance(contents, Mapping):
        keys = set(contents)
        for layout in LAYOUTS:
            if layout.weights_key is None and _is_state_dict(contents):
                return layout
            if layout.weights_key is not None and layout.required <= keys:
                return layout
    raise ValueError(
        f"checkpoint {path} holds no state_dict in a layout augkd reads: found "
        f"{_top_level(contents)}; expected {SUPPORTED}"
    )


def _recorded_top1(contents: Mapping, layout: Layout) -> tuple[float | None, str | None]:
    for key in layout.accuracy_keys:
        value = contents.get(key)
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            return float(value), key
    return None, None


def extract_weights(contents: object, path: Path) -> ForeignWeights:
    """The trained model's state_dict in a loaded checkpoint file, and what the file says of it.

    Args:
        contents: what ``torch.load`` returned for the file.
        path: the file, for error messages.

    Returns:
        :class:`ForeignWeights`; its ``state`` still has the codebase's key names (which for the
        architectures augkd shares with these codebases are the zoo's own).

    Raises:
        ValueError: the file is in no known layout, or its weights are no dict of tensors.
    """
    layout = find_layout(contents, path)
    weights = contents if layout.weights_key is None else contents[layout.weights_key]
    if not _is_state_dict(weights):
        raise ValueError(
            f"checkpoint {path} ({layout.name}) holds no state_dict under "
            f"{layout.weights_key!r}: found {_top_level(weights)}"
        )
    wrapper = next(w for w in layout.wrappers if any(k.startswith(w.prefix) for k in weights))
    state = {k[len(wrapper.prefix):]: v for k, v in weights.items() if k.startswith(wrapper.prefix)}
    location = ("the whole file" if layout.weights_key is None
                else f"under {layout.weights_key!r}")
    if wrapper.prefix:
        location += f", keys {wrapper.prefix}*"
    if all(k.startswith(_DATA_PARALLEL_PREFIX) for k in state):
        state = {k[len(_DATA_PARALLEL_PREFIX):]: v for k, v in state.items()}
        location += ", nn.DataParallel's 'module.' removed"
    top1, key = _recorded_top1(contents, layout)
    return ForeignWeights(state=state, layout=layout, where=f"{wrapper.holds} ({location})",
                          recorded_top1=top1,
                          recorded_as=key)
