"""Attention transfer (Zagoruyko & Komodakis 2017) on ``feat[1:-1]`` (docs/protocol.md §8).

Per stage: ``mean((normalize(mean_c f_s^p) - normalize(mean_c f_t^p))^2)``, the maps pooled to
the smaller size; summed over the stages; beta 1000.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from augkd.distill.base import (
    Distiller,
    DistillSetup,
    Step,
    check_option,
    float32,
    paired_stages,
    pool_to_common,
    register_distiller,
)
from augkd.models.base import ModelOutput


def attention_map(f: Tensor, p: float = 2.0) -> Tensor:
    """``normalize(mean_c f^p)`` flattened: ``[B, C, H, W]`` -> ``[B, H * W]`` of unit rows."""
    return F.normalize(f.pow(p).mean(1).flatten(1), dim=1)


@float32
def at_loss(f_s: Tensor, f_t: Tensor, p: float = 2.0) -> Tensor:
    """Attention-transfer loss of one pair of feature maps.

    Args:
        f_s: ``[B, C_s, H_s, W_s]`` student map.
        f_t: ``[B, C_t, H_t, W_t]`` teacher map; channels may differ, the larger map is
            average-pooled to the smaller's size.
        p: the power of the activations (2 in the framework).

    Returns:
        0-d float32: the mean squared difference of the two normalized attention maps.
    """
    f_s, f_t = pool_to_common(f_s, f_t)
    return (attention_map(f_s, p) - attention_map(f_t, p)).pow(2).mean()


@register_distiller("at")
class AT(Distiller):
    """Attention transfer, summed over the three stage pairs ``feat[1:-1]``."""

    weights: ClassVar[tuple[float, float]] = (1.0, 1000.0)

    def __init__(self, setup: DistillSetup, *, p: float = 2.0) -> None:
        super().__init__(setup)
        check_option("at", "p", p, p > 0, "> 0")
        self.p = p

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        return {"loss": sum(at_loss(s, t, self.p) for s, t in paired_stages(student, teacher))}
