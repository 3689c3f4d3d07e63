"""The registry of augmentation classes, looked up by spec name (see ``augkd.augment.create``)."""

from __future__ import annotations

from collections.abc import Callable

from augkd.augment.base import Augmentation
from augkd.registry import Registry

AUGMENTATIONS: Registry[type[Augmentation]] = Registry("augmentation")


def register_augmentation(name: str) -> Callable[[type[Augmentation]], type[Augmentation]]:
    """Class decorator: register an :class:`Augmentation` subclass under ``name``.

    The class's keyword-only ``__init__`` parameters are the parameters its spec accepts,
    e.g. ``cutout(size=8)`` calls ``Cutout(size=8)``.
    """

    def decorator(cls: type[Augmentation]) -> type[Augmentation]:
        cls.name = name
        AUGMENTATIONS.register(name, cls)
        return cls

    return decorator
