"""T. stddev: the teacher-only metric that ranks data augmentations for KD.

The statistic (docs/protocol.md §3) reads a *stream* of teacher probability tensors in the order
the KD loop produces them: for every batch, ``softmax(T(x))`` then ``softmax(T(x~))``. The
stream is cut into consecutive groups of ``group_size`` tensors (10 = 5 batches with both
views); each group is reduced to the mean probability vector over all of its rows; T. stddev is
the unbiased standard deviation of those group means over groups, averaged over classes::

    T_stddev = mean_c std_g( mean_{rows r in group g} p[r, c] )

Groups run across epoch boundaries (the stream is one continuous sequence) and a last,
incomplete group is dropped. A good extra DA lowers T. stddev.

Two layers live here:

* the statistic on any stream: :class:`GroupMeans`, :func:`group_means`, :func:`t_stddev` and
  :func:`t_stddev_from_group_means` (so recorded group means can be recomputed);
* the measuring loop :func:`measure_t_stddev`, which runs the frozen teacher over the training
  set with the DA pipeline, batching many KD batches into one teacher forward.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "GroupMeans",
    "TStddevResult",
    "group_means",
    "mark_trained",
    "measure_t_stddev",
    "t_stddev",
    "t_stddev_from_group_means",
]


class GroupMeans:
    """Streaming accumulator of the group means of a probability stream.

    Feed the stream in production order with :meth:`update` (one tensor) or :meth:`update_rows`
    (several consecutive tensors concatenated, as a chunked teacher forward produces them).
    Sums are kept in float64 on the device of the probabilities; no host synchronisation
    happens until :meth:`means` is called.

    Args:
        group_size: number of stream tensors per group (10 in the paper: 5 batches x 2 views).

    Attributes:
        n_tensors: stream tensors seen so far (complete groups and the pending one).
        n_groups: complete groups so far.
    """

    def __init__(self, group_size: int = 10) -> None:
        if int(group_size) < 1:
            raise ValueError(f"group_size must be a positive integer, got {group_size}")
        self.group_size = int(group_size)
        self.n_tensors = 0
        self.n_classes: int | None = None
        self._completed: list[Tensor] = []  # float64 [g, C] blocks of finished group means
        self._pending_sum: Tensor | None = None  # float64 [C], the unfinished group's row sum
        self._pending_rows = 0

    @property
    def n_groups(self) -> int:
        return self.n_tensors // self.group_size

    def update(self, probs: Tensor) -> None:
        """Append one stream tensor: probabilities ``[b, C]`` (float, any device), ``b >= 1``."""
        self.update_rows(probs, [probs.shape[0]] if probs.ndim == 2 else [0])

    def update_rows(self, probs: Tensor, sizes: Sequence[int]) -> None:
        """Append ``len(sizes)`` consecutive stream tensors given as one concatenated tensor.

        Args:
            probs: float ``[sum(sizes), C]``; rows of stream tensor ``j`` follow those of ``j-1``.
            sizes: the row count of each stream tensor, in order; each at least 1.
        """
        sizes = [int(s) for s in sizes]
        if probs.ndim != 2:
            raise ValueError(f"expected probabilities of shape [b, C], got {tuple(probs.shape)}")
        if not probs.is_floating_point():
            raise TypeError(f"expected floating-point probabilities, got dtype {probs.dtype}")
        if any(s < 1 for s in sizes):
            raise ValueError(f"every stream tensor needs at least one row, got sizes {sizes}")
        if sum(sizes) != probs.shape[0]:
            raise ValueError(f"sizes add up to {sum(sizes)} rows but probs has {probs.shape[0]}")
        if self.n_classes is None:
            self.n_classes = probs.shape[1]
        elif probs.shape[1] != self.n_classes:
            raise ValueError(
                f"stream tensors must keep the class count: got {probs.shape[1]} classes "
                f"after {self.n_classes}"
            )
        if not sizes:
            return

        # Group of each incoming tensor, counted from the pending group (local group 0);
        # all bookkeeping is on host-side ints, only the row sums touch the device.
        offset = self.n_tensors % self.group_size
        local_group = [(offset + j) // self.group_size for j in range(len(sizes))]
        rows = [0] * (local_group[-1] + 1)
        for group, size in zip(local_group, sizes, strict=True):
            rows[group] += size
        row_group = torch.repeat_interleave(torch.tensor(local_group), torch.tensor(sizes))
        sums = torch.zeros(len(rows), self.n_classes, dtype=torch.float64, device=probs.device)
        sums.index_add_(0, row_group.to(probs.device), probs.to(torch.float64))
        if self._pending_sum is not None:
            sums[0] += self._pending_sum.to(sums.device)
        rows[0] += self._pending_rows

        n_done = (offset + len(sizes)) // self.group_size  # groups this update completes
        self.n_tensors += len(sizes)
        if n_done:
            counts = torch.tensor(rows[:n_done], dtype=torch.float64, device=sums.device)
            self._completed.append(sums[:n_done] / counts[:, None])
        if self.n_tensors % self.group_size:
            self._pending_sum, self._pending_rows = sums[n_done], rows[n_done]
        else:
            self._pending_sum, self._pending_rows = None, 0

    def means(self) -> Tensor:
        """The complete groups' mean probability vectors: float64 ``[G, C]`` on the CPU.

        The pending incomplete group is not included. ``C`` is 0 when nothing was seen.
        """
        if not self._completed:
            return torch.zeros(0, self.n_classes or 0, dtype=torch.float64)
        return torch.cat([block.cpu() for block in self._completed])

    def t_stddev(self) -> float:
        """T. stddev of the complete groups; ValueError with fewer than 2 of them."""
        if self.n_groups < 2:
            raise ValueError(
                f"T. stddev needs at least 2 complete groups of {self.group_size} probability "
                f"tensors ({2 * self.group_size} tensors); got {self.n_tensors} tensors "
                "(measure more epochs, or use a smaller group size or batch size)"
            )
        return t_stddev_from_group_means(self.means())


def group_means(prob_batches: Iterable[Tensor], group_size: int = 10) -> Tensor:
    """Group means of a probability stream.

    Args:
        prob_batches: teacher probability tensors ``[b, C]`` in production order (original
            view, augmented view, original, augmented, ...).
        group_size: stream tensors per group.

    Returns:
        float64 ``[G, C]`` on the CPU, ``G = len(stream) // group_size``; row ``g`` is the mean
        over all rows of tensors ``g * group_size ... (g + 1) * group_size - 1``.
    """
    acc = GroupMeans(group_size)
    for probs in prob_batches:
        acc.update(probs)
    return acc.means()


def t_stddev_from_group_means(means: Tensor) -> float:
    """T. stddev from recorded group means ``[G, C]`` (any float dtype): the mean over classes
    of the unbiased standard deviation over groups, computed in float64."""
    if means.ndim != 2:
        raise ValueError(f"expected group means of shape [G, C], got {tuple(means.shape)}")
    if means.shape[0] < 2:
        raise ValueError(
            f"T. stddev needs at least 2 group means for an unbiased std; got {means.shape[0]}"
        )
    return float(means.to(torch.float64).std(dim=0, correction=1).mean())


def t_stddev(prob_batches: Iterable[Tensor], group_size: int = 10) -> float:
    """T. stddev (docs/protocol.md §3) of a probability stream.

    Args:
        prob_batches: teacher probability tensors ``[b, C]`` (softmax at T = 1) in production
            order: original view, augmented view, original, augmented, ... Groups of
            ``group_size`` consecutive tensors run across epoch boundaries; a last incomplete
            group is dropped.
        group_size: stream tensors per group (10 = 5 batches with both views).

    Returns:
        The mean over classes of the unbiased std over groups of the group mean vectors.

    Raises:
        ValueError: fewer than 2 complete groups (the message gives the counts).
    """
    acc = GroupMeans(group_size)
    for probs in prob_batches:
        acc.update(probs)
    return acc.t_stddev()


# --------------------------------------------------------------------------------------------
# The measuring loop


@dataclasses.dataclass(frozen=True)
class TStddevResult:
    """The outcome of :func:`measure_t_stddev`.

    Attributes:
        value: T. stddev.
        group_means: float64 ``[G, C]`` on the CPU, the per-group mean probability vectors
            (recompute ``value`` with :func:`t_stddev_from_group_means`).
        n_groups: ``G``.
        epochs: passes over the training set.
        batch_size: the KD batch size the stream was formed with.
        seconds: wall-clock time of the measurement.
        group_size: stream tensors per group.
    """

    value: float
    group_means: Tensor
    n_groups: int
    epochs: int
    batch_size: int
    seconds: float
    group_size: int = 10

    def __repr__(self) -> str:  # the group means are data, not a summary: shape only
        return (f"TStddevResult(value={self.value:.6f}, n_groups={self.n_groups}, "
                f"group_means=<{self.group_means.dtype} {list(self.group_means.shape)}>, "
                f"epochs={self.epochs}, batch_size={self.batch_size}, "
                f"group_size={self.group_size}, seconds={self.seconds:.1f})")


#: Attribute a trained student carries to serve as CutMixPick-S's frozen scorer: the number
#: of epochs it was trained (set by ``augkd.training.load_student`` or :func:`mark_trained`).
TRAINED_ATTR = "augkd_trained_epochs"


def mark_trained(student: nn.Module, epochs: int) -> nn.Module:
    """Declare ``student`` trained for ``epochs`` (>= 1) epochs, so that it may score
    CutMixPick-S's pool in :func:`measure_t_stddev`; returns ``student``."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"a trained student has at least 1 epoch, got {epochs!r}")
    setattr(student, TRAINED_ATTR, epochs)
    return student


def _build_scorer(pipeline: Any, teacher: nn.Module, student: nn.Module | None) -> Any:
    """The scorer a pick DA (cutmixpick, ``pick(SPEC, by=...)``) asks for, or None."""
    if not getattr(pipeline, "needs_scorer", False):
        return None
    kind = pipeline.extra.score
    if kind in ("student", "kl") and student is None:
        raise ValueError(
            f"the extra DA ranks its pool by score {kind!r}, which needs a trained KD "
            "student: pass student=augkd.training.load_student(RUN_DIR, ...)"
        )
    if kind in ("student", "kl") and not getattr(student, TRAINED_ATTR, 0):
        raise ValueError(
            f"the extra DA ranks its pool by score {kind!r} with a student that was "
            "never trained: a randomly initialized student's entropies mean nothing (the "
            "paper scores with a finished KD student, frozen); load one with "
            "augkd.training.load_student(RUN_DIR, ...) or mark your own trained model with "
            "augkd.metrics.mark_trained(model, epochs)"
        )
    from augkd.augment.pick import make_scorer  # lazy: only pick pipelines need it

    return make_scorer(kind, teacher=teacher, student=student, normalize=pipeline.normalize)


def measure_t_stddev(
    teacher: nn.Module,
    images_uint8: Tensor,
    pipeline: Any,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    group_size: int = 10,
    generator: torch.Generator | None = None,
    chunk_size: int = 8192,
    student: nn.Module | None = None,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> TStddevResult:
    """Measure T. stddev of a DA pipeline with a frozen teacher (docs/protocol.md §3).

    The loop reproduces the KD loop's data stream without training anything: per epoch, a
    permutation of the training set drawn from ``generator``; batches of ``batch_size`` (the
    last partial batch included, as a DataLoader without ``drop_last``); per batch the pipeline
    gives the normalized base-augmented view ``x`` and the extra-DA view ``x~``; the statistic
    sees ``softmax(T(x))`` then ``softmax(T(x~))`` (temperature 1). When the pipeline has no
    extra DA (``Views.augmented is None``) the stream holds only the original views.

    The teacher does not run at the KD batch size: the views of consecutive batches are
    concatenated into chunks of up to ``chunk_size`` rows (always whole batches, at least one)
    and the teacher runs once per chunk; the chunk's probabilities are then split back into
    the per-batch, per-view stream tensors in their original order, so the groups and the
    value are those of the batch-by-batch loop (up to float rounding), only faster. This relies
    on the teacher in eval mode treating rows independently (BatchNorm uses running stats).

    Everything runs under ``torch.inference_mode()`` with the teacher (and the student, if
    given) in eval mode; their previous modes are restored afterwards. No autograd graph is
    ever built. The softmax is taken in float32, so an enclosing ``torch.autocast`` is fine.

    Args:
        teacher: the frozen teacher; ``teacher(x)`` returns logits ``[n, C]``.
        images_uint8: the training set, uint8 ``[N, C, H, W]``, on the device the teacher
            runs on, or in host memory when it does not fit there (``device`` then names the
            teacher's device; each batch is gathered on the host and copied, the same rows in
            the same order).
        pipeline: the DA pipeline (``augkd.augment.pipeline``): ``pipeline(images, generator=,
            scorer=) -> Views`` with ``Views.original`` float32 ``[b, C, H, W]`` and
            ``Views.augmented`` float32 ``[b, C, H, W]`` or None; ``pipeline.needs_scorer`` and
            ``pipeline.extra.score`` in {"teacher", "student", "kl"} for a pick DA (cutmixpick,
            ``pick(SPEC, by=...)``), whose scorer is built with ``augkd.augment.pick.make_scorer``.
        epochs: passes over the training set (10 in the paper).
        batch_size: KD batch size (64 in the paper); it fixes the stream's tensors.
        group_size: stream tensors per group (10 in the paper).
        generator: the source of the permutations and of the pipeline's randomness; it must
            live on the data's device (the augmentations draw from it there).
        chunk_size: maximum rows per teacher forward (a chunk is at least one batch's views).
        student: the frozen, trained KD student (see :func:`mark_trained`), needed only by the
            "student" and "kl" scores of a pick DA; an untrained one is refused.
        progress: show a tqdm progress bar (on stderr).
        device: where the teacher runs and the augmentations draw (default: the images').

    Returns:
        :class:`TStddevResult`; ``group_means`` is float64 ``[G, C]`` on the CPU.

    Raises:
        ValueError: bad arguments, a student-scored pipeline without ``student``, or fewer
            than 2 complete groups in the stream.
    """
    if images_uint8.dtype != torch.uint8 or images_uint8.ndim != 4:
        raise ValueError(
            f"expected uint8 training images [N, C, H, W], got dtype {images_uint8.dtype} "
            f"and shape {tuple(images_uint8.shape)}"
        )
    n_images = images_uint8.shape[0]
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("chunk_size", chunk_size)):
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if n_images == 0:
        raise ValueError("the training set is empty")

    from tqdm.auto import tqdm  # lazy: only the measuring loop shows progress

    # lazy: augkd.training imports augkd.metrics
    from augkd.training.batches import shuffled_batches

    device = images_uint8.device if device is None else torch.device(device)
    n_batches = -(-n_images // batch_size)
    acc = GroupMeans(group_size)
    modes = [(m, m.training) for m in (teacher, student) if m is not None]
    start = time.perf_counter()
    try:
        for module, _ in modes:
            module.eval()
        with torch.inference_mode():
            scorer = _build_scorer(pipeline, teacher, student)
            pending: list[Tensor] = []  # views waiting for the next teacher forward
            pending_rows = 0

            def flush() -> None:
                nonlocal pending, pending_rows
                if not pending:
                    return
                logits = teacher(torch.cat(pending))
                probs = logits.float().softmax(dim=1)
                acc.update_rows(probs, [v.shape[0] for v in pending])
                pending, pending_rows = [], 0

            # bars on a terminal only: in a log file their escape codes are noise
            with tqdm(total=epochs * n_batches, desc="T. stddev", unit="batch",
                      disable=not (progress and sys.stderr.isatty())) as bar:
                for _ in range(epochs):
                    # the KD loop's batch order: same permutation, same slices
                    batches = shuffled_batches(n_images, batch_size, generator, device)
                    for _, batch in batches.with_rows(images_uint8):
                        views = pipeline(batch, generator=generator, scorer=scorer)
                        new = [views.original]
                        if views.augmented is not None:
                            new.append(views.augmented)
                        new_rows = sum(v.shape[0] for v in new)
                        if pending_rows and pending_rows + new_rows > chunk_size:
                            flush()
                        pending.extend(new)
                        pending_rows += new_rows
                        bar.update(1)
                flush()
        means = acc.means()
        value = acc.t_stddev()
    finally:
        for module, was_training in modes:
            module.train(was_training)
    return TStddevResult(
        value=value,
        group_means=means,
        n_groups=means.shape[0],
        epochs=int(epochs),
        batch_size=int(batch_size),
        seconds=time.perf_counter() - start,
        group_size=acc.group_size,
    )
