"""The spec grammar every family of augkd is named in: ``name`` or ``name(key=value, ...)``.

One leaf module (it imports nothing of augkd but its number and registry helpers), used by the
DAs, the distillation methods, the balancers, the models, the optimizers and the lr schedules:
:func:`parse_spec` splits a string into its name and values (int, float, bool
``true``/``false`` or str; a bare path is a string), :func:`check_spec_options` checks those
values against the keyword-only ``__init__`` parameters of the class the name resolves to
(names and type hints; an int widens to a float), and :func:`format_value` writes a value back.

External DAs (kornia, albumentations, your own classes) take Python literal values, tuples and
lists too, so their bodies use the literal form of the same grammar, ``Name(key=value, ...) |
Name2(...)``: :func:`parse_call_chain` parses it with ``ast`` (nothing is evaluated),
:func:`literal_value` reads one value and :func:`format_literal` writes one back; the
``source:`` prefix around it is :mod:`augkd.augment.external.grammar`'s. Which names exist,
and what they build, is each family's business (its registry).
"""

from __future__ import annotations

import ast
import inspect
import re
import types
import typing
from typing import Any, Literal

from augkd.numbers import is_finite

__all__ = [
    "PIPE",
    "MAX_SIDE",
    "MAX_SPEC_LENGTH",
    "NESTED_KEY_RE",
    "SPEC_RE",
    "check_param",
    "check_spec_length",
    "check_spec_options",
    "coerce_value",
    "format_literal",
    "format_value",
    "literal_value",
    "parse_call_chain",
    "parse_spec",
    "parse_value",
    "spec_parameters",
]

SPEC_RE = re.compile(r"^\s*(?P<name>[A-Za-z][\w+\-]*)\s*(?:\((?P<args>.*)\))?\s*$", re.DOTALL)
_KEY_RE = re.compile(r"^[A-Za-z_]\w*$")
_INT_RE = re.compile(r"^[+-]?\d+$")
NESTED_KEY_RE = re.compile(r"^[A-Za-z_]\w*\s*=")


#: Largest pixel size a DA parameter may take (a hole side, a padding): above any image augkd
#: reads, so a typo such as size=10**8 fails at parse time, not after hours of training.
MAX_SIDE = 4096


#: Longest spec string read (a kornia pipeline of a dozen transforms is a few hundred
#: characters; a 63,000-character spec once overflowed the parser's recursion).
MAX_SPEC_LENGTH = 2000


def check_spec_length(spec: object, kind: str = "augmentation") -> None:
    """Raise ``ValueError`` for a spec string longer than :data:`MAX_SPEC_LENGTH`."""
    if isinstance(spec, str) and len(spec) > MAX_SPEC_LENGTH:
        raise ValueError(f"{kind} spec of {len(spec)} characters ({spec[:40]!r}...); specs are "
                         f"at most {MAX_SPEC_LENGTH} characters")


def check_param(aug: str, param: str, value: object, ok: bool, allowed: str) -> None:
    """Raise ``ValueError`` naming the DA, parameter, value and allowed range unless ``ok``.

    Used by the DA constructors, e.g. ``check_param("cutout", "size", -1, size >= 1, ">= 1")``.
    """
    if not ok:
        raise ValueError(f"{aug}: bad value {param}={value!r}; allowed: {allowed}")


def parse_spec(spec: str, kind: str = "augmentation") -> tuple[str, dict[str, Any]]:
    """Split a spec string into its name and raw parsed keyword values (aliases not resolved).

    The same syntax names distillation methods (``fitnet(hint_layer=2)``); ``kind`` is the
    word the error messages use.

    Raises:
        ValueError: the string is not ``name`` or ``name(key=value, ...)``.
    """
    if not isinstance(spec, str):
        raise ValueError(f"{kind} spec must be a string, got {type(spec).__name__}")
    check_spec_length(spec, kind)
    match = SPEC_RE.match(spec)
    if match is None:
        raise ValueError(
            f"malformed {kind} spec {spec!r}; expected name or name(key=value, ...)"
        )
    name, args = match.group("name"), match.group("args")
    kwargs: dict[str, Any] = {}
    if args is not None and args.strip():
        for item in args.split(","):
            key, sep, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep or not _KEY_RE.match(key) or not raw or "(" in raw or ")" in raw:
                raise ValueError(
                    f"malformed {kind} spec {spec!r}: {item.strip()!r} is not key=value"
                )
            if key in kwargs:
                raise ValueError(f"malformed {kind} spec {spec!r}: {key!r} given twice")
            kwargs[key] = parse_value(raw)
    return name, kwargs


def parse_value(raw: str) -> Any:
    """``"8"`` -> 8, ``"0.4"`` -> 0.4, ``"true"`` -> True, ``"'a'"``/``"a"`` -> ``"a"``."""
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if _INT_RE.match(raw):
        return int(raw)
    try:
        return float(raw)
    except ValueError:
        return raw


def spec_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword-only ``__init__`` parameters of ``cls``: the parameters its spec accepts."""
    signature = inspect.signature(cls.__init__)
    return {
        p.name: p for p in signature.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def check_spec_options(name: str, cls: type, kwargs: dict[str, Any],
                       word: str = "parameter") -> dict[str, Any]:
    """``kwargs`` checked against the keyword-only ``__init__`` parameters of ``cls`` (names
    and type hints; ints widen to floats), for any class named by a spec (DAs, distillers).

    Raises:
        ValueError: ``"<name>: unknown <word> 'k'; allowed: ..."`` or a value of the wrong type.
    """
    params = spec_parameters(cls)
    hints = typing.get_type_hints(cls.__init__)
    for key, value in kwargs.items():
        if key not in params:
            allowed = ", ".join(params) or "none"
            raise ValueError(f"{name}: unknown {word} {key!r}; allowed: {allowed}")
        kwargs[key] = coerce_value(name, key, value, hints.get(key, Any))
    return kwargs


def coerce_value(aug: str, key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the type ``hint``; widen an int where a float is wanted.

    ``aug`` is the name the error message starts with (a DA's or a distiller's)."""
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        errors = []
        for option in options:
            try:
                return coerce_value(aug, key, value, option)
            except ValueError as err:
                errors.append(err)
        raise errors[0]
    if origin is Literal:
        choices = typing.get_args(hint)
        check_param(aug, key, value, value in choices, "one of " + ", ".join(map(str, choices)))
        return value
    if hint is bool:
        check_param(aug, key, value, isinstance(value, bool), "true or false")
        return value
    if hint is int:
        check_param(aug, key, value, type(value) is int, "an integer")
        return value
    if hint is float:
        check_param(aug, key, value, type(value) in (int, float) and is_finite(value),
                    "a finite number")
        return float(value)
    if hint is str:
        check_param(aug, key, value, isinstance(value, str), "a string")
        return value
    return value


def format_value(value: Any) -> str:
    """A spec value as written in a spec: ``true``/``false``, floats by ``repr``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


# ----------------------------------------------------------------- the literal form (external)
# kornia, albumentations and user classes take Python literal values (tuples, lists), so their
# specs, ``Name(key=value, ...) | Name2(...)``, are parsed with ``ast`` (nothing is evaluated).

PIPE = "|"
_WORD_RE = re.compile(r"^[A-Za-z_]\w*$")
_WORDS: dict[str, Any] = {"true": True, "false": False, "none": None}


def parse_call_chain(spec: str, text: str) -> list[tuple[str, dict[str, Any]]]:
    """``text``, of the spec ``spec``, as ``[(dotted name, keyword values), ...]``: the calls
    of ``Name(key=value, ...) | Name2 | ...``, values parsed by :func:`literal_value`.

    Raises:
        ValueError: not that shape, positional arguments, a repeated key, or a value that is
            not a literal (the message quotes ``spec``).
    """
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(
            f"malformed augmentation spec {spec!r}: {text.strip()!r} is not "
            f"Name(key=value, ...) {PIPE} Name(...) with literal values"
        ) from None
    return [_call(spec, node) for node in _split_pipe(tree)]


def _split_pipe(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _split_pipe(node.left) + _split_pipe(node.right)
    return [node]


def _call(spec: str, node: ast.expr) -> tuple[str, dict[str, Any]]:
    if not isinstance(node, ast.Call):
        return _dotted(spec, node), {}
    name = _dotted(spec, node.func)
    if node.args or any(k.arg is None for k in node.keywords):
        raise ValueError(f"malformed augmentation spec {spec!r}: {name} takes key=value only")
    kwargs: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg in kwargs:
            raise ValueError(f"malformed augmentation spec {spec!r}: {keyword.arg!r} given twice")
        kwargs[keyword.arg] = literal_value(spec, keyword.value)
    return name, kwargs


def _dotted(spec: str, node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(spec, node.value)}.{node.attr}"
    raise ValueError(
        f"malformed augmentation spec {spec!r}: {ast.unparse(node)!r} is not a (dotted) name"
    )


def literal_value(spec: str, node: ast.expr) -> Any:
    """The value of a literal node; bare words are strings, ``true``/``false``/``none`` too."""
    if isinstance(node, ast.Name):
        return _WORDS.get(node.id.lower(), node.id)
    if isinstance(node, ast.Tuple | ast.List):
        items = [literal_value(spec, item) for item in node.elts]
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
