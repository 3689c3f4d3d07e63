"""The model registry: architecture name -> factory ``(num_classes, in_channels) -> KDModel``.

Besides the zoo's names, the registry resolves the specs of other libraries' models,
``tv:NAME(...)`` and ``timm:NAME(...)`` (:mod:`augkd.models.external`), so every place that
checks or builds a model by name (configs, sweeps, run folders) takes them too. They are not
listed: iterating the registry gives the zoo's names only.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable, Sequence

from augkd.models.base import KDModel
from augkd.registry import Registry, UnknownNameError

ModelFactory = Callable[[int, int], KDModel]


class ModelRegistry(Registry[ModelFactory]):
    """The zoo's names, plus ``tv:``/``timm:`` specs resolved on demand."""

    def get(self, name: str) -> ModelFactory:
        """The factory of a zoo name or of a library spec (checked: name and options).

        Raises:
            UnknownNameError: an unknown zoo or library model; the message suggests close
                names and lists the zoo.
            ValueError: a malformed spec or bad option.
            ImportError: the spec's library is not installed.
        """
        from augkd.models import external

        if external.is_model_spec(name):
            return external.external_factory(name)
        try:
            return super().get(name)
        except UnknownNameError:
            close = difflib.get_close_matches(str(name), self.names(), n=5, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownNameError(
                f"unknown model {name!r}{hint} Known: {', '.join(self.names())}; or a "
                "torchvision or timm model as tv:NAME or timm:NAME (docs/teachers.md)"
            ) from None

    def __contains__(self, name: object) -> bool:
        from augkd.models import external

        if external.is_model_spec(name):
            try:
                external.external_factory(name)
            except (ValueError, ImportError):  # UnknownNameError is a ValueError
                return False
            return True
        return super().__contains__(name)


MODELS: ModelRegistry = ModelRegistry("model")


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


def create_model(name: str, num_classes: int, in_channels: int = 3, *,
                 load_weights: bool = True, classes: Sequence[str] | None = None) -> KDModel:
    """Build a freshly initialised architecture of the zoo, or a torchvision / timm model.

    Args:
        name: a registered name (see :func:`list_models`), e.g. ``"resnet56"``, ``"wrn_40_2"``,
            or a library spec, ``"tv:resnet18(weights=IMAGENET1K_V1, head=new)"``,
            ``"timm:resnet18"`` (:mod:`augkd.models.external`).
        num_classes: number of logits (>= 1).
        in_channels: channels of the input images (>= 1); only the first conv depends on it.
        load_weights: for a library spec with ``weights=...``, load them (False: build the same
            shapes without them, for a caller that loads its own state, such as a run folder's
            ``model.pt``). Zoo names have no weights to load.
        classes: the dataset's class names; a spec with ``head=subset`` picks its logits by
            them. Zoo names ignore it.

    Returns:
        The model (train mode, on the CPU, float32 parameters).

    Raises:
        UnknownNameError: ``name`` is not registered; the message lists the known names.
        ValueError: ``num_classes`` or ``in_channels`` is not an integer >= 1, or a library
            spec's options or weights do not fit.
    """
    factory = MODELS.get(name)
    num_classes = _positive_int("num_classes", num_classes)
    in_channels = _positive_int("in_channels", in_channels)
    if name in MODELS.names():
        return factory(num_classes, in_channels)
    return factory(num_classes, in_channels, load_weights=load_weights, classes=classes)
