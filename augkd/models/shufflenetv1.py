"""ShuffleNet V1 for small images, as the CIFAR KD framework defines it (``ShuffleV1``).

ShuffleNet (Zhang et al. 2018) with g = 3 groups: a 1x1 stem conv-BN-ReLU to 24 channels
(``conv1``, ``bn1``; stride 1, no max-pool), three stages ``layer1..3`` of (4, 8, 4) bottleneck
units with 240, 480, 960 output channels, global average pooling and ``linear``.

A unit: grouped 1x1 conv (BN, ReLU) to a quarter of its output width, channel shuffle, 3x3
depthwise conv (BN, ReLU), grouped 1x1 conv (BN), then ReLU of the sum with the input; the first
unit of a stage has stride 2 and concatenates a 3x3 average-pooled (stride 2, pad 1) copy of its
input, so its branch outputs ``out - in`` channels. As in the framework, the first 1x1 conv of the
very first unit (24 input channels) is not grouped, and the depthwise conv is followed by a ReLU
(the paper has none there).

Parameter names match the framework: ``conv1, bn1, layer1.0.conv1, layer1.0.bn1, ...,
layer1.0.conv3, layer1.0.bn3, ..., linear``.

Stages (all post-ReLU): stem, ``layer1``, ``layer2``, ``layer3`` (32, 16, 8, 4 px at 32x32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augkd.models.base import KDModel
from augkd.models.registry import register_model

STEM_CHANNELS = 24


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` groups: ``[B, C, H, W] -> [B, C, H, W]``.

    Channel ``g * (C // groups) + j`` moves to position ``j * groups + g``.
    """
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleUnit(nn.Module):
    """One ShuffleNet V1 bottleneck unit (the framework's ``Bottleneck``)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, groups: int) -> None:
        super().__init__()
        self.stride = stride
        mid_planes = out_planes // 4
        self.first_groups = 1 if in_planes == STEM_CHANNELS else groups
        self.conv1 = nn.Conv2d(in_planes, mid_planes, 1, groups=self.first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_planes)
        self.conv2 = nn.Conv2d(
            mid_planes, mid_planes, 3, stride=stride, padding=1, groups=mid_planes, bias=False
        )
        self.bn2 = nn.BatchNorm2d(mid_planes)
        self.conv3 = nn.Conv2d(mid_planes, out_planes, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU()  # the forward's ReLUs: a module, so quant.quantize_model can swap it

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = channel_shuffle(out, self.first_groups)
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.stride == 2:
            shortcut = F.avg_pool2d(x, 3, stride=2, padding=1)
            return self.relu(torch.cat([out, shortcut], dim=1))
        return self.relu(out + x)


class ShuffleNetV1(KDModel):
    """ShuffleNet V1 with a 1x1 stem.

    Args:
        out_planes: output channels of the three stages.
        num_blocks: units per stage.
        groups: groups of the 1x1 convs.
        num_classes: number of logits.
        in_channels: channels of the input images.
    """

    def __init__(
        self,
        out_planes: tuple[int, int, int],
        num_blocks: tuple[int, int, int],
        groups: int,
        num_classes: int,
        in_channels: int = 3,
    ) -> None:
        super().__init__(
            stage_channels=(STEM_CHANNELS, *out_planes),
            feature_dim=out_planes[-1],
            num_classes=num_classes,
        )
        self.conv1 = nn.Conv2d(in_channels, STEM_CHANNELS, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        in_planes = STEM_CHANNELS
        layers = []
        for planes, blocks in zip(out_planes, num_blocks, strict=True):
            units = [ShuffleUnit(in_planes, planes - in_planes, 2, groups)]
            units += [ShuffleUnit(planes, planes, 1, groups) for _ in range(blocks - 1)]
            layers.append(nn.Sequential(*units))
            in_planes = planes
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(out_planes[-1], num_classes)
        self.relu = nn.ReLU()  # the forward's ReLUs: a module, so quant.quantize_model can swap it

    def stage_maps(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        s1 = self.layer1(stem)
        s2 = self.layer2(s1)
        s3 = self.layer3(s2)
        return stem, s1, s2, s3

    def classify(self, pooled: Tensor) -> Tensor:
        return self.linear(pooled)


@register_model("ShuffleV1")
def shufflev1(num_classes: int, in_channels: int) -> ShuffleNetV1:
    """ShuffleNet V1, g = 3, stages of (4, 8, 4) units with 240, 480, 960 channels."""
    return ShuffleNetV1((240, 480, 960), (4, 8, 4), 3, num_classes, in_channels)
