"""Multi-level KD through knowledge alignment and correlation (MLKD; Ding et al., also DLKD).

As in the authors' CIFAR code (ifding/DLKD ``dataset/cifar.py``, ``CIFAR100.__getitem__``;
docs/protocol.md §9): each training image is flipped once (p 0.5), then taken in its four
rotations (0, 90, 180, 270 degrees), and each rotated copy gets its own random crop (pad H // 8)
: :class:`RotatedCrops`, MLKD's base DA in place of the recipe's crop+flip. The batch becomes
``[x_0; x_90; x_180; x_270]`` (4B, block by block); the DA under study then makes x~ from that
4B batch (every copy drawn on its own in the per-image mode). CE stays on the 0-degree images
(the trainer takes the task loss on the first B logits). On the pooled embeddings ``f_s``
(``[4B, d_s]``) and ``f_t`` (``[4B, d_t]``):

- alignment ``2 - 2 cos(h(f_s), f_t)``, h an MLP ``d_s -> 16 d_t -> d_t`` (BatchNorm, ReLU),
  mean over the 4B samples, weight 20;
- correlation: the cosine similarities of each of the 3B rotated samples to each of the B
  unrotated ones (a ``[3B, B]`` relation matrix) for the teacher (raw features) and for the
  student (through an MLP ``d_s -> d_s -> d_s``); ``KL(softmax(A_t / 0.5) || softmax(A_s / 0.5))``
  per row, batch mean, teacher side detached; weight 50;
- supervised contrastive: both networks' features linearly embedded to 128 and L2-normalized,
  the student's and the teacher's embeddings of all 4B samples together as anchors (8B),
  positives the other anchors of the same label, temperature 0.07; weight 1.

The weights 20 / 50 / 1 are those of the authors' code; the paper's text gives 10 / 20 / 0.5
(docs/protocol.md §9 says why augkd follows the code). In augkd's two-view step each view gives
its MLKD term against the teacher's outputs on it, as every other method computes its term on x~.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augkd.augment.base import Augmentation, AugmentOutput, check_images
from augkd.augment.geometric import CropParams, crop_and_flip, draw_flags
from augkd.distill.base import (
    Distiller,
    DistillSetup,
    Step,
    check_option,
    float32,
    register_distiller,
)
from augkd.distill.cc import LinearEmbedding
from augkd.models.base import ModelOutput

ROTATIONS = 4


@dataclasses.dataclass(frozen=True)
class RotatedCropParams:
    """Parameters of :class:`RotatedCrops`: ``flip`` bool ``[B]`` (one per image, shared by its
    rotations) and ``crop`` offsets of the ``4B`` rotated copies (block by block)."""

    flip: Tensor
    crop: CropParams


class RotatedCrops(Augmentation):
    """MLKD's base DA: uint8 ``[B, C, S, S]`` -> ``[4B, C, S, S]``, rows ``k B .. (k+1) B`` the
    images flipped (once per image, p 0.5), rotated by ``k`` x 90 degrees counter-clockwise
    (``torch.rot90`` over H, W, as ``np.rot90`` of an HWC image) and cropped at their own offset
    (zero padding ``S // 8``, as the recipe's crop). Square images only."""

    name = "mlkd-rotations"

    def sample(self, shape: torch.Size, device: torch.device,
               generator: torch.Generator | None) -> RotatedCropParams:
        """Draw the flip flags ``[B]``, then the ``4B`` crop offsets, int64 each."""
        b, h, w = shape[0], shape[-2], shape[-1]
        if h != w:
            raise ValueError(f"mlkd rotates its images by 90 degrees and needs square ones, got "
                             f"{h}x{w}")
        flip = draw_flags(0.5, b, b, device, generator)
        pad = h // 8
        offsets = torch.randint(0, 2 * pad + 1, (2, ROTATIONS * b), device=device,
                                generator=generator)
        return RotatedCropParams(flip, CropParams(offsets[0], offsets[1], pad))

    def apply(self, images: Tensor, params: RotatedCropParams) -> AugmentOutput:
        """Flip, rotate four ways, crop every copy (see the class docstring)."""
        check_images(images)
        flipped = torch.where(params.flip[:, None, None, None], images.flip(-1), images)
        return AugmentOutput(images=crop_and_flip(rotations(flipped), params.crop))

    def __str__(self) -> str:
        return "mlkd-rotations(flip, 4 rotations, a crop each)"


def rotations(x: Tensor) -> Tensor:
    """``[B, C, H, W]`` -> ``[4B, C, H, W]``: x rotated by 0, 90, 180 and 270 degrees
    (``torch.rot90`` over the spatial dims), the rotations stacked block by block."""
    return torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(ROTATIONS)])


@float32
def alignment_loss(h_s: Tensor, f_t: Tensor) -> Tensor:
    """``mean(2 - 2 cos(h_s, f_t))`` over the rows of ``[N, d]`` tensors."""
    return (2 - 2 * F.cosine_similarity(h_s, f_t, dim=1)).mean()


def relation_matrix(f: Tensor, batch: int) -> Tensor:
    """``[3B, B]`` cosine similarities of the rotated samples (rows ``B..4B``) to the unrotated
    ones (rows ``0..B``) of ``f`` (``[4B, d]``)."""
    unit = F.normalize(f, dim=1)
    return unit[batch:] @ unit[:batch].t()


@float32
def correlation_loss(a_s: Tensor, a_t: Tensor, temperature: float = 0.5) -> Tensor:
    """``KL(softmax(a_t / T) || softmax(a_s / T))`` per row, averaged over the rows."""
    log_p_s = F.log_softmax(a_s / temperature, dim=1)
    log_p_t = F.log_softmax(a_t.detach() / temperature, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)


@float32
def supcon_loss(z: Tensor, labels: Tensor, temperature: float = 0.07) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) of unit embeddings ``[N, d]``.

    For anchor i with positives P(i) (the other rows of its label):
    ``-1/|P(i)| sum_p log(exp(z_i.z_p / T) / sum_{a != i} exp(z_i.z_a / T))``, averaged over
    the anchors that have a positive.
    """
    n = z.shape[0]
    logits = z @ z.t() / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~self_mask
    n_pos = positive.sum(1)
    per_anchor = -(log_prob.masked_fill(~positive, 0.0)).sum(1) / n_pos.clamp_min(1)
    has_pos = n_pos > 0
    return (per_anchor * has_pos).sum() / has_pos.sum().clamp_min(1)


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.BatchNorm1d(d_hidden), nn.ReLU(),
                         nn.Linear(d_hidden, d_out))


@register_distiller("mlkd")
class MLKD(Distiller):
    """Alignment, correlation and supervised-contrastive terms over four rotations."""

    weights: ClassVar[tuple[float, float]] = (1.0, 1.0)

    def __init__(self, setup: DistillSetup, *, w_align: float = 20.0, w_corr: float = 50.0,
                 w_supcon: float = 1.0, feat_dim: int = 128, corr_t: float = 0.5,
                 supcon_t: float = 0.07) -> None:
        super().__init__(setup)
        for name, value in (("w_align", w_align), ("w_corr", w_corr), ("w_supcon", w_supcon)):
            check_option("mlkd", name, value, value >= 0, ">= 0")
        for name, value in (("corr_t", corr_t), ("supcon_t", supcon_t)):
            check_option("mlkd", name, value, 0 < value <= 100, "in (0, 100]")
        check_option("mlkd", "feat_dim", feat_dim, 1 <= feat_dim <= 65536, "1..65536")
        self.w_align, self.w_corr, self.w_supcon = w_align, w_corr, w_supcon
        self.feat_dim, self.corr_t, self.supcon_t = feat_dim, corr_t, supcon_t
        d_s, d_t = setup.student.feature_dim, setup.teacher.feature_dim
        self.align_head = _mlp(d_s, 16 * d_t, d_t)
        self.relation_head = _mlp(d_s, d_s, d_s)
        self.embed_student = LinearEmbedding(d_s, feat_dim)
        self.embed_teacher = LinearEmbedding(d_t, feat_dim)

    def base_augmentation(self) -> Augmentation:
        """Flip once, four rotations, an independent crop of each (:class:`RotatedCrops`)."""
        return RotatedCrops()

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        f_s, f_t = student.pooled, teacher.pooled.detach()
        b = f_s.shape[0] // ROTATIONS
        align = alignment_loss(self.align_head(f_s), f_t)
        corr = correlation_loss(relation_matrix(self.relation_head(f_s), b),
                                relation_matrix(f_t, b), self.corr_t)
        z = torch.cat([self.embed_student(f_s), self.embed_teacher(f_t)])
        labels = step.labels.repeat(2 * ROTATIONS)  # rotations and both networks share labels
        supcon = supcon_loss(z, labels, self.supcon_t)
        loss = self.w_align * align + self.w_corr * corr + self.w_supcon * supcon
        return {"loss": loss, "align": align.detach(), "corr": corr.detach(),
                "supcon": supcon.detach()}
