"""Load a model trained by another KD codebase (RepDistiller, mdistiller, torchdistill).

The file's layout (:mod:`augkd.models.layouts`) gives the trained model's state_dict; the
architecture is the one named by the caller (``--teacher-model``) or the one whose keys and
shapes the state_dict has. For the architectures the zoo shares with those codebases the key
names are the zoo's own, so no renaming is needed: the zoo follows RepDistiller's definitions,
which mdistiller copies, and torchdistill's CIFAR ResNets (``ResNet4Cifar`` with torchvision's
``BasicBlock``) name their parameters the same way. torchdistill's ``WideResNet4Cifar`` is not
one of them: it applies the projection shortcut to a block's raw input where the zoo's ``wrn_*``
applies it to the pre-activated input, a different function that no renaming reproduces, so
its files are refused with that reason.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from augkd.models.base import KDModel
from augkd.models.external import build_external, is_model_spec, parse_model_spec
from augkd.models.files import check_tensors, read_checkpoint_file
from augkd.models.layouts import ForeignWeights, extract_weights
from augkd.models.registry import MODELS, create_model

_MAX_LISTED = 8
_BN_COUNTER = "num_batches_tracked"


# torchdistill's WideResNet4Cifar: blocks layer<i>.<j> with a projection 'shortcut.0'.
_TORCHDISTILL_WRN_KEY = re.compile(r"^layer\d+\.\d+\.shortcut\.0\.weight$")
_TORCHDISTILL_WRN_NOTE = (
    "its keys are those of torchdistill's WideResNet4Cifar (layer<i>.<j>.shortcut.0), whose "
    "projection shortcut reads a block's raw input where augkd's wrn_* (RepDistiller's "
    "definition) reads the pre-activated input: another function, so its weights cannot be "
    "loaded into the zoo"
)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


@dataclasses.dataclass(frozen=True)
class ForeignCheckpoint:
    """A model loaded from another codebase's checkpoint, with what is known of it.

    Attributes:
        model: the zoo model with the file's weights, in eval mode.
        architecture: its registered name.
        named_by: where the architecture came from: ``"--teacher-model"`` (the caller named
            it), ``"its weights"``, or ``"its weights and its folder name
            'resnet32x4_vanilla'"``.
        weights: where the weights were in the file and the accuracy the file records.
    """

    model: KDModel
    architecture: str
    named_by: str
    weights: ForeignWeights


#: Largest |logit| a teacher may give on the test split: trained CIFAR teachers stay in the
#: tens; 1e4 is far beyond that (a classifier scaled by 1e30 gives ~1e30 and still scores 60 %).
MAX_TEACHER_LOGIT = 1e4


def max_abs_logit(model: KDModel, images: Tensor, normalize, batch_size: int = 500) -> float:
    """The largest |logit| ``model`` gives on ``images`` (uint8 ``[N, C, H, W]``), NaN if any
    logit is not finite."""
    device = next(model.parameters()).device
    largest = 0.0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(normalize(images[start:start + batch_size].to(device))).float()
            if not torch.isfinite(logits).all():
                return float("nan")
            largest = max(largest, logits.abs().max().item())
    return largest


@functools.cache
def _architecture_shapes(name: str, num_classes: int, in_channels: int) -> dict[str, tuple]:
    """``{key: shape}`` of an architecture's state_dict, without its BN batch counters."""
    try:  # on the meta device nothing is allocated or initialised: ResNet50 costs nothing
        with torch.device("meta"):
            model = create_model(name, num_classes, in_channels, load_weights=False)
    except Exception:  # a user's model may not build on meta; the CPU gives the same shapes
        model = create_model(name, num_classes, in_channels, load_weights=False)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()
            if not k.endswith(_BN_COUNTER)}


def _fit_problems(state: dict[str, Tensor], expected: dict[str, tuple]) -> list[str]:
    """What keeps ``state`` from loading into a model of ``expected`` shapes (empty: it fits).

    BN batch counters are left out on both sides: old files lack them, and they hold no weight.
    """
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and not k.endswith(_BN_COUNTER)]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {shape}"
        for k, shape in expected.items()
        if k in state and tuple(state[k].shape) != shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {_listing(mismatched)}")
    return problems


_ARCHITECTURE_KEYS: dict[str, frozenset[str]] = {}


def _same_keys(state: dict[str, Tensor], num_classes: int, in_channels: int) -> list[str]:
    """The registered architectures with exactly the keys of ``state`` (shapes aside)."""
    keys = {k for k in state if not k.endswith(_BN_COUNTER)}
    same = []
    for name in MODELS:
        if name not in _ARCHITECTURE_KEYS:  # names do not depend on the class or channel count
            shapes = _architecture_shapes(name, num_classes, in_channels)
            _ARCHITECTURE_KEYS[name] = frozenset(shapes)
        if _ARCHITECTURE_KEYS[name] == keys:
            same.append(name)
    return same


def _mismatch_count(state: dict[str, Tensor], expected: dict[str, tuple]) -> int:
    return sum(tuple(state[k].shape) != shape for k, shape in expected.items() if k in state)


def _fitting(state: dict[str, Tensor], num_classes: int, in_channels: int) -> list[str]:
    """The registered architectures whose keys and shapes ``state`` has exactly."""
    return [n for n in _same_keys(state, num_classes, in_channels)
            if not _fit_problems(state, _architecture_shapes(n, num_classes, in_channels))]


def named_by_path(path: Path) -> list[tuple[str, str]]:
    """Architectures named by the checkpoint's folder or file name, with where they were read.

    A name counts when the folder (or the file's stem) is the architecture's name or starts with
    it and ``_``: mdistiller's ``resnet32x4_vanilla``, RepDistiller's
    ``wrn_40_2_cifar100_lr_0.05_decay_0.0005_trial_0`` and ``resnet32x4_best.pth``, and its
    student folders ``S:resnet8x4_T:resnet32x4_...``. The longest matching name wins
    (``resnet32x4`` over ``resnet32``). Folder first, then file.
    """
    found = []
    for where, label in (("folder", path.parent.name), ("file", path.stem)):
        label = label.removeprefix("S:")
        names = [n for n in MODELS if label == n or label.startswith(n + "_")]
        if names:
            found.append((max(names, key=len), f"its {where} name {label!r}"))
    return found


def _fit_error(path: Path, name: str, num_classes: int, in_channels: int,
               problems: list[str], named_by: str, note: str | None) -> ValueError:
    text = (f"checkpoint {path} does not fit {name!r} ({named_by}; num_classes={num_classes}, "
            f"in_channels={in_channels}): " + "; ".join(problems))
    return ValueError(text + (f"; {note}" if note else ""))


def _definition_note(state: dict[str, Tensor]) -> str | None:
    """Why a state_dict of a known foreign definition cannot be loaded, if it is one."""
    if any(_TORCHDISTILL_WRN_KEY.match(k) for k in state):
        return _TORCHDISTILL_WRN_NOTE
    return None


def choose_architecture(
    state: dict[str, Tensor], path: Path, num_classes: int, in_channels: int,
    model_name: str | None = None,
) -> tuple[str, str]:
    """The architecture a foreign state_dict is loaded into, and how it was found.

    ``model_name``, when given, is checked to fit. Otherwise the registered architectures whose
    keys and shapes (at ``num_classes``, ``in_channels``) ``state`` has exactly are the
    candidates: one is taken; among several, the one the file's folder or file name names
    (:func:`named_by_path`).

    Returns:
        ``(name, named_by)``.

    Raises:
        ValueError: ``model_name`` does not fit; several architectures fit and no name picks
            one; none fits. Each message names the file, the candidates and what was expected.
        UnknownNameError: ``model_name`` is not registered.
    """
    note = _definition_note(state)
    if model_name is not None:
        problems = _fit_problems(state, _architecture_shapes(model_name, num_classes, in_channels))
        if problems:
            fits = [n for n in _fitting(state, num_classes, in_channels) if n != model_name]
            if fits:
                problems.append(f"the weights fit {_listing(fits)}")
            raise _fit_error(path, model_name, num_classes, in_channels, problems,
                             "from --teacher-model", note)
        return model_name, "--teacher-model"
    fits = _fitting(state, num_classes, in_channels)
    hints = named_by_path(path)
    if len(fits) == 1:
        return fits[0], "its weights"
    if fits:
        for name, where in hints:
            if name in fits:
                return name, f"its weights and {where}"
        raise ValueError(
            f"cannot tell the architecture of {path}: its weights fit {len(fits)} architectures "
            f"({', '.join(fits)}) and neither its folder nor its file name names one of them; "
            "name it with --teacher-model"
        )
    if hints:
        name, where = hints[0]
        problems = _fit_problems(state, _architecture_shapes(name, num_classes, in_channels))
        raise _fit_error(path, name, num_classes, in_channels, problems, f"from {where}", note)
    same_keys = _same_keys(state, num_classes, in_channels)
    if same_keys:
        nearest = min(same_keys, key=lambda n: _mismatch_count(
            state, _architecture_shapes(n, num_classes, in_channels)))
        problems = _fit_problems(state, _architecture_shapes(nearest, num_classes, in_channels))
        others = [n for n in same_keys if n != nearest]
        raise ValueError(
            f"cannot tell the architecture of {path}: its keys are those of {nearest!r}"
            + (f" (and {', '.join(others)})" if others else "")
            + f" but not its shapes at num_classes={num_classes}, in_channels={in_channels} "
            f"({'; '.join(problems)}): was it trained on other data?"
        )
    keys = [k for k in state if not k.endswith(_BN_COUNTER)]
    raise ValueError(
        f"cannot tell the architecture of {path}: its {len(keys)} tensors ({_listing(keys)}) "
        f"fit none of the registered architectures ({', '.join(MODELS)})"
        + (f"; {note}" if note else "; if it is one of them, name it with --teacher-model")
    )


def load_foreign(
    contents: object,
    path: str | Path,
    num_classes: int,
    in_channels: int = 3,
    model_name: str | None = None,
    map_location: str | torch.device = "cpu",
    classes: Sequence[str] | None = None,
) -> ForeignCheckpoint:
    """Build the zoo model a loaded foreign checkpoint describes and load its weights.

    Args:
        contents: what :func:`read_checkpoint_file` returned for ``path``.
        path: the file (for messages, and for the folder name that may name the architecture).
        num_classes: logits of the trained classifier (100 for CIFAR-100).
        in_channels: input channels the weights were trained with.
        model_name: the architecture; ``None``: inferred (:func:`choose_architecture`).
        map_location: device the model is moved to.
        classes: the dataset's class names, for a library spec with ``head=subset``
            (``--teacher-model 'tv:resnet50(head=subset)'`` on a file of ImageNet-1K weights).

    Returns:
        :class:`ForeignCheckpoint` with the model in eval mode on ``map_location``. BatchNorm
        ``num_batches_tracked`` counters missing from old files keep the fresh model's zeros;
        every other key matches exactly, in name and shape.

    Raises:
        ValueError: the layout is unknown, or the architecture cannot be told or does not fit;
            messages name the file.
        UnknownNameError: ``model_name`` is not registered.
    """
    path = Path(path)
    weights = extract_weights(contents, path)
    check_tensors(weights.state, path)
    if model_name is not None and is_model_spec(model_name):
        return _load_library_model(weights, path, num_classes, in_channels, model_name,
                                   map_location, classes)
    name, named_by = choose_architecture(weights.state, path, num_classes, in_channels,
                                         model_name)
    model = create_model(name, num_classes, in_channels)
    fresh = model.state_dict()
    for key, value in fresh.items():  # int64 weights would be cast silently by load_state_dict
        given = weights.state.get(key)
        if value.is_floating_point() and given is not None and not given.is_floating_point():
            raise ValueError(f"checkpoint {path}: tensor {key!r} is {given.dtype}, not a floating "
                             "point type; a trained model's weights are float")
    # BN counters: old files lack them (keep the fresh zeros); they change no output
    state = {k: v for k, v in weights.state.items() if k in fresh}
    state.update({k: v for k, v in fresh.items() if k.endswith(_BN_COUNTER) and k not in state})
    model.load_state_dict(state)
    return ForeignCheckpoint(model=model.to(map_location).eval(), architecture=name,
                             named_by=named_by, weights=weights)


def _load_library_model(weights: ForeignWeights, path: Path, num_classes: int,
                        in_channels: int, model_name: str, map_location: str | torch.device,
                        classes: Sequence[str] | None) -> ForeignCheckpoint:
    """A state_dict of a torchvision or timm model (``--teacher-model tv:resnet18``): the spec
    built with ``weights=path`` (its keys are the library's; see :mod:`augkd.models.external`)."""
    spec = parse_model_spec(model_name)
    if spec.weights is not None:
        raise ValueError(f"--teacher-model {model_name!r} sets weights=...; the teacher's weights "
                         f"are those of {path}: name the architecture only")
    with_file = dataclasses.replace(spec, weights=str(path.resolve()))
    model = build_external(with_file, num_classes, in_channels, classes=classes)
    return ForeignCheckpoint(model=model.to(map_location).eval(), architecture=model_name,
                             named_by="--teacher-model", weights=weights)


def load_kd_checkpoint(
    path: str | Path,
    model_name: str | None,
    num_classes: int,
    in_channels: int = 3,
    map_location: str | torch.device = "cpu",
) -> KDModel:
    """Build ``model_name`` and load into it a checkpoint of RepDistiller, mdistiller or
    torchdistill (the layouts of :mod:`augkd.models.layouts`).

    The file is read with ``torch.load(weights_only=True)``: tensors and plain containers only,
    no arbitrary code.

    Args:
        path: the checkpoint file.
        model_name: a registered architecture (see :func:`augkd.models.list_models`);
            ``None``: the one the weights fit (:func:`choose_architecture`).
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
    if model_name is not None:
        MODELS.get(model_name)  # an unknown name fails first, by name
    contents = read_checkpoint_file(path, map_location)
    return load_foreign(contents, path, num_classes, in_channels, model_name, map_location).model
