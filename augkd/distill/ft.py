"""Factor transfer (Kim et al. 2018) on ``feat[-2]`` (docs/protocol.md §8: beta 200).

A paraphraser (a conv auto-encoder on the teacher's last stage map, factor rate k = 0.5) is
pre-trained first by reconstruction MSE for ``init_epochs`` epochs (30 of 240 in the recipe;
by default scaled with the run's epochs), then frozen; a translator (conv encoder on the
student's map) is trained with the student.

The loss is RepDistiller's (``distiller_zoo/FT.py``, ``FactorTransfer(p1=2, p2=1)``): each
factor map ``[B, C, H, W]`` becomes the L2-normalized channel mean of its square,
``normalize(mean_c f^2)`` (``[B, H W]``, AT's attention map), and the loss is the mean absolute
difference of the two. ``ft(factor=flat)`` takes the FT paper's form instead: L2-normalize the
whole flattened factor (``[B, C H W]``), then the same L1 (another scale: beta 200 was tuned for
the reference's form).

The paraphraser's pre-training runs at lr 0.01 when the student is a resnet or wrn of the zoo,
else at the run's lr (RepDistiller ``helper/pretrain.py``); ``init_lr`` sets it explicitly.
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

FACTOR_FORMS = ("channel_mean", "flat")
"""How a factor map becomes a vector: RepDistiller's channel mean of squares, or the paper's
flat map."""

# helper/pretrain.py: the students whose paraphraser pre-trains at lr 0.01 (else the run's lr)
_PRETRAIN_LR_001 = ("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56",
                    "resnet110", "resnet8x4", "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_40_1",
                    "wrn_40_2")


def factor_vector(factor: Tensor, form: str = "channel_mean") -> Tensor:
    """``[B, C, H, W]`` -> unit rows: ``normalize(mean_c factor^2)`` (``[B, H W]``) or, for
    ``form="flat"``, ``normalize(factor.flatten(1))`` (``[B, C H W]``)."""
    if form == "channel_mean":
        return F.normalize(factor.pow(2).mean(1).flatten(1), dim=1)
    if form == "flat":
        return F.normalize(factor.flatten(1), dim=1)
    raise ValueError(f"unknown factor form {form!r}; known: {', '.join(FACTOR_FORMS)}")


@float32
def factor_loss(factor_s: Tensor, factor_t: Tensor, form: str = "channel_mean") -> Tensor:
    """``mean |v(T_s) - v(P_t)|`` of the factors ``[B, C, H, W]`` (the larger map pooled to the
    smaller), ``v`` as :func:`factor_vector`."""
    factor_s, factor_t = pool_to_common(factor_s, factor_t)
    return (factor_vector(factor_s, form) - factor_vector(factor_t, form)).abs().mean()


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
    """Factor transfer with a pre-trained, frozen paraphraser.

    Options:
        k: the paraphraser's factor rate (0.5).
        init_epochs: pre-training epochs (None: 30 at 240 epochs, scaled with the run's).
        factor: ``channel_mean`` (the reference's) or ``flat`` (the FT paper's), see
            :func:`factor_vector`.
        init_lr: the pre-training's lr (None: 0.01 for resnet/wrn students, else the run's).
    """

    weights: ClassVar[tuple[float, float]] = (1.0, 200.0)
    pretrains: ClassVar[bool] = True

    def __init__(self, setup: DistillSetup, *, k: float = 0.5,
                 init_epochs: int | None = None, factor: str = "channel_mean",
                 init_lr: float | None = None) -> None:
        super().__init__(setup)
        check_option("ft", "k", k, 0 < k <= 4, "in (0, 4]")
        if init_epochs is not None:
            check_option("ft", "init_epochs", init_epochs, init_epochs >= 1, ">= 1")
        check_option("ft", "factor", factor, factor in FACTOR_FORMS, " or ".join(FACTOR_FORMS))
        if init_lr is not None:
            check_option("ft", "init_lr", init_lr, 0 < init_lr <= 10, "in (0, 10]")
        self.k, self.factor = k, factor
        self.init_lr = (init_lr if init_lr is not None
                        else 0.01 if setup.student_name in _PRETRAIN_LR_001 else None)
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
        return {"loss": factor_loss(self.translator(student.stages[-1]), factor_t, self.factor)}
