"""The model registry: architecture name -> factory ``(num_classes, in_channels) -> KDModel``."""

from __future__ import annotations

import operator
from collections.abc import Callable

from augkd.models.base import KDModel
from augkd.registry import Registry

ModelFactory = Callable[[int, int], KDModel]

MODELS: Registry[ModelFactory] = Registry("model")


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: register a factory ``(num_classes, in_channels) -> KDModel`` under ``name``."""

    def decorator(factory: ModelFactory) -> ModelFactory:
        MODELS.register(name, factory)
        return factory

    return decorator


def list_models() -> list[str]:
    """The registered architecture names, in registration order."""
    return MODELS.names()


def _positive_int(what: str, value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return number


def create_model(name: str, num_classes: int, in_channels: int = 3) -> KDModel:
    """Build a freshly initialised architecture of the zoo.

    Args:
        name: a registered name (see :func:`list_models`), e.g. ``"resnet56"``, ``"wrn_40_2"``.
        num_classes: number of logits (>= 1).
        in_channels: channels of the input images (>= 1); only the first conv depends on it.

    Returns:
        The model (train mode, on the CPU, float32 parameters).

    Raises:
        UnknownNameError: ``name`` is not registered; the message lists the known names.
        ValueError: ``num_classes`` or ``in_channels`` is not an integer >= 1.
    """
    factory = MODELS.get(name)
    num_classes = _positive_int("num_classes", num_classes)
    in_channels = _positive_int("in_channels", in_channels)
    return factory(num_classes, in_channels)
