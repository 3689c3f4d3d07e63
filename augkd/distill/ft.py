"""Factor transfer (Kim et al. 2018) on ``feat[-2]`` (docs/protocol.md §8: beta 200).

A paraphraser (a conv auto-encoder on the teacher's last stage map, factor rate k = 0.5) is
pre-trained first by reconstruction MSE for ``init_epochs`` epochs (30 of 240 in the recipe;
by default scaled with the run's epochs), then frozen; a translator (conv encoder on the
student's map) is trained with the student. Loss: L1 between the L2-normalized flattened
factors ``mean |normalize(T_s) - normalize(P_t)|``.
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
    pool_to_common,
    register_distiller,
)
from augkd.models.base import ModelOutput


@float32
def factor_loss(factor_s: Tensor, factor_t: Tensor) -> Tensor:
    """L1 distance of the normalized factors ``[B, C, H, W]`` (the larger map pooled)."""
    factor_s, factor_t = pool_to_common(factor_s, factor_t)
    return (F.normalize(factor_s.flatten(1), dim=1)
            - F.normalize(factor_t.flatten(1), dim=1)).abs().mean()


def _conv_block(c_in: int, c_out: int, transpose: bool, batch_norm: bool) -> list[nn.Module]:
    conv = (nn.ConvTranspose2d if transpose else nn.Conv2d)(c_in, c_out, 3, 1, 1)
    return [conv, *( [nn.BatchNorm2d(c_out)] if batch_norm else []), nn.LeakyReLU(0.1)]


class Paraphraser(nn.Module):
    """Auto-encoder of the teacher's map: ``C -> C -> kC -> kC`` encoder and its mirror."""

    def __init__(self, channels: int, k: float) -> None:
        super().__init__()
        factor = max(1, int(channels * k))
        self.encoder = nn.Sequential(*_conv_block(channels, channels, False, False),
                                     *_conv_block(channels, factor, False, False),
                                     *_conv_block(factor, factor, False, False))
        self.decoder = nn.Sequential(*_conv_block(factor, factor, True, False),
                                     *_conv_block(factor, channels, True, False),
                                     *_conv_block(channels, channels, True, False))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        factor = self.encoder(x)
        return factor, self.decoder(factor)


class Translator(nn.Module):
    """Encoder of the student's map into the teacher's factor space (with BatchNorm)."""

    def __init__(self, c_student: int, c_teacher: int, k: float) -> None:
        super().__init__()
        factor = max(1, int(c_teacher * k))
        self.encoder = nn.Sequential(*_conv_block(c_student, c_student, False, True),
                                     *_conv_block(c_student, factor, False, True),
                                     *_conv_block(factor, factor, False, True))

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)


@register_distiller("ft")
class FT(Distiller):
    """Factor transfer with a pre-trained, frozen paraphraser."""

    weights: ClassVar[tuple[float, float]] = (1.0, 200.0)
    pretrains: ClassVar[bool] = True

    def __init__(self, setup: DistillSetup, *, k: float = 0.5,
                 init_epochs: int | None = None) -> None:
        super().__init__(setup)
        check_option("ft", "k", k, 0 < k <= 4, "in (0, 4]")
        if init_epochs is not None:
            check_option("ft", "init_epochs", init_epochs, init_epochs >= 1, ">= 1")
        self.k = k
        self.init_epochs = (init_epochs if init_epochs is not None
                            else max(1, round(30 * setup.epochs / 240)))
        c_t, c_s = setup.teacher.stages[-1][0], setup.student.stages[-1][0]
        self.paraphraser = Paraphraser(c_t, k)
        self.translator = Translator(c_s, c_t, k)

    def init_parameters(self) -> list[nn.Parameter]:
        return list(self.paraphraser.parameters())

    def init_loss(self, teacher: ModelOutput) -> Tensor:
        f_t = teacher.stages[-1].detach()
        return F.mse_loss(self.paraphraser(f_t)[1].float(), f_t.float())

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        factor_t = self.paraphraser.encoder(teacher.stages[-1]).detach()
        return {"loss": factor_loss(self.translator(student.stages[-1]), factor_t)}
