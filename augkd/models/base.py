"""The contract every augkd classifier follows: logits by default, four named stages on request.

All architectures of the zoo return, from ``model(x, features=True)``, the same record:

* ``logits``: ``[B, num_classes]``;
* ``stages``: exactly four feature maps ``[B, C_i, H_i, W_i]``, early -> late. They are the last
  map at each of the network's four deepest resolutions; networks with only three resolutions
  (the CIFAR ResNets and WideResNets) use the stem as their first stage. ``stages[-1]`` is the map
  the classifier pools, so ``pooled == stages[-1].mean((2, 3))``.
* ``pooled``: ``[B, feature_dim]``, the globally averaged last stage fed to the classifier.

Every stage is taken **after** a ReLU (non-negative). Where the architecture passes a stage on
without rectifying it (the pre-activation WideResNet blocks, MobileNetV2's linear bottlenecks)
the ReLU is applied to the copy handed out as a feature, only when features are requested; the
network's own computation is unchanged.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ModelOutput(NamedTuple):
    """What ``model(x, features=True)`` returns.

    Attributes:
        logits: ``[B, num_classes]``, the classifier's output (same dtype as the forward).
        stages: four feature maps ``[B, C_i, H_i, W_i]`` early -> late, all post-ReLU;
            ``C_i == model.stage_channels[i]``.
        pooled: ``[B, model.feature_dim]``, the classifier's input: for the zoo, the spatial
            mean of ``stages[-1]``; for torchvision and timm models the input of their last
            linear layer (:mod:`augkd.models.external` says where the two differ).
    """

    logits: Tensor
    stages: tuple[Tensor, Tensor, Tensor, Tensor]
    pooled: Tensor


class KDModel(nn.Module):
    """Base class of the zoo: shared forward, feature record and size attributes.

    Subclasses build their layers under the parameter names of the reference CIFAR KD framework
    (so its checkpoints load) and implement :meth:`stage_maps` and :meth:`classify`.

    Attributes:
        stage_channels: channels ``C_i`` of the four stages.
        feature_dim: length ``D`` of the pooled feature fed to the classifier.
        num_classes: number of logits.
    """

    # Which of the four maps from stage_maps() still need a ReLU to become post-ReLU features.
    # The last stage is always the (already rectified) map the classifier pools.
    linear_stages: ClassVar[tuple[bool, bool, bool]] = (False, False, False)

    def __init__(
        self, stage_channels: tuple[int, int, int, int], feature_dim: int, num_classes: int,
        *, pooled_is_last_stage: bool = True,
    ) -> None:
        super().__init__()
        # models of other libraries (augkd.models.external) may feed their classifier another
        # vector (a transformer's class token, an MLP head's hidden layer)
        if pooled_is_last_stage and stage_channels[-1] != feature_dim:
            raise ValueError(
                f"the last stage ({stage_channels[-1]} channels) must be the pooled feature "
                f"({feature_dim})"
            )
        self.stage_channels = tuple(stage_channels)
        self.feature_dim = feature_dim
        self.num_classes = num_classes

    def stage_maps(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Run the convolutional trunk.

        Args:
            x: images ``[B, in_channels, H, W]``, any float dtype.

        Returns:
            The four stage maps, early -> late, as the network computes them (the first three
            possibly pre-ReLU, see ``linear_stages``); the last one is the map to pool.
        """
        raise NotImplementedError

    def classify(self, pooled: Tensor) -> Tensor:
        """Map the pooled feature ``[B, feature_dim]`` to logits ``[B, num_classes]``."""
        raise NotImplementedError

    def forward(self, x: Tensor, features: bool = False) -> Tensor | ModelOutput:
        """Classify a batch.

        Args:
            x: images ``[B, in_channels, H, W]`` (float; any size from 8x8 up).
            features: also return the stages and the pooled feature.

        Returns:
            logits ``[B, num_classes]``, or a :class:`ModelOutput` when ``features`` is true.
        """
        maps = self.stage_maps(x)
        pooled = torch.flatten(F.adaptive_avg_pool2d(maps[-1], 1), 1)
        logits = self.classify(pooled)
        if not features:
            return logits
        stages = tuple(
            F.relu(m) if needs_relu else m
            for m, needs_relu in zip(maps, (*self.linear_stages, False), strict=True)
        )
        return ModelOutput(logits=logits, stages=stages, pooled=pooled)


def init_conv_fan_out(module: nn.Module) -> None:
    """He-normal (fan-out) init of every conv, BatchNorm to (1, 0): the reference recipe.

    ``normal(0, sqrt(2 / (k*k*out_channels)))``, as the reference framework writes it for
    WRN, VGG and MobileNetV2, equals ``kaiming_normal_(mode='fan_out')`` for plain convs and
    for depthwise convs alike (fan-out counts ``out_channels * k * k`` in both), which its
    ResNets use. Conv biases start at zero.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
