"""Loading models and data for a run: teachers (augkd's own, RepDistiller, mdistiller and
torchdistill files), students, their manifests and the checks against the dataset, and the data
settings a student or a ranking inherits from its teacher's run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from augkd.augment.pipeline import Normalize
from augkd.data import Dataset, load_dataset
from augkd.data.dataset import TRANSFORM_OPTIONS, transformed_checksum
from augkd.metrics.evaluate import evaluate
from augkd.models import (
    MODELS,
    ForeignCheckpoint,
    create_model,
    load_foreign,
    read_checkpoint_file,
)
from augkd.models.checkpoint import MAX_TEACHER_LOGIT, check_tensors, max_abs_logit
from augkd.models.quant import quantize_model
from augkd.training.checkpoint import (
    load_checkpoint,
)
from augkd.training.config import RUNTIME_DATASET_OPTIONS, TrainConfig
from augkd.training.trainer import (
    CHECKPOINT_FORMAT,
    MODEL_FORMAT,
)


def load_data(cfg: TrainConfig) -> Dataset:
    """The dataset named by ``cfg`` (on the CPU)."""
    return load_dataset(cfg.dataset, cfg.root, **cfg.dataset_options)


def resolve_teacher_file(source: str | Path) -> Path:
    """A run folder means its ``model.pt``; a file is taken as it is."""
    path = Path(source)
    if path.is_dir():
        if (path / "model.pt").is_file():
            return path / "model.pt"
        raise FileNotFoundError(
            f"teacher run folder {path} has no model.pt (did the run finish? resume it first)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"teacher checkpoint not found: {path}")
    return path


def load_teacher(
    source: str | Path,
    dataset: Dataset,
    device: torch.device | str = "cpu",
    teacher_model: str | None = None,
    *,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a frozen teacher (eval mode, no grads) and its manifest, checked against ``dataset``.

    ``source`` is an augkd run folder or its ``model.pt``, or a checkpoint of RepDistiller,
    mdistiller or torchdistill (the layouts of :mod:`augkd.models.layouts`; docs/teachers.md).
    The architecture of such a foreign checkpoint is ``teacher_model`` or, when that is None,
    the one its weights fit (its folder name, ``resnet32x4_vanilla``, breaks a tie).

    A foreign file records nothing of the data it was trained on, so its teacher is measured
    before use (:func:`check_foreign_teacher`): its top-1 on ``dataset``'s test split is logged
    beside the accuracy the file records, if any (a shortfall of more than
    ``RECORDED_TOP1_SLACK`` points adds a warning line), and it must clear the floor of
    always guessing the most frequent class plus a tenth of the way from there to 100%. The
    manifest then holds ``test_top1``.

    Args:
        normalize: the map from uint8 images to the teacher's input, as the run feeds it; None
            means ``Normalize(dataset.mean, dataset.std)``, what augkd runs use unless their
            config sets ``mean``/``std``. Used for foreign teachers only.
        log: where the foreign teacher's accuracy line goes.

    Raises:
        FileNotFoundError: nothing at ``source``.
        ValueError: the checkpoint was made for another dataset, class count or input channels,
            it is not a model checkpoint, its architecture cannot be told, or it scores below
            the floor on ``dataset``.
    """
    path = resolve_teacher_file(source)
    contents = read_checkpoint_file(path)
    augkd_format = contents.get("format") if isinstance(contents, dict) else None
    if augkd_format == MODEL_FORMAT:
        manifest = read_manifest(path, contents)
        _check_manifest(path, manifest, dataset)
        model = model_from_state(path, contents, manifest)
    elif augkd_format == CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is a training checkpoint (checkpoint.pt); give the run folder or its "
            "model.pt, which a run writes when it finishes (resume an unfinished run first)"
        )
    else:
        foreign = load_foreign(contents, path, dataset.num_classes, dataset.in_channels,
                               teacher_model, classes=dataset.classes)
        model = foreign.model.to(device)
        top1 = check_foreign_teacher(foreign, path, dataset, normalize, log)
        manifest = {
            "architecture": foreign.architecture,
            "num_classes": dataset.num_classes,
            "in_channels": dataset.in_channels,
            "dataset": dataset.name,
            "dataset_checksum": None,
            "source": str(path),
            "layout": foreign.weights.description,
            "recorded_top1": foreign.weights.recorded_top1,
            "test_top1": top1,
        }
    model.to(device).eval().requires_grad_(False)
    return model, manifest


RECORDED_TOP1_SLACK = 5.0
"""Points a foreign teacher may score below the top-1 its file records before a warning."""


def check_foreign_teacher(
    foreign: ForeignCheckpoint,
    path: Path,
    dataset: Dataset,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
    log: Callable[[str], None] = print,
) -> float:
    """Measure a foreign teacher's top-1 on ``dataset``'s test split, log it, and check it.

    The floor is the accuracy of always guessing the test split's most frequent class plus a
    tenth of the distance from there to 100%: a teacher below it sees another task (other
    data, class order or normalization) and would hand the student noise.

    Returns:
        The top-1 in percent.

    Raises:
        ValueError: the top-1 is below the floor; the message names the file and both numbers.
    """
    model = foreign.model
    device = next(model.parameters()).device
    normalize = normalize if normalize is not None else Normalize(dataset.mean, dataset.std)
    labels = dataset.test_labels.to(device)
    result = evaluate(model, dataset.test_images.to(device), labels, normalize)
    recorded = foreign.weights.recorded_top1
    line = (f"teacher {foreign.architecture} from {path}: test top-1 {result.top1:.2f}% on "
            f"{dataset.name} ({result.n} images)")
    if recorded is not None:
        line += f", the file records {recorded:.2f}% ({foreign.weights.recorded_as})"
    log(f"{line} [{foreign.weights.description}; architecture from {foreign.named_by}]")
    largest = max_abs_logit(model, dataset.test_images, normalize)
    if not largest <= MAX_TEACHER_LOGIT:  # NaN fails too
        raise ValueError(
            f"teacher {path} ({foreign.architecture}) gives logits up to |{largest:.3g}| on the "
            f"test split of {dataset.name}, beyond {MAX_TEACHER_LOGIT:g} (trained teachers stay "
            "in the tens): its weights are damaged or scaled")
    if recorded is not None and result.top1 < recorded - RECORDED_TOP1_SLACK:
        log(f"warning: teacher {path} scores {recorded - result.top1:.1f} points below what its "
            "file records: were its data, image size and normalization this run's?")
    guess = 100.0 * torch.bincount(labels).max().item() / result.n
    floor = guess + (100.0 - guess) / 10
    if result.top1 < floor:
        raise ValueError(
            f"teacher {path} ({foreign.architecture}) scores {result.top1:.2f}% top-1 on the "
            f"test split of {dataset.name}, below {floor:.2f}% (always guessing the most "
            f"frequent class scores {guess:.2f}%): it was likely trained on other data, another "
            "class order or another normalization"
        )
    return result.top1


def load_student(
    source: str | Path,
    dataset: Dataset,
    device: torch.device | str = "cpu",
    teacher: str | Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a finished student run as a frozen model (eval mode, no grads) and its manifest.

    This is CutMixPick-S's scorer in the T. stddev measurement: the model is checked to be a
    student trained for at least one epoch on ``dataset`` (and, when ``teacher`` is given, by
    that teacher run), and marked trained (:func:`augkd.metrics.mark_trained`).

    Raises:
        FileNotFoundError: nothing at ``source``, or an unfinished run.
        ValueError: not a student run of augkd, another dataset or teacher, or 0 epochs.
    """
    from augkd.metrics import mark_trained

    path = resolve_teacher_file(source)
    state = load_checkpoint(path)
    if state.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not an augkd model.pt; give a finished student run folder")
    manifest = read_manifest(path, state)
    role = manifest.get("role", manifest.get("config", {}).get("role"))
    if role != "student":
        raise ValueError(f"{path} is a {role} run; CutMixPick-S scores with a KD student run")
    _check_manifest(path, manifest, dataset)
    if int(manifest.get("epochs") or 0) < 1:
        raise ValueError(f"student {path} was trained for 0 epochs; it cannot score")
    if teacher is not None:
        own = manifest.get("config", {}).get("teacher")
        if own is None or resolve_teacher_file(own).resolve() != \
                resolve_teacher_file(teacher).resolve():
            raise ValueError(
                f"student {path} was distilled from teacher {own}, not from {teacher}"
            )
    model = model_from_state(path, state, manifest).to(device).eval().requires_grad_(False)
    return mark_trained(model, int(manifest["epochs"])), manifest




_MANIFEST_KEYS = ("architecture", "num_classes", "in_channels", "dataset_checksum")


def read_manifest(path: Path, state: dict[str, Any]) -> dict[str, Any]:
    """The manifest of an augkd model.pt, checked to hold what loading needs."""
    manifest = state.get("manifest")
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} has no manifest: it is not a model.pt written by an augkd run")
    missing = [k for k in _MANIFEST_KEYS if k not in manifest]
    if missing:
        raise ValueError(f"the manifest of {path} lacks {', '.join(missing)}")
    classes = manifest.get("classes")  # recorded since runs of library models (head=subset)
    if classes is not None and not (isinstance(classes, list)
                                    and all(isinstance(c, str) for c in classes)):
        raise ValueError(f"the manifest of {path} has classes {str(classes)[:60]!r}; expected a "
                         "list of class names")
    if manifest["architecture"] not in MODELS:
        raise ValueError(f"{path} names architecture {manifest['architecture']!r}, which augkd "
                         f"does not know (known: {', '.join(MODELS)})")
    return dict(manifest)


def model_from_state(path: Path, state: dict[str, Any], manifest: dict[str, Any]) -> nn.Module:
    """The model a model.pt describes: its manifest's architecture (DoReFa-quantized when the
    manifest records bit widths, ``quant``) with its weights."""
    architecture = manifest["architecture"]
    # model.pt holds every weight: the spec's own weights (a library's, a file's) are not
    # loaded again; a class subset's index comes from the recorded class names
    model = create_model(architecture, manifest["num_classes"], manifest["in_channels"],
                         load_weights=False, classes=manifest.get("classes"))
    if manifest.get("quant"):
        quantize_model(model, manifest["quant"])
    load_weights(model, state, path, architecture)
    return model


def load_weights(model: nn.Module, state: dict[str, Any], path: Path, architecture: str) -> None:
    """``model.load_state_dict(state["model"])`` with one clear error naming the file."""
    weights = state.get("model")
    if not isinstance(weights, dict):
        raise ValueError(f"{path} holds no model weights (key 'model')")
    check_tensors(weights, path)  # -inf in a bias would only show as a student's NaN loss
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:  # missing/unexpected keys or a wrong tensor shape
        detail = " ".join(str(err).split())
        raise ValueError(f"the weights in {path} do not fit its architecture {architecture}: "
                         f"{detail[:300]}") from None


def is_training_subset(manifest: dict[str, Any], dataset: Dataset) -> bool:
    """Whether ``dataset`` is the teacher's data (``manifest``) with its training split cut to a
    ``train_subset``: the same source and options but the subset, and the teacher's recorded
    checksum recomputed from ``dataset``'s source checksum (so the images are the same ones).
    A teacher trained on the whole training set may teach students on a subset of it."""
    theirs = manifest.get("dataset_options")
    if not isinstance(theirs, dict) or manifest.get("dataset") != dataset.name:
        return False
    mine = dataset.options
    if theirs.get("train_subset") is not None or mine.get("train_subset") is None:
        return False
    drop = (*RUNTIME_DATASET_OPTIONS, "train_subset", "subset_seed")
    if ({k: v for k, v in theirs.items() if k not in drop}
            != {k: v for k, v in mine.items() if k not in drop}):
        return False
    transforms = {k: theirs[k] for k in TRANSFORM_OPTIONS if theirs.get(k) is not None}
    source = dataset.source_checksum or dataset.checksum
    return transformed_checksum(source, transforms) == manifest.get("dataset_checksum")


def teacher_input_stats(manifest: dict[str, Any], dataset: Dataset
                        ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std that normalize a teacher's inputs on ``dataset``: the dataset's, or,
    where ``dataset`` is a training subset of the teacher's data (:func:`is_training_subset`),
    the teacher's own, recorded in its manifest (a subset's statistics differ a little)."""
    if manifest.get("mean") and manifest.get("std") and is_training_subset(manifest, dataset):
        return tuple(manifest["mean"]), tuple(manifest["std"])
    return tuple(dataset.mean), tuple(dataset.std)


def _check_manifest(path: Path, manifest: dict[str, Any], dataset: Dataset) -> None:
    problems = []
    if manifest.get("num_classes") != dataset.num_classes:
        problems.append(f"{manifest.get('num_classes')} classes, not {dataset.num_classes}")
    if manifest.get("in_channels") != dataset.in_channels:
        problems.append(f"{manifest.get('in_channels')} input channels, not {dataset.in_channels}")
    if (manifest.get("dataset_checksum") != dataset.checksum
            and not is_training_subset(manifest, dataset)):
        problems.append(_data_difference(manifest, dataset))
    if problems:
        raise ValueError(f"teacher {path} does not fit this dataset: it has {'; '.join(problems)}")


#: What a run's data is: the dataset, its root and the load-time options (``--dataset``,
#: ``--root``, ``--resize``, ``--train-subset``, ``--subset-seed``).
DATA_SETTINGS = ("dataset", "root", "resize", "train_subset", "subset_seed")
_DATA_OPTIONS = ("resize", "train_subset", "subset_seed")
#: Dataset options a student does not take from its teacher: whether to download, and where
#: this machine keeps the images (runtime choices, not what the data are).
_NOT_INHERITED = ("download", "data_on_device")


def _data_difference(manifest: dict[str, Any], dataset: Dataset) -> str:
    """How the teacher's data differs from ``dataset``, by the options that differ
    ("teacher: resize 16, train_subset 2000; this run: resize none, train_subset none"), or by
    checksum when the options agree (the images themselves changed)."""
    theirs = manifest.get("dataset_options") or {}
    theirs = {"dataset": manifest.get("dataset"), **(theirs if isinstance(theirs, dict) else {})}
    mine = {"dataset": dataset.name, **dataset.options}
    keys = [k for k in dict.fromkeys([*theirs, *mine]) if theirs.get(k) != mine.get(k)]

    def show(values: dict[str, Any]) -> str:
        return ", ".join(f"{k} {'none' if values.get(k) is None else values.get(k)}"
                         for k in keys)

    if keys:
        return f"other data (teacher: {show(theirs)}; this run: {show(mine)})"
    return (f"other images under the same options (teacher's data checksum "
            f"{str(manifest.get('dataset_checksum'))[:12]}, this run's {dataset.checksum[:12]}: "
            f"did the files at the dataset root change?)")


def read_teacher_manifest(source: str | Path) -> dict[str, Any] | None:
    """The manifest of an augkd teacher's model.pt, read without building the model; None for
    a foreign checkpoint (which has none) or a path that holds no finished run (loading the
    teacher later says what is wrong with it)."""
    try:
        contents = read_checkpoint_file(resolve_teacher_file(source))
    except (OSError, ValueError):
        return None
    if not (isinstance(contents, dict) and contents.get("format") == MODEL_FORMAT):
        return None
    manifest = contents.get("manifest")
    return manifest if isinstance(manifest, dict) else {}


def teacher_data_settings(source: str | Path) -> dict[str, Any] | None:
    """The data an augkd teacher was trained on, from its model.pt's manifest: the
    :data:`DATA_SETTINGS` it set (``dataset``, ``root``, ``resize``, ...). None for a foreign
    checkpoint (which records no data) or a path that holds no finished run."""
    manifest = read_teacher_manifest(source)
    if manifest is None:
        return None
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    options = config.get("dataset_options", manifest.get("dataset_options")) or {}
    settings = {"dataset": config.get("dataset", manifest.get("dataset")),
                "root": config.get("root")}
    if isinstance(options, dict):
        settings.update({k: options.get(k) for k in _DATA_OPTIONS})
        # the loader's own options that define the data (size, classes, val_labels...)
        other = {k: v for k, v in options.items()
                 if isinstance(k, str) and k not in _DATA_OPTIONS and k not in _NOT_INHERITED}
        if other:
            settings["dataset_options"] = other
    return {k: v for k, v in settings.items() if v is not None}


def inherit_teacher_data(given: dict[str, Any], teacher: str | Path,
                         log: Callable[[str], None] = print) -> dict[str, Any]:
    """The data settings of a student (or ranking) of ``teacher``: those in ``given`` (None:
    not given) and, for the rest, the teacher's (:func:`teacher_data_settings`), so a student
    need not repeat ``--dataset``, ``--root``, ``--resize``, ``--train-subset`` and
    ``--subset-seed``. Says in one line what it took. Nothing is taken when ``given`` names
    another dataset than the teacher's, or the teacher is a foreign checkpoint.

    Returns:
        The settings to use, the given ones and the teacher's, without the unset ones.
    """
    chosen = {k: v for k, v in given.items() if v is not None}
    theirs = teacher_data_settings(teacher)
    if not theirs or chosen.get("dataset", theirs.get("dataset")) != theirs.get("dataset"):
        return chosen
    taken = {k: v for k, v in theirs.items() if k not in chosen and k != "dataset_options"}
    mine = chosen.get("dataset_options") or {}
    extra = {k: v for k, v in (theirs.get("dataset_options") or {}).items() if k not in mine}
    if extra:
        taken["dataset_options"] = extra
    if taken:
        shown = {**{k: v for k, v in taken.items() if k != "dataset_options"}, **extra}
        log(f"data as the teacher's ({teacher}): "
            + ", ".join(f"{k} {v}" for k, v in shown.items())
            + " (give the option to override)")
    out = {**taken, **chosen}
    if extra:
        out["dataset_options"] = {**extra, **mine}
    return out
