"""A user's own DA class, named ``module.path:Class(...)``: imported (only from a trusted
spec), checked against the DA contract and built."""

from __future__ import annotations

import importlib
import typing
from typing import Any

from augkd.augment.base import Augmentation
from augkd.augment.external.base import resolve_attr, unknown_name
from augkd.augment.external.grammar import LIBRARY_SOURCES, PIPE, ExternalSpec
from augkd.grammar import coerce_value, spec_parameters
from augkd.registry import UnknownNameError
from augkd.trust import check_import

# -------------------------------------------------------------------------------- user DAs


def create_user(spec: ExternalSpec, *, per_batch: bool | None) -> Augmentation:
    module_name = spec.prefix.name
    label = str(spec)
    if spec.prefix.kwargs:
        raise ValueError(f"{label}: a module:Class spec takes no options before the colon")
    if len(spec.stages) != 1:
        raise ValueError(f"{label}: a module:Class spec names one class; chain steps inside it "
                         f"({PIPE!r} pipelines are for kornia: and albumentations:)")
    stage = spec.stages[0]
    check_import(label, module_name)  # a spec read back from a folder imports nothing
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise UnknownNameError(
            f"{label}: cannot import module {module_name!r} ({err}); a module:Class spec needs "
            "the module on sys.path (kornia: and albumentations: name those libraries)"
        ) from err
    try:
        cls = resolve_attr(module, stage.name)
    except AttributeError:
        known = [n for n, v in vars(module).items()
                 if isinstance(v, type) and issubclass(v, Augmentation) and v is not Augmentation]
        raise unknown_name(label, stage.name, f"module {module_name}", known) from None
    if not (isinstance(cls, type) and issubclass(cls, Augmentation)):
        hint = ""
        if module_name.split(".")[0] in LIBRARY_SOURCES:
            hint = f"; for the library's transforms write {module_name.split('.')[0]}:{stage.name}"
        raise ValueError(
            f"{label}: {module_name}.{stage.name} is not a subclass of "
            f"augkd.augment.base.Augmentation (see the template in docs/augmentations.md){hint}"
        )
    params = spec_parameters(cls)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: the values are passed as written
        hints = {}
    kwargs = dict(stage.kwargs)
    for key, value in kwargs.items():
        if key not in params:
            allowed = ", ".join(params) or "none"
            raise ValueError(f"{label}: unknown parameter {key!r}; allowed: {allowed} "
                             "(a spec's parameters are the keyword-only ones of __init__)")
        kwargs[key] = coerce_value(label, key, value, hints.get(key, Any))
    if per_batch is not None:
        if "per_batch" in params:
            kwargs["per_batch"] = bool(per_batch)
        elif per_batch:
            raise ValueError(f"{label}: per-batch mode is not available, {cls.__qualname__}."
                             "__init__ takes no per_batch, so it draws per image")
    try:
        aug = cls(**kwargs)
    except TypeError as err:  # abstract sample/apply, a missing required parameter
        raise ValueError(f"{label}: breaks the augkd DA contract: {err}") from err
    except ValueError as err:
        raise ValueError(f"{label}: {err}") from err
    for key, value in kwargs.items():
        if getattr(aug, key, object()) != value:
            raise ValueError(f"{label}: breaks the augkd DA contract: parameter {key!r} is not "
                             f"stored as the attribute {key!r}, so spec_of cannot write it back")
    return aug
