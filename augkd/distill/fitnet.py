"""FitNet (Romero et al. 2015): a regressor maps the student's hint layer onto the teacher's.

Loss: ``MSE(r(feat_s[h]), feat_t[h])`` with h = ``hint_layer`` (2 by default), r a
conv-BN-ReLU regressor that matches channels and spatial size (docs/protocol.md §8: beta 100).
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from augkd.distill.base import (
    Distiller,
    DistillSetup,
    Step,
    check_option,
    float32,
    framework_features,
    register_distiller,
)
from augkd.models.base import ModelOutput


@float32
def hint_loss(regressed: Tensor, f_t: Tensor) -> Tensor:
    """Mean squared error between the regressed student map and the teacher's map.

    Args:
        regressed: ``[B, C, H, W]``, the student's hint after the regressor.
        f_t: ``[B, C, H, W]``, the teacher's hint map.
    """
    return F.mse_loss(regressed, f_t)


class ConvRegressor(nn.Module):
    """Maps a ``(C_s, H_s, W_s)`` map to ``(C_t, H_t, W_t)``: conv (strided, transposed or
    sized to shrink the map as needed), BatchNorm, ReLU (the teacher's maps are post-ReLU)."""

    def __init__(self, s_shape: tuple[int, int, int], t_shape: tuple[int, int, int]) -> None:
        super().__init__()
        (c_s, h_s, w_s), (c_t, h_t, w_t) = s_shape, t_shape
        self.upsample: tuple[int, int] | None = None
        if (h_s, w_s) == (2 * h_t, 2 * w_t):
            conv: nn.Module = nn.Conv2d(c_s, c_t, 3, stride=2, padding=1)
        elif (2 * h_s, 2 * w_s) == (h_t, w_t):
            conv = nn.ConvTranspose2d(c_s, c_t, 4, stride=2, padding=1)
        elif h_s >= h_t and w_s >= w_t:  # a valid conv whose kernel shrinks the map exactly
            conv = nn.Conv2d(c_s, c_t, (1 + h_s - h_t, 1 + w_s - w_t))
        else:  # a smaller student map of another ratio: resize, then a 1x1 conv
            self.upsample = (h_t, w_t)
            conv = nn.Conv2d(c_s, c_t, 1)
        self.conv, self.bn = conv, nn.BatchNorm2d(c_t)

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample is not None:
            x = F.interpolate(x, size=self.upsample, mode="bilinear", align_corners=False)
        return F.relu(self.bn(self.conv(x)))


@register_distiller("fitnet")
class FitNet(Distiller):
    """Hint learning on ``feat[hint_layer]`` (a stage map, 0..3) through a trained regressor."""

    weights: ClassVar[tuple[float, float]] = (1.0, 100.0)

    def __init__(self, setup: DistillSetup, *, hint_layer: int = 2) -> None:
        super().__init__(setup)
        check_option("fitnet", "hint_layer", hint_layer, 0 <= hint_layer <= 3,
                     "0..3 (feat[0] the first stage ... feat[3] the last stage map)")
        self.hint_layer = hint_layer
        self.regressor = ConvRegressor(setup.student.stages[hint_layer],
                                       setup.teacher.stages[hint_layer])

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        f_s = framework_features(student)[self.hint_layer]
        f_t = framework_features(teacher)[self.hint_layer]
        return {"loss": hint_loss(self.regressor(f_s), f_t)}
