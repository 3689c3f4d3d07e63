"""albumentations transforms as augkd DAs: per image on the CPU, each image with its own seeded
numpy and Python generators (the global ones untouched), over ``workers`` threads."""

from __future__ import annotations

import dataclasses
import random
import types
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor

from augkd.augment.base import AugmentOutput
from augkd.augment.external.base import (
    LibraryAugmentation,
    construct,
    import_library,
    resolve_attr,
    unknown_name,
)
from augkd.augment.external.grammar import MAX_WORKERS, SEED_HIGH, ExternalSpec
from augkd.augment.geometric import like_input_format
from augkd.grammar import check_param


@dataclasses.dataclass(frozen=True)
class AlbumentationsParams:
    """Parameters of :class:`AlbumentationsAugmentation`: ``seeds`` int64 ``[B]``, one per image."""

    seeds: Tensor


class AlbumentationsAugmentation(LibraryAugmentation):
    """An ``albumentations.Compose`` of the spec's transforms, applied per image on the CPU.

    Args:
        spec: the parsed ``albumentations:`` spec; its one option, ``workers`` (int, default
            0), is the number of threads the images of a batch are spread over (0: none).
    """

    name = "albumentations"
    library = "albumentations"

    def __init__(self, spec: ExternalSpec) -> None:
        super().__init__(spec, per_batch=False)
        options = dict(spec.prefix.kwargs)
        workers = options.pop("workers", 0)
        if options:
            raise ValueError(f"{spec.prefix}: unknown option {next(iter(options))!r}; "
                             "allowed: workers")
        check_param(spec.prefix.name, "workers", workers,
                    type(workers) is int and 0 <= workers <= MAX_WORKERS,
                    f"an integer in [0, {MAX_WORKERS}]")
        self.workers = workers
        A = import_library(spec.label(spec.stages[0]), "albumentations")
        # One Compose per thread: the random state is set on the Compose before each image.
        self._composes = [self._compose(A) for _ in range(max(1, workers))]

    def _compose(self, A: types.ModuleType) -> Any:
        transforms = []
        for stage in self.spec.stages:
            label = self.spec.label(stage)
            try:
                cls = resolve_attr(A, stage.name)
            except AttributeError:
                known = [n for n in dir(A) if isinstance(getattr(A, n), type)
                         and issubclass(getattr(A, n), A.BasicTransform)]
                raise unknown_name(label, stage.name, "albumentations", known) from None
            if not (isinstance(cls, type) and issubclass(cls, A.BasicTransform)):
                raise ValueError(f"{label}: albumentations.{stage.name} is not a transform class")
            transforms.append(construct(label, cls, stage.kwargs))
        return A.Compose(transforms)

    @classmethod
    def from_spec(cls, spec: ExternalSpec, *, per_batch: bool | None) -> AlbumentationsAugmentation:
        """Build the Compose; per-batch mode fails (albumentations draws per image)."""
        if per_batch:
            raise ValueError(f"{spec}: per-batch mode is not available: albumentations draws "
                             "per image (each image's random parameters separately)")
        return cls(spec)

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> AlbumentationsParams:
        """Draw one seed per image, int64 ``[B]`` on ``device``."""
        return AlbumentationsParams(
            torch.randint(0, SEED_HIGH, (shape[0],), device=device, generator=generator)
        )

    def apply(self, images: Tensor, params: AlbumentationsParams) -> AugmentOutput:
        """Transform each image (uint8 ``[B, C, H, W]``) on the CPU with its seed; same shape."""
        hwc = images.permute(0, 2, 3, 1).contiguous().cpu().numpy()  # [B, H, W, C]
        seeds = params.seeds.tolist()
        out = np.empty_like(hwc)
        chunks = np.array_split(np.arange(len(hwc)), len(self._composes))

        def run(compose: Any, indices: np.ndarray) -> None:
            for i in indices:
                compose.set_random_state(np.random.default_rng(seeds[i]), random.Random(seeds[i]))
                result = compose(image=hwc[i])["image"]
                out[i] = self._checked(result, hwc[i])

        with self._naming_the_spec():
            if self.workers == 0:
                run(self._composes[0], chunks[0])
            else:
                with ThreadPoolExecutor(self.workers) as pool:
                    jobs = zip(self._composes, chunks, strict=True)
                    for done in [pool.submit(run, compose, idx) for compose, idx in jobs]:
                        done.result()
        result = torch.from_numpy(out).to(images.device).permute(0, 3, 1, 2).contiguous()
        return AugmentOutput(images=like_input_format(result, images))

    def _checked(self, result: Any, image: np.ndarray) -> np.ndarray:
        """``result`` as ``H x W x C`` uint8 like ``image``, or a ValueError naming the spec."""
        if isinstance(result, np.ndarray) and result.ndim == 2 and image.shape[-1] == 1:
            result = result[:, :, None]  # OpenCV drops a single channel
        if (not isinstance(result, np.ndarray) or result.shape != image.shape
                or result.dtype != np.uint8):
            got = (f"{result.dtype} {result.shape}" if isinstance(result, np.ndarray)
                   else type(result).__name__)
            raise ValueError(f"{self.spec}: returned {got} for a uint8 {image.shape} image; "
                             "augkd DAs keep the shape and the uint8 dtype")
        return result
