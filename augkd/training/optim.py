"""The optimization family: the optimizer and the learning-rate schedule, each named by a spec.

Like every family of augkd, a member is one class with keyword-only, type-hinted options and a
registration; the spec grammar (:mod:`augkd.grammar`) gives it its config value, CLI flag,
sweep key and error messages::

    --optimizer sgd                        SGD, momentum from --momentum (the default)
    --optimizer 'sgd(nesterov=true)'
    --optimizer 'adamw(beta1=0.9, beta2=0.999, eps=1e-8)'   (give it an AdamW lr: --lr 1e-3)
    --schedule multistep                   lr x lr_decay_rate at lr_decay_fractions (default)
    --schedule 'multistep(warmup=5)'
    --schedule 'cosine(warmup=5, min_lr=0.0)'
    --schedule constant

The lr and the weight decay are config fields every optimizer reads (``lr``,
``weight_decay``); SGD's momentum is the config field ``momentum`` and the multi-step
schedule's decay points and factor are ``lr_decay_fractions`` and ``lr_decay_rate``
(:data:`OPTIMIZER_FIELDS`, :data:`SCHEDULE_FIELDS`), so configs and run folders from before
this family keep their meaning. Schedules step once per epoch, as the reference code's
MultiStepLR does. A warm-up of ``W`` epochs scales epoch ``e < W`` by ``(e + 1) / (W + 1)``;
the cosine schedule then runs over the remaining ``epochs - W`` epochs, as torch's
CosineAnnealingLR with ``T_max = epochs - W`` does, and the multi-step one keeps its decay
epochs. The default ``multistep`` without warm-up is torch's MultiStepLR itself, so its lrs,
checkpoints and results are those of every earlier augkd run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch

from augkd.grammar import check_param, check_spec_options, parse_spec
from augkd.registry import Registry

__all__ = [
    "OPTIMIZERS",
    "OPTIMIZER_FIELDS",
    "SCHEDULES",
    "SCHEDULE_FIELDS",
    "Optimizer",
    "Schedule",
    "build_optimizer",
    "build_scheduler",
    "lr_factors",
    "register_optimizer",
    "register_schedule",
    "resolve_optimizer",
    "resolve_schedule",
]


class Optimizer:
    """An optimizer spec: builds a ``torch.optim.Optimizer`` over parameter groups."""

    name: ClassVar[str] = ""

    def build(self, groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
        raise NotImplementedError


class Schedule:
    """A learning-rate schedule spec: the lr factor of each epoch, and its torch scheduler."""

    name: ClassVar[str] = ""

    def __init__(self, *, warmup: int = 0) -> None:
        check_param(self.name, "warmup", warmup, isinstance(warmup, int) and warmup >= 0,
                    "an integer >= 0 (epochs)")
        self.warmup = warmup

    def factor(self, epoch: int, epochs: int, milestones: Sequence[int], gamma: float,
               base_lr: float) -> float:
        """The lr of ``epoch`` (0-based) over the initial ``base_lr``."""
        warm = (epoch + 1) / (self.warmup + 1) if epoch < self.warmup else 1.0
        return warm * self.main_factor(epoch, epochs, milestones, gamma, base_lr)

    def main_factor(self, epoch: int, epochs: int, milestones: Sequence[int], gamma: float,
                    base_lr: float) -> float:
        raise NotImplementedError

    def check(self, epochs: int) -> None:
        """Raise ValueError when the schedule cannot run ``epochs`` epochs."""
        check_param(self.name, "warmup", self.warmup, self.warmup < epochs,
                    f"fewer than the run's {epochs} epochs")


OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer")
SCHEDULES: Registry[type[Schedule]] = Registry("schedule")

#: Options that come from config fields, not from the spec (their fields predate the specs).
OPTIMIZER_FIELDS = {"sgd": {"momentum": "momentum"}}
SCHEDULE_FIELDS: dict[str, dict[str, str]] = {}


def _register(registry: Registry, name: str) -> Callable[[type], type]:
    def decorator(cls: type) -> type:
        cls.name = name
        registry.register(name, cls)
        return cls

    return decorator


def register_optimizer(name: str) -> Callable[[type], type]:
    """Class decorator: register an :class:`Optimizer` subclass under ``name`` (its
    keyword-only ``__init__`` parameters are its spec's options)."""
    return _register(OPTIMIZERS, name)


def register_schedule(name: str) -> Callable[[type], type]:
    """Class decorator: register a :class:`Schedule` subclass under ``name``."""
    return _register(SCHEDULES, name)


@register_optimizer("sgd")
class SGD(Optimizer):
    """SGD with momentum (the reference code's optimizer); ``momentum`` is the config field."""

    def __init__(self, *, momentum: float = 0.9, nesterov: bool = False) -> None:
        check_param("sgd", "momentum", momentum, 0 <= momentum < 1, "in [0, 1)")
        check_param("sgd", "nesterov", nesterov, not nesterov or momentum > 0,
                    "true only with momentum > 0")
        self.momentum, self.nesterov = momentum, nesterov

    def build(self, groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(groups, lr=lr, momentum=self.momentum, nesterov=self.nesterov)


@register_optimizer("adamw")
class AdamW(Optimizer):
    """AdamW (decoupled weight decay: the config's ``weight_decay``)."""

    def __init__(self, *, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        for key, value in (("beta1", beta1), ("beta2", beta2)):
            check_param("adamw", key, value, 0 <= value < 1, "in [0, 1)")
        check_param("adamw", "eps", eps, eps > 0, "> 0")
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def build(self, groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(groups, lr=lr, betas=(self.beta1, self.beta2), eps=self.eps)


@register_schedule("multistep")
class MultiStep(Schedule):
    """lr x ``lr_decay_rate`` after each decay epoch (62.5/75/87.5 % of the epochs by default)."""

    def main_factor(self, epoch, epochs, milestones, gamma, base_lr):
        return gamma ** sum(1 for m in milestones if epoch >= m)


@register_schedule("cosine")
class Cosine(Schedule):
    """Cosine decay from the initial lr towards ``min_lr`` over the epochs after the warm-up."""

    def __init__(self, *, warmup: int = 0, min_lr: float = 0.0) -> None:
        super().__init__(warmup=warmup)
        check_param("cosine", "min_lr", min_lr, min_lr >= 0, ">= 0 (an lr, not a fraction)")
        self.min_lr = min_lr

    def main_factor(self, epoch, epochs, milestones, gamma, base_lr):
        if epoch < self.warmup:
            return 1.0
        t = (epoch - self.warmup) / (epochs - self.warmup)
        lr = self.min_lr + (base_lr - self.min_lr) * (1 + math.cos(math.pi * t)) / 2
        return lr / base_lr


@register_schedule("constant")
class Constant(Schedule):
    """The initial lr throughout (after an optional warm-up)."""

    def main_factor(self, epoch, epochs, milestones, gamma, base_lr):
        return 1.0


def _resolve(registry: Registry, kind: str, spec: str, fields: dict[str, dict[str, str]],
             values: dict[str, Any]) -> Any:
    name, options = parse_spec(spec, kind=kind)
    cls = registry.get(name)
    options = check_spec_options(f"{kind} {name}", cls, options, word="option")
    for option, field in fields.get(name, {}).items():
        if option in options:
            raise ValueError(f"{kind} {name}: set {option} with the config field {field} "
                             f"(--{field.replace('_', '-')}), not in the spec {spec!r}")
        options[option] = values[field]
    return cls(**options)


def resolve_optimizer(spec: str, momentum: float = 0.9) -> Optimizer:
    """The optimizer a spec names, with the config field ``momentum`` for SGD.

    Raises:
        UnknownNameError: an unknown name (the message lists the known ones).
        ValueError: a malformed spec, an unknown option or a value out of range, by name.
    """
    return _resolve(OPTIMIZERS, "optimizer", spec, OPTIMIZER_FIELDS, {"momentum": momentum})


def resolve_schedule(spec: str) -> Schedule:
    """The schedule a spec names (same errors as :func:`resolve_optimizer`)."""
    return _resolve(SCHEDULES, "schedule", spec, SCHEDULE_FIELDS, {})


def build_optimizer(spec: str, groups: list[dict[str, Any]], lr: float,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """A torch optimizer over ``groups`` (each with its own ``weight_decay``) at ``lr``."""
    return resolve_optimizer(spec, momentum).build(groups, lr)


def build_scheduler(spec: str, optimizer: torch.optim.Optimizer, epochs: int,
                    milestones: Sequence[int], gamma: float
                    ) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch torch scheduler of a schedule spec: MultiStepLR for a plain
    ``multistep`` (the reference code's, and every earlier augkd run's), else a LambdaLR of
    :meth:`Schedule.factor`."""
    schedule = resolve_schedule(spec)
    schedule.check(epochs)
    if isinstance(schedule, MultiStep) and schedule.warmup == 0:
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones),
                                                    gamma=gamma)
    bases = [group["lr"] for group in optimizer.param_groups]
    lambdas = [lambda e, b=b: schedule.factor(e, epochs, milestones, gamma, b) for b in bases]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def lr_factors(spec: str, epochs: int, milestones: Sequence[int] = (), gamma: float = 0.1,
               base_lr: float = 1.0) -> list[float]:
    """The lr factor of every epoch of a schedule (what ``--schedule`` will do, for a plot or
    a check)."""
    schedule = resolve_schedule(spec)
    schedule.check(epochs)
    return [schedule.factor(e, epochs, milestones, gamma, base_lr) for e in range(epochs)]
