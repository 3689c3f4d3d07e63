"""Fixed, hand-tuned loss weights: ``.grad`` of ``w_task * task + w_distill * distill``.

The defaults are the KD recipe of docs/protocol.md §1 (CE 0.1, KD 0.9).
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


def _check_weight(option: str, value: object) -> float:
    if not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"option {option!r} of balancer 'manual' must be a finite number >= 0, got {value!r}"
        )
    return float(value)


@register_balancer("manual")
class Manual(Balancer):
    """Constant weights, one backward pass of the weighted sum.

    Options:
        w_task: weight of the task (CE) loss, >= 0.
        w_distill: weight of the distill loss, >= 0.

    Epoch statistics: ``w_task``, ``w_distill`` (the constants).
    """

    def __init__(self, *, w_task: float = 0.1, w_distill: float = 0.9) -> None:
        super().__init__()
        self.w_task = _check_weight("w_task", w_task)
        self.w_distill = _check_weight("w_distill", w_distill)

    def _options(self) -> dict[str, object]:
        return {"w_task": self.w_task, "w_distill": self.w_distill}

    def backward(
        self, losses: Mapping[str, Tensor], params: Sequence[nn.Parameter],
        method_params: Sequence[nn.Parameter] = (),
    ) -> None:
        """Write the gradient of ``w_task * task + w_distill * distill`` into ``.grad``."""
        task, distill = check_losses(losses)
        params = check_params(params) + list(method_params)
        total = self.w_task * task + self.w_distill * distill
        assign_grads(params, self._grads(total, params))
        self._stats.step()
        self._stats.add_mean("w_task", torch.tensor(self.w_task, dtype=torch.float64))
        self._stats.add_mean("w_distill", torch.tensor(self.w_distill, dtype=torch.float64))
