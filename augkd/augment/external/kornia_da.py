"""kornia transforms as augkd DAs: batched on the images' device, seeded from the call's
generator through torch's global RNG, which is left as it was."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import types
from collections.abc import Iterator

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
from augkd.augment.external.grammar import SEED_HIGH, ExternalSpec, Stage
from augkd.augment.geometric import like_input_format


@dataclasses.dataclass(frozen=True)
class KorniaParams:
    """Parameters of :class:`KorniaAugmentation`: ``seed`` int64 ``[]``, seeds kornia's draws."""

    seed: Tensor


class KorniaAugmentation(LibraryAugmentation):
    """A pipeline of ``kornia.augmentation`` transforms, batched on the images' device.

    Args:
        spec: the parsed ``kornia:`` spec; ``per_batch`` is True when every transform has
            ``same_on_batch=True``.
    """

    name = "kornia"
    library = "kornia"

    def __init__(self, spec: ExternalSpec) -> None:
        super().__init__(spec, per_batch=all(s.kwargs.get("same_on_batch") is True
                                             for s in spec.stages))
        if spec.prefix.kwargs:
            raise ValueError(f"{spec.prefix}: kornia specs take no options")
        K = import_library(spec.label(spec.stages[0]), "kornia.augmentation")
        modules = []
        for stage in spec.stages:
            label = spec.label(stage)
            cls = self._transform_class(K, label, stage.name)
            modules.append(construct(label, cls, stage.kwargs))
        self.module = torch.nn.Sequential(*modules)

    @staticmethod
    def _transform_class(K: types.ModuleType, label: str, name: str) -> type:
        try:
            cls = resolve_attr(K, name)
        except AttributeError:
            known = [n for n in dir(K) if n[:1].isupper()]
            raise unknown_name(label, name, "kornia.augmentation", known) from None
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise ValueError(f"{label}: kornia.augmentation.{name} is not a transform class")
        if issubclass(cls, K.MixAugmentationBaseV2):
            raise ValueError(f"{label}: kornia's mixing transforms do not report what they mix "
                             "(augkd's MixRecord); use augkd's mixup or cutmix")
        if issubclass(cls, K.AugmentationBase3D):
            raise ValueError(f"{label}: a 3D (volume) transform; augkd images are 2D")
        return cls

    @classmethod
    def from_spec(cls, spec: ExternalSpec, *, per_batch: bool | None) -> KorniaAugmentation:
        """Build the pipeline; ``per_batch`` True/False sets/clears ``same_on_batch`` on all.

        Raises:
            ValueError: per-batch mode and a transform without ``same_on_batch``.
        """
        if per_batch is None:
            return cls(spec)
        stages = []
        for stage in spec.stages:
            kwargs = {k: v for k, v in stage.kwargs.items() if k != "same_on_batch"}
            if per_batch:
                K = import_library(spec.label(stage), "kornia.augmentation")
                target = cls._transform_class(K, spec.label(stage), stage.name)
                if "same_on_batch" not in inspect.signature(target).parameters:
                    raise ValueError(
                        f"{spec}: per-batch mode needs same_on_batch on every kornia transform, "
                        f"and {stage.name} has none: kornia draws its parameters per image"
                    )
                kwargs["same_on_batch"] = True
            stages.append(Stage(stage.name, kwargs))
        return cls(ExternalSpec(spec.prefix, tuple(stages)))

    def sample(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None
    ) -> KorniaParams:
        """Draw the seed of kornia's draws for this batch, int64 ``[]`` on ``device``."""
        return KorniaParams(torch.randint(0, SEED_HIGH, (), device=device, generator=generator))

    def apply(self, images: Tensor, params: KorniaParams) -> AugmentOutput:
        """Run the pipeline on float ``[0, 1]`` images under the seed; uint8 ``[B, C, H, W]``."""
        device = images.device
        with (self._naming_the_spec(), seeded_global_rng(int(params.seed), device),
              torch.autocast(device.type, enabled=False)):
            out = self.module(images.float().div_(255.0))
        if out.shape != images.shape:
            raise ValueError(f"{self.spec}: kornia returned shape {tuple(out.shape)} for images "
                             f"{tuple(images.shape)}; augkd DAs keep the shape")
        out = out.mul_(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
        return AugmentOutput(images=like_input_format(out, images))


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global CPU stream (and ``device``'s, on CUDA) with ``seed`` inside, and
    restore both as they were on exit, so library code that draws globally repeats and the
    caller's streams are untouched.

    Raises:
        ValueError: a device other than CPU and CUDA (no tested way to fork its stream).
    """
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"kornia specs run on cpu or cuda images, not {device.type}")
    index = None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
    with torch.random.fork_rng(devices=[] if index is None else [index]):
        torch.random.default_generator.manual_seed(seed)
        if index is not None:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield
