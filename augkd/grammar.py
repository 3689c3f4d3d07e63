"""The spec grammar every family of augkd is named in: ``name`` or ``name(key=value, ...)``.

One leaf module (it imports nothing of augkd but its number and registry helpers), used by the
DAs, the distillation methods, the balancers and the models: :func:`parse_spec` splits a string
into its name and values (int, float, bool ``true``/``false`` or str), :func:`check_spec_options`
checks those values against the keyword-only ``__init__`` parameters of the class the name
resolves to (names and type hints; an int widens to a float), and :func:`format_value` writes a
value back. Which names exist, and what they build, is each family's business (its registry);
the DA factory is :mod:`augkd.augment.spec`.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from typing import Any, Literal

from augkd.numbers import is_finite

__all__ = [
    "MAX_SIDE",
    "MAX_SPEC_LENGTH",
    "NESTED_KEY_RE",
    "SPEC_RE",
    "check_param",
    "check_spec_length",
    "check_spec_options",
    "coerce_value",
    "format_value",
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
