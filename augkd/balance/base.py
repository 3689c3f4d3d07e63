"""The balancer contract, its registry, and helpers shared by the balancers.

A balancer turns the named losses of one forward pass, ``{"task": L_t, "distill": L_d}``, into
``.grad`` on the student's parameters; the trainer then calls ``optimizer.step()``::

    losses = {"task": ce, "distill": kd}         # the distiller's terms, unweighted
    balancer.backward(losses, student_params)   # writes (overwrites) every param's .grad
    optimizer.step()

A balancer is an ``nn.Module``: learnable weights (uncertainty's log-variances) appear in
``balancer.parameters()`` and go into the trainer's optimizer; any other state (GradNorm's
weights and their optimizer) lives in buffers, so ``state_dict`` checkpoints everything.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from augkd.grammar import check_spec_options, parse_spec
from augkd.registry import Registry

LOSS_NAMES: tuple[str, str] = ("task", "distill")
"""The loss names every balancer reads; other entries of the mapping (logging terms) are ignored."""


class Balancer(nn.Module):
    """Base class: blend the task and distill losses into the student's gradients.

    Subclasses implement :meth:`backward` and declare the keys of :meth:`epoch_stats`:
    ``mean_keys`` (averaged over the steps of the epoch) and ``count_keys`` (summed).
    Every balancer reports its effective weights as ``w_task`` and ``w_distill``.
    """

    name: str = ""
    mean_keys: tuple[str, ...] = ("w_task", "w_distill")
    count_keys: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self._stats = _EpochStats()
        self.grad_reducer: Callable[[list[Tensor]], None] | None = None
        """Data-parallel hook, set by a distributed trainer: averages a list of tensors over the
        ranks in place. Applied to every gradient list (and GradNorm's losses) before the
        balancer uses it, so the weights are computed from global gradients; None outside
        data-parallel training."""

    def _grads(
        self, loss: Tensor, inputs: Sequence[Tensor], retain_graph: bool = False
    ) -> list[Tensor]:
        """:func:`loss_grads`, then :attr:`grad_reducer` (if set) on the list."""
        grads = loss_grads(loss, inputs, retain_graph)
        self._reduce(grads)
        return grads

    def _reduce(self, tensors: list[Tensor]) -> None:
        if self.grad_reducer is not None:
            self.grad_reducer(tensors)

    def backward(
        self, losses: Mapping[str, Tensor], params: Sequence[nn.Parameter],
        method_params: Sequence[nn.Parameter] = (),
    ) -> None:
        """Write (overwrite) ``.grad`` of every parameter in ``params`` and ``method_params``,
        and of the balancer's own learnable parameters, from one forward pass.

        Args:
            losses: at least ``"task"`` and ``"distill"``, 0-d float tensors sharing one graph.
            params: the student's parameters (all with ``requires_grad``). A parameter that a loss
                does not reach gets a zero gradient from that loss.
            method_params: the distillation method's own trainable parts (regressors,
                embeddings), which only the distill loss reaches. They receive the distill
                gradient at the step's distill weight, and do not enter the computation of the
                weights (AGB's angle and norms are those of the student's gradients).
        """
        raise NotImplementedError

    def epoch_stats(self) -> dict[str, float]:
        """Means (``mean_keys``) and counts (``count_keys``) over the steps since the last call,
        plus ``steps``; then reset. The only place a balancer syncs with the host.

        With no step recorded, means are NaN and counts 0.
        """
        return self._stats.pop(self.mean_keys, self.count_keys)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self._options().items())

    def _options(self) -> dict[str, object]:
        return {}


class _EpochStats:
    """Accumulates per-step statistics as device tensors; :meth:`pop` syncs once."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._sums: dict[str, Tensor] = {}
        self._weights: dict[str, Tensor | float] = {}
        self._counts: dict[str, Tensor] = {}
        self.steps = 0

    def step(self) -> None:
        self.steps += 1

    def add_mean(self, key: str, value: Tensor, valid: Tensor | None = None) -> None:
        """Add a 0-d value to the mean of ``key``; with ``valid`` (0-d bool), only if it holds."""
        value = value.detach().to(torch.float64)
        if valid is None:
            weight: Tensor | float = 1.0
        else:
            weight = valid.to(torch.float64)
            value = torch.where(valid, value, torch.zeros_like(value))
        self._sums[key] = self._sums[key] + value if key in self._sums else value
        self._weights[key] = self._weights.get(key, 0.0) + weight

    def add_count(self, key: str, flag: Tensor) -> None:
        """Add a 0-d bool (or number) to the count of ``key``."""
        flag = flag.detach().to(torch.float64)
        self._counts[key] = self._counts[key] + flag if key in self._counts else flag

    def pop(self, mean_keys: Sequence[str], count_keys: Sequence[str]) -> dict[str, float]:
        tensors: list[Tensor] = []
        for key in mean_keys:
            if key in self._sums:
                weight = self._weights[key]
                tensors += [self._sums[key], torch.as_tensor(weight, dtype=torch.float64)]
        tensors += [self._counts[key] for key in count_keys if key in self._counts]
        host: list[float] = []
        if tensors:
            device = tensors[0].device
            host = torch.stack([t.to(device) for t in tensors]).tolist()  # the one sync
        values = iter(host)
        out: dict[str, float] = {}
        for key in mean_keys:
            if key in self._sums:
                total, weight = next(values), next(values)
                out[key] = total / weight if weight > 0 else math.nan
            else:
                out[key] = math.nan
        for key in count_keys:
            out[key] = next(values) if key in self._counts else 0.0
        out["steps"] = float(self.steps)
        self._reset()
        return out


BALANCERS: Registry[type[Balancer]] = Registry("balancer")


def register_balancer(name: str) -> Callable[[type[Balancer]], type[Balancer]]:
    """Class decorator: register a :class:`Balancer` subclass under ``name``.

    The class's keyword-only, type-hinted ``__init__`` parameters are its options: what a spec
    such as ``gradnorm(alpha=1.0, lr=0.01)`` and :func:`create_balancer` accept.
    """

    def decorator(cls: type[Balancer]) -> type[Balancer]:
        cls.name = name
        BALANCERS.register(name, cls)
        return cls

    return decorator


def resolve_balancer(spec: str) -> tuple[type[Balancer], dict[str, Any]]:
    """The class and the type-checked options named by a spec, e.g. ``'gradnorm(alpha=1.0)'``
    (the grammar of the DA and distillation-method specs, :func:`augkd.grammar.parse_spec`).

    Raises:
        UnknownNameError: the name is not registered (the message lists the known names).
        ValueError: a malformed spec, an unknown option (the message lists the allowed ones) or
            a value of the wrong type. Ranges are checked when the balancer is built.
    """
    name, kwargs = parse_spec(spec, kind="balancer")
    cls = BALANCERS.get(name)
    return cls, check_spec_options(f"balancer {name}", cls, kwargs, word="option")


def create_balancer(spec: str, **options: object) -> Balancer:
    """Build the balancer a spec names (``"agb"``, ``"gradnorm(alpha=1.0, lr=0.01)"``), with
    ``options`` added to the spec's own.

    Raises:
        UnknownNameError: the name is not registered (the message lists the known names).
        ValueError: a malformed spec, an option unknown to this balancer, given twice (in the
            spec and in ``options``) or out of range (the message names it).
    """
    cls, given = resolve_balancer(spec)
    twice = sorted(set(given) & set(options))
    if twice:
        raise ValueError(f"balancer {cls.name}: option {twice[0]!r} given in the spec "
                         f"{spec!r} and again as an argument")
    known = [p.name for p in inspect.signature(cls.__init__).parameters.values()
             if p.kind is p.KEYWORD_ONLY]
    for option in options:
        if option not in known:
            raise ValueError(f"unknown option {option!r} for balancer {cls.name!r}; "
                             f"known: {', '.join(known) or '(none)'}")
    return cls(**given, **options)


def check_losses(losses: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Return ``(task, distill)`` from ``losses`` as 0-d tensors, or raise ValueError."""
    found = []
    for key in LOSS_NAMES:
        if key not in losses:
            raise ValueError(
                f"balancer needs the loss {key!r}; got keys: {', '.join(map(repr, losses))}"
            )
        loss = losses[key]
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise ValueError(f"loss {key!r} must be a scalar tensor, got {shape}")
        found.append(loss.reshape(()))
    return found[0], found[1]


def check_params(params: Sequence[nn.Parameter]) -> list[nn.Parameter]:
    """Return ``params`` as a list; raise ValueError if empty or one does not require grad."""
    params = list(params)
    if not params:
        raise ValueError("balancer.backward got no parameters")
    for index, param in enumerate(params):
        if not param.requires_grad:
            raise ValueError(
                f"parameter {index} (shape {tuple(param.shape)}) has requires_grad=False"
            )
    return params


def loss_grads(loss: Tensor, inputs: Sequence[Tensor], retain_graph: bool = False) -> list[Tensor]:
    """Gradients of ``loss`` w.r.t. ``inputs``; an input the loss does not reach gets zeros.

    Returns one dense tensor per input, with the input's shape and memory layout (autograd may
    return broadcast views with stride 0; those are copied out).
    """
    if not loss.requires_grad:
        return [torch.zeros_like(x) for x in inputs]
    grads = torch.autograd.grad(loss, inputs, retain_graph=retain_graph, allow_unused=True)
    out = []
    for x, g in zip(inputs, grads, strict=True):
        if g is None:
            g = torch.zeros_like(x)
        elif g.stride() != x.stride():
            g = torch.empty_like(x, dtype=g.dtype).copy_(g)
        out.append(g)
    return out


def assign_grads(params: Sequence[Tensor], grads: Sequence[Tensor]) -> None:
    """Overwrite ``param.grad`` with ``grad``, in the parameter's dtype and memory layout."""
    for param, grad in zip(params, grads, strict=True):
        grad = grad.detach()
        if grad.dtype != param.dtype or grad.stride() != param.stride():
            grad = torch.empty_like(param).copy_(grad)
        param.grad = grad
