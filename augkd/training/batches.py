"""The one batch order of augkd: a shuffled permutation of the training set, cut into slices.

The epoch loop, a method's pre-training stage (FT's paraphraser) and the T. stddev measurement
walk the training set the same way: one ``torch.randperm`` per pass drawn from the pass's
generator, then consecutive ``batch_size`` slices of it, the last partial slice included (as a
DataLoader without ``drop_last``). Batches are index tensors on the data's device, so a batch
is ``images[index]``: no host copy, no worker processes. A dataset too large for the device
stays in host memory and :meth:`ShuffledBatches.with_rows` gathers the same batches there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
from torch import Tensor


@dataclasses.dataclass(frozen=True)
class ShuffledBatches:
    """The batches of one pass: ``len()`` of them, each an int64 index tensor ``[<= batch_size]``.

    Attributes:
        order: the pass's permutation of ``range(n)``, int64 ``[n]``, on the data's device.
        batch_size: rows per batch (the last one may hold fewer).
        n_batches: how many slices of ``order`` the pass yields (a dropped small last batch
            is not counted).
    """

    order: Tensor
    batch_size: int
    n_batches: int

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[Tensor]:
        for step in range(self.n_batches):
            yield self.order[step * self.batch_size:(step + 1) * self.batch_size]

    def with_rows(self, images: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
        """``(index, images[index])`` for each batch, the rows on the index's device.

        Where ``images`` live on that device this is one index per batch. Where they live in
        host memory (a dataset larger than the device), the pass's order is copied to the host
        once, each batch is gathered there, pinned, and copied with ``non_blocking=True``: the
        same rows in the same order, so the augmentation and the step see the same batches.
        """
        if images.device == self.order.device:
            for index in self:
                yield index, images[index]
            return
        host_order = self.order.to(images.device)  # one copy per pass, not one per step
        pin = self.order.device.type == "cuda"
        for step, index in enumerate(self):
            rows = images[host_order[step * self.batch_size:(step + 1) * self.batch_size]]
            if pin:
                rows = rows.pin_memory()
            yield index, rows.to(self.order.device, non_blocking=True)


def shuffled_batches(
    n: int,
    batch_size: int,
    generator: torch.Generator | None,
    device: torch.device | str,
    *,
    min_last: int = 1,
) -> ShuffledBatches:
    """Draw one pass's permutation of ``range(n)`` now and return its batches.

    The permutation is drawn at once (not on the first ``next``), so the generator's later
    draws (the augmentations of the pass) follow it exactly as in a loop that calls
    ``torch.randperm`` itself.

    Args:
        n: the number of samples (> 0).
        batch_size: rows per batch (> 0).
        generator: the source of the permutation; it is drawn on the generator's own device
            (CPU or CUDA: the two give different permutations) and moved to ``device``. None
            uses torch's default generator, drawing on ``device``.
        device: where the index tensors live (the data's device).
        min_last: a partial last batch with fewer rows than this is dropped (data-parallel
            training needs one row per rank: ``min_last=world_size``); 1 keeps every batch.

    Returns:
        :class:`ShuffledBatches` of ``ceil(n / batch_size)`` batches, less a dropped last one.
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"shuffled_batches needs n >= 1 and batch_size >= 1, got n={n}, "
                         f"batch_size={batch_size}")
    draw_on = generator.device if generator is not None else device
    order = torch.randperm(n, generator=generator, device=draw_on).to(device)
    n_batches = -(-n // batch_size)
    if 0 < n % batch_size < min_last:
        n_batches -= 1
    return ShuffledBatches(order, int(batch_size), n_batches)
