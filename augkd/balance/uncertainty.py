"""Uncertainty weighting (Kendall, Gal and Cipolla, CVPR 2018, "Multi-task learning using
uncertainty to weigh losses for scene geometry and semantics").

Each loss L_i gets a learnable log-variance ``s_i = log sigma_i^2``. Both of our losses are
classification-like (cross-entropy, KL of softmaxes), so we use the paper's classification form
(its eq. 10 term for a softmax output), ``(1 / sigma_i^2) L_i + log sigma_i``, i.e.::

    loss = sum_i exp(-s_i) L_i + s_i / 2

(not the regression form ``1 / (2 sigma^2) L + log sigma``). At the optimum over s_i,
``exp(-s_i) = 1 / (2 L_i)``. The reported weights are ``exp(-s_i) = 1 / sigma_i^2``.

The log-variances are ``nn.Parameter``s of the balancer: the trainer puts ``balancer.parameters()``
into its optimizer, and :meth:`Uncertainty.backward` writes their ``.grad`` too.
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


@register_balancer("uncertainty")
class Uncertainty(Balancer):
    """Homoscedastic-uncertainty weighting with learnable log-variances (see the module docstring).

    Options:
        init_log_var: the initial s_i of both losses (0 gives weights 1).

    Attributes:
        log_vars: (2,) float32 parameter, ``[s_task, s_distill]``.

    Epoch statistics: ``w_task``, ``w_distill`` (= exp(-s_i)), ``log_var_task``,
    ``log_var_distill``.
    """

    mean_keys = ("w_task", "w_distill", "log_var_task", "log_var_distill")

    def __init__(self, *, init_log_var: float = 0.0) -> None:
        super().__init__()
        if not isinstance(init_log_var, Real) or not math.isfinite(init_log_var):
            raise ValueError(
                f"option 'init_log_var' of balancer 'uncertainty' must be finite, "
                f"got {init_log_var!r}"
            )
        self.init_log_var = float(init_log_var)
        self.log_vars = nn.Parameter(torch.full((2,), self.init_log_var))

    def _options(self) -> dict[str, object]:
        return {"init_log_var": self.init_log_var}

    def backward(
        self, losses: Mapping[str, Tensor], params: Sequence[nn.Parameter],
        method_params: Sequence[nn.Parameter] = (),
    ) -> None:
        """Write the gradient of the uncertainty-weighted loss into ``.grad`` of ``params`` and
        of :attr:`log_vars`."""
        task, distill = check_losses(losses)
        params = check_params(params)
        stacked = torch.stack([task, distill]).to(self.log_vars.dtype)
        total = (torch.exp(-self.log_vars) * stacked + 0.5 * self.log_vars).sum()
        inputs = [*params, *method_params, self.log_vars]
        assign_grads(inputs, self._grads(total, inputs))

        weights = torch.exp(-self.log_vars.detach())
        self._stats.step()
        self._stats.add_mean("w_task", weights[0])
        self._stats.add_mean("w_distill", weights[1])
        self._stats.add_mean("log_var_task", self.log_vars.detach()[0])
        self._stats.add_mean("log_var_distill", self.log_vars.detach()[1])
