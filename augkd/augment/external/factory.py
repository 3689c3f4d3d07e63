"""Build an external DA from its spec, and write its canonical spec back."""

from __future__ import annotations

import inspect

from augkd.augment.base import Augmentation
from augkd.augment.external.albumentations_da import AlbumentationsAugmentation
from augkd.augment.external.base import LibraryAugmentation
from augkd.augment.external.grammar import ExternalSpec, Stage, parse_external_spec
from augkd.augment.external.kornia_da import KorniaAugmentation
from augkd.augment.external.user import create_user
from augkd.grammar import spec_parameters

# ---------------------------------------------------------------------------- create, spec_of


def create_external(spec: str, *, per_batch: bool | None = None) -> Augmentation:
    """Build the DA named by an external ``spec``; ``per_batch`` as in :func:`create`.

    Raises:
        ValueError: malformed spec, unknown library class, module or name (UnknownNameError,
            also a ValueError), bad parameters, an object that breaks the DA contract, or
            per-batch mode asked of a DA that draws per image only.
    """
    parsed = parse_external_spec(spec)
    adapter = _LIBRARIES.get(parsed.prefix.name)
    if adapter is not None:
        return adapter.from_spec(parsed, per_batch=per_batch)
    return create_user(parsed, per_batch=per_batch)


def external_spec_of(aug: Augmentation) -> str:
    """The canonical spec of a kornia, albumentations or user DA (``spec_of`` comes here)."""
    if isinstance(aug, LibraryAugmentation):
        return str(aug.spec)
    cls = type(aug)
    if "<locals>" in cls.__qualname__:
        raise ValueError(
            f"{cls.__qualname__} has no spec: a user DA is named by module:Class, so it must "
            "be defined at the top level of an importable module"
        )
    kwargs = {}
    for key, param in spec_parameters(cls).items():
        if hasattr(aug, key):
            value = getattr(aug, key)
            if param.default is inspect.Parameter.empty or value != param.default:
                kwargs[key] = value
    return str(ExternalSpec(Stage(cls.__module__), (Stage(cls.__qualname__, kwargs),)))



_LIBRARIES: dict[str, type[LibraryAugmentation]] = {
    KorniaAugmentation.library: KorniaAugmentation,
    AlbumentationsAugmentation.library: AlbumentationsAugmentation,
}
