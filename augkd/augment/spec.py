"""Spec strings: the one way a DA is named on the command line, in configs and in result tables.

A spec is a registered name with optional keyword arguments::

    cutmix                      cutmix(beta=1.0)            cutout(size=8)
    crop+flip                   autoaugment(policy=cifar10)
    mixup(alpha=0.4, per_batch=true)
    cutmixpick-t                (alias of cutmixpick(score=teacher))
    pick(autoaugment, by=teacher, pool=2)   (a DA spec as the first argument, see below)

Values parse as int, float, bool (``true``/``false``) or str, then are checked against the
type hints of the class's keyword-only ``__init__`` parameters, which are the parameters a spec
accepts. :func:`spec_of` writes the canonical spec back (defaults omitted, aliases preferred),
so ``spec_of(create(s)) == s`` for every canonical ``s``, e.g. every entry of :data:`PAPER_DAS`.

A DA class whose ``nested_spec`` names a parameter (:class:`augkd.augment.pick.Pick`) takes a
whole DA spec, built-in or external, as its first, positional argument:
``pick(kornia:RandomPerspective(distortion_scale=0.5), by=student)``. That argument runs to
the first comma outside brackets and quotes; :func:`spec_of` writes it back the same way.

Specs of the shape ``source:body`` name DAs of other libraries and of user code, e.g.
``kornia:RandomAffine(degrees=15, p=1.0) | RandomGaussianNoise(std=0.05)``,
``albumentations:GridDistortion(p=1.0)`` or ``my_package.my_module:MyAugmentation(strength=3)``;
:mod:`augkd.augment.external` parses and builds them (their values may be tuples).
"""

from __future__ import annotations

import inspect
from typing import Any

from augkd.augment.base import Augmentation, set_spec_writer
from augkd.augment.external import (
    EXTERNAL_FORMS,
    create_external,
    external_spec_of,
    is_external_spec,
)
from augkd.augment.registry import AUGMENTATIONS
from augkd.grammar import (  # noqa: F401  (MAX_SIDE and check_param: re-exported for DA modules)
    MAX_SIDE,
    MAX_SPEC_LENGTH,
    NESTED_KEY_RE,
    SPEC_RE,
    check_param,
    check_spec_length,
    check_spec_options,
    coerce_value,
    format_value,
    parse_spec,
    spec_parameters,
)
from augkd.registry import UnknownNameError, did_you_mean

#: Short names for a DA with some parameters fixed: alias -> (registered name, fixed params).
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "cutmixpick-t": ("cutmixpick", {"score": "teacher"}),
    "cutmixpick-s": ("cutmixpick", {"score": "student"}),
}

#: The nine DAs of the benchmark, in the order of docs/protocol.md §2.
PAPER_DAS: tuple[str, ...] = (
    "identity",
    "flip",
    "crop+flip",
    "cutout",
    "mixup",
    "cutmix",
    "autoaugment",
    "cutmixpick-t",
    "cutmixpick-s",
)



def _split_nested(spec: str) -> tuple[str, str, str] | None:
    """``("pick", "autoaugment", " by=teacher")`` for ``pick(autoaugment, by=teacher)``: the name,
    the nested DA spec (up to the first comma outside brackets and quotes) and the rest, for a
    registered DA with a ``nested_spec`` parameter whose first argument is not ``key=value``;
    None for every other spec."""
    match = SPEC_RE.match(spec) if isinstance(spec, str) else None
    if match is None or match.group("args") is None or match.group("name") not in AUGMENTATIONS:
        return None
    name, args = match.group("name"), match.group("args")
    if getattr(AUGMENTATIONS.get(name), "nested_spec", None) is None:
        return None
    depth, quote, end = 0, "", len(args)
    for i, char in enumerate(args):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            end = i
            break
    nested, rest = args[:end].strip(), args[end + 1:]
    if not nested or NESTED_KEY_RE.match(nested):
        return None  # name() or name(key=value, ...): the parameters only
    return name, nested, rest


def _resolve(spec: str) -> tuple[type[Augmentation], dict[str, Any]]:
    nested = _split_nested(spec)
    if nested is not None:
        name, inner, rest = nested
        cls = AUGMENTATIONS.get(name)
        try:
            _, raw = parse_spec(f"{name}({rest})")
        except ValueError:
            raise ValueError(f"malformed augmentation spec {spec!r}: after its DA spec, {name} "
                             "takes key=value only") from None
        kwargs = check_spec_options(name, cls, raw)
        head = SPEC_RE.match(inner)
        if (head and head.group("name") in AUGMENTATIONS
                and getattr(AUGMENTATIONS.get(head.group("name")), "nested_spec", None)):
            # refused here, before building it, so a deeply nested spec cannot recurse
            raise ValueError(f"{name}: {head.group('name')}(...) as its DA ranks samples itself; "
                             f"one {name} with a larger pool does that")
        return cls, {cls.nested_spec: inner, **kwargs}
    name, kwargs = parse_spec(spec)
    if name in ALIASES:
        target, fixed = ALIASES[name]
        for key in fixed:
            if key in kwargs:
                raise ValueError(f"{name}: {key!r} is fixed by the alias; use {target}({key}=...)")
        name, kwargs = target, {**fixed, **kwargs}
    if name not in AUGMENTATIONS:
        known = ", ".join(list_augmentations())
        raise UnknownNameError(f"unknown augmentation {name!r}; known: {known}"
                               f"{did_you_mean(name, list_augmentations())}")
    cls = AUGMENTATIONS.get(name)
    return cls, check_spec_options(name, cls, kwargs)


def create(spec: str, *, per_batch: bool | None = None) -> Augmentation:
    """Build the augmentation named by ``spec`` (see the module docstring for the syntax).

    ``per_batch`` (when given) sets the DA's mode, overriding the spec: ``True`` draws the random
    parameters once per batch as the paper's code does, ``False`` per image.
    External specs (``kornia:...``, ``albumentations:...``, ``module.path:Name(...)``) are built
    by :func:`augkd.augment.external.create_external`, which says what ``per_batch`` does there.

    Raises:
        ValueError: malformed spec, unknown name (the message lists the known names), unknown
            parameter (lists the allowed ones), or a bad value (names parameter, value, range).
    """
    check_spec_length(spec)
    if is_external_spec(spec):  # kornia:, albumentations:, module.path:Name
        return create_external(spec, per_batch=per_batch)
    cls, kwargs = _resolve(spec)
    if per_batch is not None:
        kwargs["per_batch"] = bool(per_batch)
    try:
        return cls(**kwargs)
    except ValueError as err:  # make every constructor's complaint name the DA
        if str(err).startswith(f"{cls.name}:"):
            raise
        raise ValueError(f"{cls.name}: {err}") from err


def list_augmentations() -> list[str]:
    """The registered DA names, the aliases, then the forms of external specs, e.g.
    ``[..., 'cutmixpick-t', ..., 'kornia:<Class>(...)', ...]``."""
    aliases = [a for a in ALIASES if ALIASES[a][0] in AUGMENTATIONS]
    return AUGMENTATIONS.names() + aliases + list(EXTERNAL_FORMS)


def spec_of(aug: Augmentation) -> str:
    """The canonical spec of ``aug``: its name and the parameters that differ from the defaults.

    Parameters are read from the attributes of the same name (every DA stores them), written in
    signature order, floats with ``repr`` and bools as ``true``/``false``. An alias is used
    when the parameters it fixes match, e.g. ``cutmixpick-t`` for ``cutmixpick(score=teacher)``.
    DAs that are not registered (kornia, albumentations, user classes) get their external spec,
    see :func:`augkd.augment.external.external_spec_of`.
    """
    cls = type(aug)
    name = getattr(cls, "name", None)
    if name not in AUGMENTATIONS or AUGMENTATIONS.get(name) is not cls:
        return external_spec_of(aug)
    values: dict[str, Any] = {}
    changed: dict[str, Any] = {}
    for key, param in spec_parameters(cls).items():
        if not hasattr(aug, key):
            continue
        values[key] = getattr(aug, key)
        if param.default is inspect.Parameter.empty or values[key] != param.default:
            changed[key] = values[key]
    nested = getattr(cls, "nested_spec", None)
    if nested is not None:  # pick(SPEC, ...): the nested DA's spec carries its own mode
        changed.pop("per_batch", None)
        args = [spec_of(getattr(aug, nested))]
        args += [f"{k}={format_value(v)}" for k, v in changed.items()]
        return f"{name}({', '.join(args)})"
    for alias, (target, fixed) in ALIASES.items():
        if target == name and all(values.get(k, object()) == v for k, v in fixed.items()):
            name = alias
            changed = {k: v for k, v in changed.items() if k not in fixed}
            break
    if not changed:
        return name
    return f"{name}({', '.join(f'{k}={format_value(v)}' for k, v in changed.items())})"


set_spec_writer(spec_of)  # str(aug) is its spec
