"""A small name -> factory registry whose errors say which names exist.

Every pluggable family of augkd (datasets, models, augmentations, balancers) is a
:class:`Registry`, so a misspelt name always fails the same, helpful way::

    >>> MODELS.get("resnt20")
    Traceback (most recent call last):
    KeyError: "unknown model 'resnt20'; known: resnet8, resnet14, ..."
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """Raised for a name that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return str(self.args[0])


class Registry(Generic[T]):
    """A mapping from names to objects (usually factories) of one kind.

    Args:
        kind: what the entries are, in words ("model", "augmentation"): used in errors.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""
        if obj is not None:
            self._add(name, obj)
            return obj

        def decorator(target: T) -> T:
            self._add(name, target)
            return target

        return decorator

    def _add(self, name: str, obj: T) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        """The entry named ``name``; :class:`UnknownNameError` (listing the known names) if none."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self._entries)}"
                f"{did_you_mean(name, self._entries)}"
            ) from None

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:  # an unhashable value (a list from a YAML file) is no name
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """``"; did you mean cutmix?"`` for the known names closest to ``name`` (case aside), or
    "" when none is close."""
    known = list(known)
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(by_lower[c] for c in close)}?" if close else ""
