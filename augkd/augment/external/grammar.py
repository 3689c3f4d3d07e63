"""The shape of external DA specs, ``source(options):Class(key=value, ...) | Class2(...)``: the
``source:`` prefix and the stages, whose calls and literal values are parsed (with ``ast``,
nothing evaluated) and written back by :mod:`augkd.grammar`'s literal form."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from augkd.grammar import PIPE, format_literal, parse_call_chain  # noqa: F401 (re-exported)

#: The forms of external specs, listed after the registered names by ``list_augmentations``.
EXTERNAL_FORMS: tuple[str, ...] = (
    "kornia:<Class>(...)",
    "albumentations:<Class>(...)",
    "<module>:<Class>(...)",
)

#: The spec sources that name a library (kornia:, albumentations:), not a user module.
LIBRARY_SOURCES = ("kornia", "albumentations")

#: Most threads an albumentations DA may use (a typo such as workers=4000 fails at parse time).
MAX_WORKERS = 256

_PREFIX_RE = re.compile(
    r"^\s*(?P<prefix>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\s*(?:\([^()]*\))?)\s*:(?P<body>.*)$",
    re.DOTALL,
)
SEED_HIGH = 2**62  # seeds are int64 draws in [0, 2**62)


def is_external_spec(spec: object) -> bool:
    """Whether ``spec`` has the ``source:body`` shape of an external spec."""
    return isinstance(spec, str) and _PREFIX_RE.match(spec) is not None


# ------------------------------------------------------------------------------ spec syntax


@dataclasses.dataclass(frozen=True)
class Stage:
    """One named object of an external spec and its keyword values, in the order given.

    Also used for the prefix: ``albumentations(workers=4)`` is ``Stage("albumentations",
    {"workers": 4})``.
    """

    name: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        if not self.kwargs:
            return self.name
        values = ", ".join(f"{k}={format_literal(v)}" for k, v in self.kwargs.items())
        return f"{self.name}({values})"


@dataclasses.dataclass(frozen=True)
class ExternalSpec:
    """A parsed external spec: ``source(options):stage | stage | ...``."""

    prefix: Stage
    stages: tuple[Stage, ...]

    def __str__(self) -> str:
        return f"{self.prefix}:{f' {PIPE} '.join(map(str, self.stages))}"

    def label(self, stage: Stage) -> str:
        """``kornia:RandomAffine``: how error messages name one stage."""
        return f"{self.prefix.name}:{stage.name}"


def parse_external_spec(spec: str) -> ExternalSpec:
    """Parse ``source(options):Name(key=value, ...) | Name ...`` (see the module docstring).

    Raises:
        ValueError: not that shape, positional arguments, a repeated key, or a value that is
            not a literal.
    """
    match = _PREFIX_RE.match(spec) if isinstance(spec, str) else None
    malformed = f"malformed augmentation spec {spec!r}; expected source:Name(key=value, ...)"
    if match is None:
        raise ValueError(malformed)
    prefix = _parse_stages(spec, match.group("prefix"))
    body = match.group("body").strip()
    if len(prefix) != 1 or not body:
        raise ValueError(malformed)
    return ExternalSpec(prefix[0], tuple(_parse_stages(spec, body)))


def _parse_stages(spec: str, text: str) -> list[Stage]:
    return [Stage(name, kwargs) for name, kwargs in parse_call_chain(spec, text)]
