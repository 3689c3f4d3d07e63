"""Contrastive representation distillation (Tian et al. 2020) on ``feat[-1]`` (beta 0.8).

Both embeddings go through a linear layer to ``feat_dim`` (128) and are L2-normalized. Two
memory banks over the training set hold a momentum (0.5) average of each sample's student and
teacher embedding. For each sample, the positive is its own entry and ``nce_k`` (16384)
negatives are drawn uniformly from the samples of *other* classes (the framework's "exact"
mode), without replacement when ``nce_k`` is at most the number of such samples and with
replacement otherwise, as RepDistiller's ``CIFAR100InstanceSample`` draws them
(``np.random.choice(..., replace=k > len(pool))``); scores ``exp(<v, m> / nce_t) / Z`` with Z
fixed from the first batch, and the NCE loss of each side against the other side's bank, summed.

The banks are indexed by the training-split index of each sample (``Step.index``), so they stay
correct under shuffling and train subsets; both views of a step are scored, and the banks are
updated from the original view x only.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

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

NCE_EPS = 1e-7


@float32
def nce_loss(scores: Tensor, num_data: int) -> Tensor:
    """The NCE loss of CRD for scores ``[B, 1 + K]`` (positive first) over ``num_data`` samples.

    ``-(sum log(P_pos / (P_pos + K Pn)) + sum log(K Pn / (P_neg + K Pn))) / B`` with the noise
    probability ``Pn = 1 / num_data``.
    """
    b, k = scores.shape[0], scores.shape[1] - 1
    noise = k / num_data
    positive = scores[:, 0]
    negative = scores[:, 1:]
    log_d1 = torch.log(positive / (positive + noise + NCE_EPS))
    log_d0 = torch.log(noise / (negative + noise + NCE_EPS))
    return -(log_d1.sum() + log_d0.sum()) / b


REPLACE_MODES = ("auto", "always", "never")
"""When CRD's negatives are drawn with replacement: when ``nce_k`` exceeds a row's pool (the
reference's rule), always, or never (then ``nce_k`` must fit every pool)."""


def _ranks_without_replacement(others: Tensor, k: int, m: int,
                               generator: torch.Generator | None) -> Tensor:
    """``[B, k]`` distinct ranks per row, a uniform random k-subset of ``0 .. others[b] - 1``
    (``others`` ``[B, 1]``, each >= k; ``m`` >= every ``others[b]``), in random order.

    The k smallest of ``m`` uniform keys are a uniform k-subset of their positions; keys at
    positions past a row's pool are pushed above every real key, so never chosen.
    """
    keys = torch.rand(others.shape[0], m, device=others.device, generator=generator)
    position = torch.arange(m, device=others.device)
    keys = keys.masked_fill(position >= others, 2.0)
    return keys.topk(k, dim=1, largest=False, sorted=False).indices


def sample_negatives(labels: Tensor, by_class: Tensor, class_start: Tensor, class_count: Tensor,
                     k: int, generator: torch.Generator | None, replace: str = "always",
                     largest_pool: int | None = None) -> Tensor:
    """``[B, k]`` training indices drawn uniformly from the other classes.

    Args:
        labels: ``[B]`` the samples' classes.
        by_class: ``[N]`` training indices sorted by class.
        class_start, class_count: ``[num_classes]`` where each class's run starts in
            ``by_class`` and how long it is.
        replace: ``"always"`` (each draw independent), ``"never"`` (k distinct indices per row;
            every row's pool must hold at least k) or ``"auto"``: without replacement in the
            rows whose pool holds at least k, with replacement in the others (RepDistiller).
            No host sync in any mode given ``largest_pool``: ``"auto"`` draws both and picks
            per row.
        largest_pool: the most samples outside one class (``N - min count``); None computes it
            from ``class_count`` (a host sync).
    """
    n = by_class.shape[0]
    others = (n - class_count[labels]).unsqueeze(1)  # [B, 1] how many samples are not of y
    if replace == "always":
        u = torch.rand(labels.shape[0], k, device=labels.device, generator=generator)
        r = (u * others).long().clamp_max(others - 1)  # rank among the others, uniform
    elif replace in ("never", "auto"):
        m = int(n - class_count.min()) if largest_pool is None else largest_pool
        r = _ranks_without_replacement(others.clamp_min(k), k, m, generator)
        if replace == "auto":
            u = torch.rand(labels.shape[0], k, device=labels.device, generator=generator)
            with_replacement = (u * others).long().clamp_max(others - 1)
            r = torch.where(others >= k, r, with_replacement)
    else:
        raise ValueError(f"unknown replace mode {replace!r}; known: {', '.join(REPLACE_MODES)}")
    start = class_start[labels].unsqueeze(1)
    # skip the own class's run: ranks at or after its start shift past it
    position = torch.where(r < start, r, r + class_count[labels].unsqueeze(1))
    return by_class[position]


@register_distiller("crd")
class CRD(Distiller):
    """CRD with the two memory banks of the reference implementation."""

    weights: ClassVar[tuple[float, float]] = (1.0, 0.8)

    def __init__(self, setup: DistillSetup, *, feat_dim: int = 128, nce_k: int = 16384,
                 nce_t: float = 0.07, momentum: float = 0.5, replace: str = "auto") -> None:
        super().__init__(setup)
        check_option("crd", "replace", replace, replace in REPLACE_MODES,
                     " or ".join(REPLACE_MODES))
        check_option("crd", "feat_dim", feat_dim, 1 <= feat_dim <= 65536, "1..65536")
        check_option("crd", "nce_k", nce_k, 1 <= nce_k <= 1 << 20, "1..1048576")
        check_option("crd", "nce_t", nce_t, 0 < nce_t <= 100, "in (0, 100]")
        check_option("crd", "momentum", momentum, 0 <= momentum < 1, "in [0, 1)")
        self.feat_dim, self.nce_k, self.nce_t, self.momentum = feat_dim, nce_k, nce_t, momentum
        self.embed_student = LinearEmbedding(setup.student.feature_dim, feat_dim)
        self.embed_teacher = LinearEmbedding(setup.teacher.feature_dim, feat_dim)
        labels = setup.train_labels.long()
        n = labels.shape[0]
        num_classes = max(setup.student.num_classes, int(labels.max()) + 1 if n else 0)
        counts = torch.bincount(labels, minlength=num_classes)
        if int(counts.max()) == n:
            raise ValueError("crd: every training sample has the same class; CRD draws its "
                             "negatives from the other classes")
        # the rows' pools (samples of other classes) are fixed by the split: choose the draw
        # once, on the host, so no step waits for the device
        smallest_pool, largest_pool = n - int(counts.max()), n - int(counts[counts > 0].min())
        if replace == "never" and nce_k > smallest_pool:
            raise ValueError(f"crd: replace=never needs nce_k <= {smallest_pool} (the samples "
                             f"outside the largest class), got nce_k={nce_k}")
        self.replace, self._largest_pool = replace, largest_pool
        self._draw = ("always" if replace == "always" or nce_k > largest_pool
                      else "never" if nce_k <= smallest_pool else "auto")
        device = labels.device
        self.register_buffer("by_class", torch.argsort(labels, stable=True))
        self.register_buffer("class_count", counts)
        self.register_buffer("class_start", torch.cumsum(counts, 0) - counts)
        stdv = 1.0 / math.sqrt(feat_dim / 3)
        for name in ("memory_student", "memory_teacher"):
            bank = torch.rand(n, feat_dim).mul_(2 * stdv).add_(-stdv).to(device)
            self.register_buffer(name, bank)
        # the normalizing constants Z of the two sides, fixed from the first batch (-1: unset)
        self.register_buffer("z", torch.full((2,), -1.0, device=device))

    def _scores(self, v: Tensor, bank: Tensor, index: Tensor, side: int) -> Tensor:
        """``exp(<v_b, bank[index[b, j]]> / nce_t) / Z`` as ``[B, 1 + K]``.

        The products with the whole bank (``[B, N]``, one matmul) are gathered at ``index``:
        the same numbers as gathering the ``B (1 + K)`` bank rows first, without copying
        ``B (1 + K) D`` floats (537 MB per side at the recipe's K and batch).
        """
        logits = (v @ bank.t()).gather(1, index) / self.nce_t
        scores = torch.exp(logits)
        z = self.z[side]
        z_new = torch.where(z < 0, scores.detach().mean() * bank.shape[0], z)
        with torch.no_grad():
            self.z[side] = z_new
        return scores / z_new

    def forward(self, student: ModelOutput, teacher: ModelOutput, step: Step) -> dict[str, Tensor]:
        if step.index is None:
            raise ValueError("crd needs the training-set index of every sample (Step.index)")
        e_s = self.embed_student(student.pooled).float()
        e_t = self.embed_teacher(teacher.pooled).float()
        negatives = sample_negatives(step.labels, self.by_class, self.class_start,
                                     self.class_count, self.nce_k, step.generator, self._draw,
                                     self._largest_pool)
        index = torch.cat([step.index.unsqueeze(1), negatives], dim=1)
        # each side is scored against the other side's bank
        out_s = self._scores(e_s, self.memory_teacher, index, 1)
        out_t = self._scores(e_t, self.memory_student, index, 0)
        n = self.memory_student.shape[0]
        loss_s, loss_t = nce_loss(out_s, n), nce_loss(out_t, n)
        if step.view == "original" and self.training:
            self._update("memory_student", e_s, step.index)
            self._update("memory_teacher", e_t, step.index)
        return {"loss": loss_s + loss_t, "student_side": loss_s.detach(),
                "teacher_side": loss_t.detach()}

    @torch.no_grad()
    def _update(self, name: str, v: Tensor, index: Tensor) -> None:
        """Momentum update of the samples' rows, then re-normalized. Out of place: the step's
        graph still holds the old bank (the scores' backward needs it)."""
        bank = getattr(self, name)
        mixed = bank[index] * self.momentum + v.detach() * (1 - self.momentum)
        setattr(self, name, bank.index_copy(0, index, mixed / mixed.norm(dim=1, keepdim=True)))
