"""Automatic Gradient Blending (AGB), the default balancer (docs/protocol.md §5).

From one forward pass, the task gradient G_t and the distill gradient G_d over the student's
parameters are blended into ``G = alpha G_t + beta G_d`` with ``|G| = |G_t|`` and
``angle(G_t, G) = lam * theta``, theta = angle(G_t, G_d)::

    alpha = sin((1 - lam) theta) / sin(theta)
    beta  = |G_t| sin(lam theta) / (|G_d| sin(theta))

i.e. G is |G_t| times the spherical interpolation of the two unit gradients at fraction lam.

Degenerate steps, with the thresholds chosen here:

- *near parallel*, ``theta < ANGLE_EPS`` (1e-3 rad): the limit ``(1 - lam, lam |G_t| / |G_d|)``.
  Its error against the exact formula is O(theta^2) (below 1e-6 relative), while theta itself
  is only known to about 5e-4 rad when the dot product is accumulated in float32.
- *near antiparallel*, ``theta > pi - ANGLE_EPS``: the interpolation plane is undefined and
  alpha, beta grow like 1 / sin(theta); fall back to ``(1, 0)``.
- *near-zero gradient*, ``|G_t| <= NORM_EPS`` or ``|G_d| <= NORM_EPS`` (1e-12, absolute: far below
  any float32 gradient norm of a training step, and far above float64 underflow of the squares):
  fall back to ``(1, 0)``.
- any NaN or Inf among the dot product, the squared norms or lam: fall back to ``(1, 0)``.

"degenerate" counts all four cases; "fallback" only the three that give ``(1, 0)``; in a fallback
step the distill gradient is left out entirely (a NaN in it does not leak into ``.grad``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Literal, NamedTuple, overload

import torch
from torch import Tensor, nn

from augkd.balance.base import (
    Balancer,
    check_losses,
    check_params,
    register_balancer,
)

ANGLE_EPS = 1e-3
"""Angles (rad) closer than this to 0 count as parallel, closer to pi as antiparallel."""
NORM_EPS = 1e-12
"""Gradient norms at or below this count as zero."""


class AGBWeights(NamedTuple):
    """The blending weights of one step and how they were obtained (float64 / bool tensors)."""

    alpha: Tensor
    beta: Tensor
    cos_theta: Tensor
    """cos(angle(G_t, G_d)); NaN where undefined (a zero or non-finite gradient)."""
    degenerate: Tensor
    """True where a special case replaced the general formula (parallel or fallback)."""
    fallback: Tensor
    """True where (alpha, beta) fell back to (1, 0)."""


def _as_float64(value: Tensor | float, device: torch.device) -> Tensor:
    return torch.as_tensor(value, dtype=torch.float64, device=device)


@overload
def agb_weights(
    dot: Tensor | float,
    sq_norm_task: Tensor | float,
    sq_norm_distill: Tensor | float,
    lam: Tensor | float,
    *,
    return_info: Literal[False] = False,
) -> tuple[Tensor, Tensor]: ...


@overload
def agb_weights(
    dot: Tensor | float,
    sq_norm_task: Tensor | float,
    sq_norm_distill: Tensor | float,
    lam: Tensor | float,
    *,
    return_info: Literal[True],
) -> AGBWeights: ...


def agb_weights(
    dot: Tensor | float,
    sq_norm_task: Tensor | float,
    sq_norm_distill: Tensor | float,
    lam: Tensor | float,
    *,
    return_info: bool = False,
) -> tuple[Tensor, Tensor] | AGBWeights:
    """AGB's blending weights (alpha, beta) from the gradients' dot product and squared norms.

    Pure and sync-free: all cases are selected with ``torch.where``, in float64, on the device of
    the first tensor argument (CPU for Python floats). Works elementwise on tensors of any
    broadcastable shape; the usual inputs are 0-d.

    Args:
        dot: <G_t, G_d>.
        sq_norm_task: |G_t|^2.
        sq_norm_distill: |G_d|^2.
        lam: the blending fraction in [0, 1] (checked for Python numbers only; a tensor is not
            checked, to avoid a host sync).
        return_info: also return cos(theta) and the degenerate / fallback flags.

    Returns:
        ``(alpha, beta)`` as float64 tensors, or an :class:`AGBWeights` with ``return_info``.
    """
    if isinstance(lam, Real) and not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    device = next(
        (x.device for x in (dot, sq_norm_task, sq_norm_distill, lam) if isinstance(x, Tensor)),
        torch.device("cpu"),
    )
    dot, sq_t, sq_d, lam = (
        _as_float64(x, device) for x in (dot, sq_norm_task, sq_norm_distill, lam)
    )
    finite = dot.isfinite() & sq_t.isfinite() & sq_d.isfinite() & lam.isfinite()
    norm_t = sq_t.clamp_min(0.0).sqrt()
    norm_d = sq_d.clamp_min(0.0).sqrt()
    measurable = finite & (norm_t > NORM_EPS) & (norm_d > NORM_EPS)

    one = torch.ones_like(norm_t)
    safe_norm_d = torch.where(measurable, norm_d, one)
    cos_theta = (dot / (torch.where(measurable, norm_t, one) * safe_norm_d)).clamp(-1.0, 1.0)
    theta = torch.arccos(cos_theta)
    antiparallel = theta > math.pi - ANGLE_EPS
    fallback = ~measurable | antiparallel
    parallel = ~fallback & (theta < ANGLE_EPS)
    general = ~fallback & ~parallel

    ratio = norm_t / safe_norm_d
    safe_sin = torch.where(general, torch.sin(theta), one)
    alpha_general = torch.sin((1.0 - lam) * theta) / safe_sin
    beta_general = ratio * torch.sin(lam * theta) / safe_sin
    alpha_parallel = 1.0 - lam
    beta_parallel = lam * ratio

    alpha = torch.where(fallback, one, torch.where(parallel, alpha_parallel, alpha_general))
    beta = torch.where(fallback, 0.0 * one, torch.where(parallel, beta_parallel, beta_general))
    if not return_info:
        return alpha, beta
    cos_theta = torch.where(measurable, cos_theta, torch.full_like(cos_theta, math.nan))
    return AGBWeights(alpha, beta, cos_theta, fallback | parallel, fallback)


def _flat(t: Tensor) -> Tensor:
    """A 1-D view of ``t`` (copied only if not viewable), upcast from 16-bit floats."""
    flat = t.reshape(-1)
    return flat.float() if flat.dtype in (torch.float16, torch.bfloat16) else flat


def gradient_products(
    grads_task: Sequence[Tensor], grads_distill: Sequence[Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    """``(<G_t, G_d>, |G_t|^2, |G_d|^2)`` over lists of per-parameter gradients, as 0-d float64.

    Per-parameter dot products (float32 accumulation, no concatenated copy), summed in float64.
    """
    dots, sq_t, sq_d = [], [], []
    for g_t, g_d in zip(grads_task, grads_distill, strict=True):
        flat_t, flat_d = _flat(g_t), _flat(g_d)
        dots.append(torch.dot(flat_t, flat_d))
        sq_t.append(torch.dot(flat_t, flat_t))
        sq_d.append(torch.dot(flat_d, flat_d))
    device = dots[0].device
    return tuple(  # type: ignore[return-value]
        torch.stack([v.to(device, torch.float64) for v in values]).sum()
        for values in (dots, sq_t, sq_d)
    )


@register_balancer("agb")
class AGB(Balancer):
    """Automatic Gradient Blending: ``.grad = alpha G_t + beta G_d`` (see the module docstring).

    Options:
        lam: the blending fraction in [0, 1]; 0 trains on the task gradient alone, 1 follows the
            distill direction with the task gradient's norm.

    Epoch statistics (means over steps): ``alpha``, ``beta`` (also as ``w_task``, ``w_distill``),
    ``cos_theta`` (over the steps where it is defined), ``norm_ratio`` = |G| / |G_t| (over the
    non-fallback steps; 1 up to rounding, a check of the blend); counts: ``n_degenerate``
    (parallel or fallback steps) and ``n_fallback`` (steps that used (1, 0)).
    """

    mean_keys = ("w_task", "w_distill", "alpha", "beta", "cos_theta", "norm_ratio")
    count_keys = ("n_degenerate", "n_fallback")

    def __init__(self, *, lam: float = 0.5) -> None:
        super().__init__()
        if not isinstance(lam, Real) or not 0.0 <= float(lam) <= 1.0:
            raise ValueError(f"option 'lam' of balancer 'agb' must be in [0, 1], got {lam!r}")
        self.lam = float(lam)
        self._layout: _FlatLayout | None = None

    def _options(self) -> dict[str, object]:
        return {"lam": self.lam}

    def backward(
        self, losses: Mapping[str, Tensor], params: Sequence[nn.Parameter],
        method_params: Sequence[nn.Parameter] = (),
    ) -> None:
        """Write ``alpha G_t + beta G_d`` into ``.grad`` of every param (see :class:`Balancer`);
        a method's own parameters get ``beta`` times their distill gradient."""
        task, distill = check_losses(losses)
        params = check_params(params)
        method_params = list(method_params)
        # Two gradient computations on the one graph of the step's single forward pass. Each
        # accumulates into one flat buffer (the parameters' .grad are views of it), so the
        # products, the blend and a data-parallel all-reduce are a few whole-buffer kernels
        # instead of several per parameter.
        layout = self._layout_for(params, method_params)
        flat_t, views_t = layout.new_buffer(layout.n_student)
        flat_d, views_d = layout.new_buffer(layout.total)
        n = layout.n_student
        _point(params, views_t)
        if task.requires_grad:
            torch.autograd.backward(task, inputs=params, retain_graph=True)
        _point(params + method_params, views_d)
        if distill.requires_grad:
            torch.autograd.backward(distill, inputs=params + method_params)
        self._reduce([flat_t])
        self._reduce([flat_d])
        g_d = flat_d[:n]
        dot, sq_t, sq_d = (torch.dot(flat_t, g_d).double(), torch.dot(flat_t, flat_t).double(),
                           torch.dot(g_d, g_d).double())
        info = agb_weights(dot, sq_t, sq_d, self.lam, return_info=True)

        # beta G_d over the student's and the method's parameters at once; only a fallback
        # step (beta = 0) can hold 0 * inf = NaN here
        flat_d.mul_(info.beta.float()).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        flat_t.mul_(info.alpha.float()).add_(g_d)
        _point(params, views_t)  # the method's parameters keep their views of flat_d

        sq_blend = info.alpha**2 * sq_t + 2 * info.alpha * info.beta * dot + info.beta**2 * sq_d
        norm_ratio = (sq_blend.clamp_min(0.0) / sq_t).sqrt()
        stats = self._stats
        stats.step()
        stats.add_mean("w_task", info.alpha)
        stats.add_mean("w_distill", info.beta)
        stats.add_mean("alpha", info.alpha)
        stats.add_mean("beta", info.beta)
        stats.add_mean("cos_theta", info.cos_theta, valid=info.cos_theta.isfinite())
        stats.add_mean("norm_ratio", norm_ratio, valid=~info.fallback)
        stats.add_count("n_degenerate", info.degenerate)
        stats.add_count("n_fallback", info.fallback)

    def _layout_for(self, params: list[nn.Parameter],
                    method_params: list[nn.Parameter]) -> _FlatLayout:
        key = (params[0].device, len(params), *(p.shape for p in params + method_params))
        if self._layout is None or self._layout.key != key:
            self._layout = _FlatLayout(key, params, method_params)
        return self._layout


class _FlatLayout:
    """Where each parameter's gradient sits in a flat float32 buffer laid out like
    ``params + method_params`` (the student's first: ``n_student`` elements)."""

    def __init__(self, key: tuple, params: list[nn.Parameter],
                 method_params: list[nn.Parameter]) -> None:
        for p in params + method_params:
            if p.dtype != torch.float32:
                raise ValueError(f"AGB keeps float32 gradients; a parameter of shape "
                                 f"{tuple(p.shape)} is {p.dtype}")
        self.key = key
        self.device = params[0].device
        self.n_student = sum(p.numel() for p in params)
        self.total = self.n_student + sum(p.numel() for p in method_params)
        self._shapes = [p.shape for p in params + method_params]
        self._offsets = [0]
        for p in params + method_params:
            self._offsets.append(self._offsets[-1] + p.numel())

    def new_buffer(self, size: int) -> tuple[Tensor, list[Tensor]]:
        """A zeroed buffer of the first ``size`` elements and its per-parameter views. New each
        step, so a ``.grad`` someone kept from an earlier step is never overwritten."""
        flat = torch.zeros(size, device=self.device)
        views = [flat[a:b].view(shape) for a, b, shape in
                 zip(self._offsets, self._offsets[1:], self._shapes, strict=False) if b <= size]
        return flat, views


def _point(params: Sequence[nn.Parameter], views: Sequence[Tensor]) -> None:
    """Make ``views`` the ``.grad`` of ``params`` (autograd then accumulates into them)."""
    for p, v in zip(params, views, strict=False):
        p.grad = v
