"""Variational information distillation (Ahn et al. 2019) on ``feat[1:-1]`` (beta 1).

Per stage, a regressor (three 1x1 convs) predicts the teacher's map as the mean of a Gaussian
with a trained per-channel variance ``softplus(log_scale) + 1e-5`` (initial variance 5); the loss
is the mean negative log-likelihood ``0.5 ((mu - f_t)^2 / var + log var)``; summed over stages.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augkd.distill.base import (
    Distiller,
    DistillSetup,
    Step,
    check_option,
    float32,
    pool_to_common,
    register_distiller,
)
from augkd.models.base import ModelOutput

VARIANCE_EPS = 1e-5


@float32
def vid_nll(mean: Tensor, f_t: Tensor, log_scale: Tensor, eps: float = VARIANCE_EPS) -> Tensor:
    """The Gaussian negative log-likelihood of VID (constant dropped), averaged.

    Args:
        mean: ``[B, C, H, W]`` the regressed student map (the Gaussian's mean).
        f_t: ``[B, C, H, W]`` the teacher's map.
        log_scale: ``[C]``; the variance is ``softplus(log_scale) + eps``.
    """
    var = (F.softplus(log_scale) + eps).view(1, -1, 1, 1)
    return (0.5 * ((mean - f_t).pow(2) / var + torch.log(var))).mean()


class VIDRegressor(nn.Module):
    """conv1x1 - ReLU - conv1x1 - ReLU - conv1x1 from ``c_in`` to ``c_out`` channels (middle
    width ``c_mid``), and the per-channel ``log_scale`` of the predicted variance."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, init_var: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(c_in, c_mid, 1, bias=False), nn.ReLU(),
            nn.Conv2d(c_mid, c_mid, 1, bias=False), nn.ReLU(),
            nn.Conv2d(c_mid, c_out, 1, bias=False),
        )
        # softplus^-1(init_var - eps), so the initial variance is init_var
        start = math.log(math.expm1(init_var - VARIANCE_EPS))
        self.log_scale = nn.Parameter(torch.full((c_out,), start))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@register_distiller("vid")
class VID(Distiller):
    """Variational information distillation on the three stage pairs."""

    weights: ClassVar[tuple[float, float]] = (1.0, 1.0)

    def __init__(self, setup: DistillSetup, *, init_var: float = 5.0) -> None:
        super().__init__(setup)
        check_option("vid", "init_var", init_var, init_var > VARIANCE_EPS, f"> {VARIANCE_EPS}")
        self.init_var = init_var
        self.regressors = nn.ModuleList(
            VIDRegressor(s[0], t[0], t[0], init_var)
            for s, t in zip(setup.student.stages[1:], setup.teacher.stages[1:], strict=True)
        )

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        total = 0.0
        for regressor, f_s, f_t in zip(self.regressors, student.stages[1:], teacher.stages[1:],
                                       strict=True):
            # the framework pools the larger map down to the smaller one before regressing
            f_s, f_t = pool_to_common(f_s, f_t)
            total = total + vid_nll(regressor(f_s), f_t, regressor.log_scale)
        return {"loss": total}
