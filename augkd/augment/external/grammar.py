"""The syntax of external DA specs, ``source:Class(key=value, ...) | Class2(...)``: parsed
safely with ``ast`` (nothing is evaluated) and written back canonically."""

from __future__ import annotations

import ast
import dataclasses
import re
from typing import Any

from augkd.numbers import is_finite

#: The forms of external specs, listed after the registered names by ``list_augmentations``.
EXTERNAL_FORMS: tuple[str, ...] = (
    "kornia:<Class>(...)",
    "albumentations:<Class>(...)",
    "<module>:<Class>(...)",
)

#: The spec sources that name a library (kornia:, albumentations:), not a user module.
LIBRARY_SOURCES = ("kornia", "albumentations")

#: Joins the transforms of a kornia or albumentations pipeline in a spec.
PIPE = "|"

#: Most threads an albumentations DA may use (a typo such as workers=4000 fails at parse time).
MAX_WORKERS = 256

_PREFIX_RE = re.compile(
    r"^\s*(?P<prefix>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\s*(?:\([^()]*\))?)\s*:(?P<body>.*)$",
    re.DOTALL,
)
_WORD_RE = re.compile(r"^[A-Za-z_]\w*$")
_WORDS: dict[str, Any] = {"true": True, "false": False, "none": None}
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
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(
            f"malformed augmentation spec {spec!r}: {text.strip()!r} is not "
            f"Name(key=value, ...) {PIPE} Name(...) with literal values"
        ) from None
    return [_stage(spec, node) for node in _split_pipe(tree)]


def _split_pipe(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _split_pipe(node.left) + _split_pipe(node.right)
    return [node]


def _stage(spec: str, node: ast.expr) -> Stage:
    if not isinstance(node, ast.Call):
        return Stage(_dotted(spec, node))
    name = _dotted(spec, node.func)
    if node.args or any(k.arg is None for k in node.keywords):
        raise ValueError(f"malformed augmentation spec {spec!r}: {name} takes key=value only")
    kwargs: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg in kwargs:
            raise ValueError(f"malformed augmentation spec {spec!r}: {keyword.arg!r} given twice")
        kwargs[keyword.arg] = _literal(spec, keyword.value)
    return Stage(name, kwargs)


def _dotted(spec: str, node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(spec, node.value)}.{node.attr}"
    raise ValueError(
        f"malformed augmentation spec {spec!r}: {ast.unparse(node)!r} is not a (dotted) name"
    )


def _literal(spec: str, node: ast.expr) -> Any:
    """The value of a literal node; bare words are strings, ``true``/``false``/``none`` too."""
    if isinstance(node, ast.Name):
        return _WORDS.get(node.id.lower(), node.id)
    if isinstance(node, ast.Tuple | ast.List):
        items = [_literal(spec, item) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    try:
        value = ast.literal_eval(node)
    except ValueError:
        value = None  # not a literal: fall through to the message below
    else:
        if isinstance(value, str | bool) or is_finite(value):
            return value
    raise ValueError(
        f"malformed augmentation spec {spec!r}: {ast.unparse(node)!r} is not a literal "
        "(finite number, string, true/false/none, tuple or list)"
    )


def format_literal(value: Any) -> str:
    """The canonical spec text of a value: ``true``, ``none``, ``0.5``, ``reflect``, ``(1, 2)``."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "none"}[value]
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        plain = _WORD_RE.match(value) and value.lower() not in _WORDS
        return value if plain else repr(value)
    if isinstance(value, tuple):
        items = ", ".join(map(format_literal, value))
        return f"({items},)" if len(value) == 1 else f"({items})"
    if isinstance(value, list):
        return f"[{', '.join(map(format_literal, value))}]"
    return str(value)
