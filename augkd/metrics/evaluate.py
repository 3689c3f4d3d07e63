"""Test-set evaluation of a classifier: S. test loss (mean CE at T = 1) and top-1/top-5."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EvalResult", "evaluate"]


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Metrics of a model on a labelled set.

    Attributes:
        loss: mean cross-entropy at temperature 1 over all ``n`` images (S. test loss).
        top1: top-1 accuracy in percent.
        top5: top-5 accuracy in percent (top-C when there are fewer than 5 classes).
        n: number of images evaluated.
    """

    loss: float
    top1: float
    top5: float
    n: int


def evaluate(
    model: nn.Module,
    images_uint8: Tensor,
    labels: Tensor,
    normalize: Callable[[Tensor], Tensor],
    *,
    batch_size: int = 1024,
    device: torch.device | None = None,
) -> EvalResult:
    """Evaluate ``model`` on the full set in eval mode, without gradients.

    The model runs under ``torch.inference_mode()`` in eval mode; its previous mode is restored
    afterwards. Logits are cast to float32 before the loss and the ranking, so the call may sit
    inside ``torch.autocast``. Counts accumulate on the device; the host syncs once at the end.

    Args:
        model: classifier; ``model(x)`` returns logits ``[b, K]``.
        images_uint8: uint8 ``[N, C, H, W]`` on the model's device.
        labels: integer ``[N]`` class indices (moved to the images' device if needed).
        normalize: maps a uint8 batch ``[b, C, H, W]`` to the float normalized input.
        batch_size: images per forward.
        device: where the model runs; None means the images' device. Images held elsewhere
            (host memory, for a dataset larger than the device) are copied a batch at a time.

    Returns:
        :class:`EvalResult` with the mean loss and accuracies in percent over all ``N`` images.
    """
    if images_uint8.dtype != torch.uint8 or images_uint8.ndim != 4:
        raise ValueError(
            f"expected uint8 images [N, C, H, W], got dtype {images_uint8.dtype} "
            f"and shape {tuple(images_uint8.shape)}"
        )
    if labels.ndim != 1 or labels.shape[0] != images_uint8.shape[0]:
        raise ValueError(
            f"expected labels [N] with N = {images_uint8.shape[0]}, got shape {tuple(labels.shape)}"
        )
    if labels.is_floating_point():
        raise TypeError(f"expected integer class labels, got dtype {labels.dtype}")
    n = images_uint8.shape[0]
    if n == 0:
        raise ValueError("cannot evaluate on an empty set")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")

    device = images_uint8.device if device is None else torch.device(device)
    labels = labels.to(device=device, dtype=torch.int64)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            correct1 = torch.zeros((), dtype=torch.int64, device=device)
            correct5 = torch.zeros((), dtype=torch.int64, device=device)
            for start in range(0, n, batch_size):
                y = labels[start:start + batch_size]
                x = images_uint8[start:start + batch_size]
                if x.device != device:  # host memory: pinned, copied without waiting
                    x = x.pin_memory() if device.type == "cuda" else x
                    x = x.to(device, non_blocking=True)
                logits = model(normalize(x)).float()
                loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
                top = logits.topk(min(5, logits.shape[1]), dim=1).indices
                hits = top == y[:, None]
                correct1 += hits[:, 0].sum()
                correct5 += hits.any(dim=1).sum()
            loss, c1, c5 = loss_sum.item(), correct1.item(), correct5.item()
    finally:
        model.train(was_training)
    return EvalResult(loss=loss / n, top1=100.0 * c1 / n, top5=100.0 * c5 / n, n=n)
