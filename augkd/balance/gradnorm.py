"""GradNorm (Chen, Badrinarayanan, Lee and Rabinovich, ICML 2018, "GradNorm: gradient
normalization for adaptive loss balancing in deep multitask networks").

Loss weights w_i (initially 1) scale the losses; the student's gradient is that of
``sum_i w_i L_i``. After each step the weights move to equalise the gradient norms of the
weighted losses at the last shared layer W, pulled towards each loss's relative inverse training
rate (the paper's Algorithm 1)::

    G_i   = |grad_W (w_i L_i)| = w_i |grad_W L_i|
    r_i   = (L_i / L_i(0)) / mean_j (L_j / L_j(0))         # L_i(0): the losses of the first step
    L_gn  = sum_i | G_i - mean_j(G_j) * r_i^alpha |          # the target is held constant
    w    <- w - lr * Adam(grad_w L_gn);  w <- 2 w / sum(w)   # renormalised to sum to 2

Choices made here:

- W, the last shared layer, is the last parameter with ``ndim >= 2`` in the ``params`` given to
  :meth:`GradNorm.backward` (the usual ``model.parameters()`` order) that *both* losses reach.
  For KD and the other logit methods that is the classifier's weight. A feature method's loss
  never reaches the classifier (it reads a stage map or the pooled embedding), so there W is the
  last layer on the path to the features the method reads: FitNet's hint stage, the last stage's
  last conv for AT, CC, CRD, .... (With W = the classifier, ``|grad_W L_distill|`` would be 0 for
  every feature method, and GradNorm would drive the task weight to its floor.) W is found once,
  on the first step (of a run, and of a resumed run), from that step's gradients of both losses
  (two extra backwards and one host sync, once). A step on which no such parameter exists is
  refused with an error naming the losses.
- Since ``G_i = w_i |grad_W L_i|``, ``grad_{w_i} L_gn = sign(G_i - target_i) |grad_W L_i|`` is
  computed in closed form (no second-order graph).
- The weight update is an Adam step (betas 0.9 / 0.999, eps 1e-8) with learning rate ``lr``,
  kept inside the balancer; weights are clamped to at least ``MIN_WEIGHT`` before renormalising.
- The weights and their optimizer state are buffers (checkpointed by ``state_dict``, not returned
  by ``parameters()``, so the trainer's optimizer never touches them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real

import torch
from torch import Tensor, nn

from augkd.balance.base import (
    Balancer,
    assign_grads,
    check_losses,
    check_params,
    register_balancer,
)

MIN_WEIGHT = 1e-3
"""Lower bound of a loss weight before renormalisation (keeps both losses in play)."""
_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8
_N_LOSSES = 2


def shared_layer_index(params: Sequence[nn.Parameter], task_grads: Sequence[Tensor],
                       distill_grads: Sequence[Tensor]) -> int:
    """Index in ``params`` of GradNorm's shared layer W: the last parameter with ``ndim >= 2``
    whose gradients from both losses (``task_grads``, ``distill_grads``, one per parameter,
    zeros where a loss does not reach it) are non-zero. One host sync.

    Raises:
        ValueError: no parameter with ``ndim >= 2`` is reached by both losses.
    """
    candidates = [i for i, p in enumerate(params) if p.dim() >= 2]
    if not candidates:
        raise ValueError("gradnorm needs a parameter with ndim >= 2 as its shared layer; "
                         "the student has none")
    reached = torch.stack([
        torch.stack([task_grads[i].abs().amax(), distill_grads[i].abs().amax()]).float()
        for i in candidates
    ]).gt(0).all(1).tolist()  # the one sync of the choice
    for i, both in zip(reversed(candidates), reversed(reached), strict=True):
        if both:
            return i
    raise ValueError(
        "gradnorm balances the two losses' gradient norms at a layer both of them reach, and no "
        "student parameter with ndim >= 2 gets a non-zero gradient from both the task and the "
        "distill loss on this step; use another balancer (agb, manual, uncertainty) for this "
        "method")


@register_balancer("gradnorm")
class GradNorm(Balancer):
    """GradNorm loss weighting (see the module docstring).

    Options:
        alpha: the asymmetry exponent >= 0 (0 equalises the gradient norms outright).
        lr: learning rate > 0 of the weights' own Adam step.

    Buffers: ``weights`` (2,), ``initial_losses`` (2,) (NaN until the first step),
    ``adam_exp_avg`` (2,), ``adam_exp_avg_sq`` (2,), ``adam_step`` (); all float32.

    Epoch statistics: ``w_task``, ``w_distill`` (the weights used for the step's gradient),
    ``grad_norm_task``, ``grad_norm_distill`` (G_i), ``gradnorm_loss`` (L_gn).
    """

    mean_keys = ("w_task", "w_distill", "grad_norm_task", "grad_norm_distill", "gradnorm_loss")

    weights: Tensor
    initial_losses: Tensor
    adam_exp_avg: Tensor
    adam_exp_avg_sq: Tensor
    adam_step: Tensor

    def __init__(self, *, alpha: float = 1.5, lr: float = 0.025) -> None:
        super().__init__()
        for option, value, ok in (
            ("alpha", alpha, lambda v: v >= 0),
            ("lr", lr, lambda v: v > 0),
        ):
            if not isinstance(value, Real) or not math.isfinite(value) or not ok(value):
                bound = ">= 0" if option == "alpha" else "> 0"
                raise ValueError(
                    f"option {option!r} of balancer 'gradnorm' must be finite and {bound}, "
                    f"got {value!r}"
                )
        self.alpha = float(alpha)
        self.lr = float(lr)
        self.register_buffer("weights", torch.ones(_N_LOSSES))
        self.register_buffer("initial_losses", torch.full((_N_LOSSES,), math.nan))
        self.register_buffer("adam_exp_avg", torch.zeros(_N_LOSSES))
        self.register_buffer("adam_exp_avg_sq", torch.zeros(_N_LOSSES))
        self.register_buffer("adam_step", torch.zeros(()))
        self.shared_index: int | None = None
        """Index of W in the ``params`` of :meth:`backward`, chosen on the first step (and
        again on the first step after a resume: the same parameter, the choice being structural).
        """

    def _options(self) -> dict[str, object]:
        return {"alpha": self.alpha, "lr": self.lr}

    def backward(
        self, losses: Mapping[str, Tensor], params: Sequence[nn.Parameter],
        method_params: Sequence[nn.Parameter] = (),
    ) -> None:
        """Write the gradient of ``w_task * task + w_distill * distill`` into ``.grad``, then
        update the weights by one GradNorm step."""
        task, distill = check_losses(losses)
        params = check_params(params)
        inputs = [*params, *method_params]
        weights = self.weights.clone()
        w_task, w_distill = weights[0].to(task.dtype), weights[1].to(distill.dtype)
        if self.shared_index is None:
            # First step (of the run or after a resume): W from where both losses reach. Two
            # extra full backwards, once; every step then computes its gradient the same way, so
            # a resumed run stays bit-identical to an uninterrupted one.
            self.shared_index = shared_layer_index(
                params, self._grads(task, params, retain_graph=True),
                self._grads(distill, params, retain_graph=True))
        shared = params[self.shared_index]
        # |grad_W L_i|: backward only as far as W, on the step's one graph.
        shared_grads = [
            self._grads(loss, [shared], retain_graph=True)[0] for loss in (task, distill)
        ]
        total = w_task * task + w_distill * distill
        assign_grads(inputs, self._grads(total, inputs))
        shared_norms = torch.stack([torch.linalg.vector_norm(g.float()) for g in shared_grads])
        shared_norms = shared_norms.to(self.weights)

        current = torch.stack([task, distill]).detach().to(self.weights)
        self._reduce([current])  # data-parallel: the loss ratios of the global batch
        gradnorm_loss = self._update_weights(current, shared_norms)

        stats = self._stats
        stats.step()
        stats.add_mean("w_task", weights[0])
        stats.add_mean("w_distill", weights[1])
        stats.add_mean("grad_norm_task", weights[0] * shared_norms[0])
        stats.add_mean("grad_norm_distill", weights[1] * shared_norms[1])
        stats.add_mean("gradnorm_loss", gradnorm_loss)

    @torch.no_grad()
    def _update_weights(self, current_losses: Tensor, shared_norms: Tensor) -> Tensor:
        """One GradNorm step on :attr:`weights`; returns L_gn (0-d)."""
        self.initial_losses.copy_(
            torch.where(self.initial_losses.isnan(), current_losses, self.initial_losses)
        )
        loss_ratio = current_losses / self.initial_losses.clamp_min(torch.finfo(torch.float32).tiny)
        inverse_rate = loss_ratio / loss_ratio.mean()
        weighted_norms = self.weights * shared_norms
        target = weighted_norms.mean() * inverse_rate.pow(self.alpha)
        gradnorm_loss = (weighted_norms - target).abs().sum()
        grad = torch.sign(weighted_norms - target) * shared_norms

        self.adam_step += 1
        self.adam_exp_avg.lerp_(grad, 1 - _BETA1)
        self.adam_exp_avg_sq.mul_(_BETA2).addcmul_(grad, grad, value=1 - _BETA2)
        bias1 = 1 - _BETA1**self.adam_step
        bias2 = 1 - _BETA2**self.adam_step
        step = (self.adam_exp_avg / bias1) / ((self.adam_exp_avg_sq / bias2).sqrt() + _ADAM_EPS)
        new_weights = (self.weights - self.lr * step).clamp_min(MIN_WEIGHT)
        self.weights.copy_(new_weights * (_N_LOSSES / new_weights.sum()))
        return gradnorm_loss
