"""What the kornia and albumentations adapters share, and the checks of a library class's
keywords."""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import os
import types
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

from augkd.augment.base import Augmentation
from augkd.augment.external.grammar import ExternalSpec
from augkd.registry import UnknownNameError


def resolve_attr(root: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        root = getattr(root, part)
    return root


def check_kwargs(label: str, target: Any, kwargs: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming ``label`` for a keyword that ``target`` does not take.

    albumentations only warns about unknown arguments; a typo must stop the run instead."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # no signature to read: the call itself will complain
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    by_keyword = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    allowed = [n for n, p in params.items() if p.kind in by_keyword]
    for key in kwargs:
        if key not in allowed:
            raise ValueError(f"{label}: unknown parameter {key!r}; allowed: "
                             f"{', '.join(allowed) or 'none'}")


def construct(label: str, cls: type, kwargs: dict[str, Any]) -> Any:
    check_kwargs(label, cls, kwargs)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{label}: {err}") from err


def unknown_name(label: str, name: str, where: str, known: list[str]) -> UnknownNameError:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UnknownNameError(f"{label}: no {name!r} in {where}{hint}")


# ------------------------------------------------------------------------ library adapters


class LibraryAugmentation(Augmentation):
    """What the kornia and albumentations adapters share: the parsed spec they were built from."""

    #: The spec source that names the library (``kornia``, ``albumentations``).
    library: ClassVar[str]

    def __init__(self, spec: ExternalSpec, *, per_batch: bool = False) -> None:
        super().__init__(per_batch=per_batch)
        self.spec = spec

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: ExternalSpec, *, per_batch: bool | None) -> LibraryAugmentation:
        """Build the DA of a parsed spec whose source is :attr:`library`."""

    def extra_repr(self) -> str:
        return repr(str(self.spec))

    @contextlib.contextmanager
    def _naming_the_spec(self) -> Iterator[None]:
        """Let a library's own error say which DA raised it (type unchanged: OOM stays OOM)."""
        try:
            yield
        except Exception as err:
            if str(self.spec) not in str(err):
                err.add_note(f"raised by the augmentation {str(self.spec)!r}")
            raise


def import_library(label: str, module: str) -> types.ModuleType:
    if module == "albumentations":  # its import asks PyPI for a newer version, unless told not to
        os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"{label}: specs of this kind need the {module.split('.')[0]} "
                         f"package ({err})") from err
