"""ShuffleNet V2 (1x) for small images, as the CIFAR KD framework defines it (``ShuffleV2``).

ShuffleNet V2 (Ma et al. 2018) at width 1x: a 1x1 stem conv-BN-ReLU to 24 channels
(``conv1``, ``bn1``; stride 1, no max-pool), three stages ``layer1..3`` with 116, 232, 464
channels, each one stride-2 down-sampling unit followed by (3, 7, 3) basic units, then a 1x1
conv-BN-ReLU to 1024 channels (``conv2``, ``bn2``), global average pooling and ``linear``.

* Down-sampling unit (``layer{s}.0``): left branch 3x3 depthwise stride 2 (BN) -> 1x1 (BN, ReLU);
  right branch 1x1 (BN, ReLU) -> 3x3 depthwise stride 2 (BN) -> 1x1 (BN, ReLU); each branch gives
  half the output channels; concatenate (left first) and shuffle with 2 groups.
* Basic unit: split the channels in halves; the second half goes through 1x1 (BN, ReLU) ->
  3x3 depthwise (BN) -> 1x1 (BN, ReLU); concatenate (untouched half first) and shuffle.

Parameter names match the framework: ``conv1, bn1, layer1.0.conv1 ... layer1.0.bn5,
layer1.1.conv1 ... layer1.1.bn3, ..., conv2, bn2, linear``.

Stages (all post-ReLU): stem, ``layer1``, ``layer2`` and ``relu(bn2(conv2(layer3)))`` (the map
that is pooled; 32, 16, 8, 4 px at 32x32 input).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from augkd.models.base import KDModel
from augkd.models.registry import register_model
from augkd.models.shufflenetv1 import channel_shuffle

STEM_CHANNELS = 24


def _depthwise(channels: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, stride, padding=1, groups=channels, bias=False)


def _pointwise(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, bias=False)


class BasicUnit(nn.Module):
    """Channel split, one branch of 1x1 -> depthwise 3x3 -> 1x1, concat, shuffle; size kept."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.split = channels // 2
        half = channels - self.split
        self.conv1 = _pointwise(half, half)
        self.bn1 = nn.BatchNorm2d(half)
        self.conv2 = _depthwise(half, 1)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv3 = _pointwise(half, half)
        self.bn3 = nn.BatchNorm2d(half)
        self.relu = nn.ReLU()  # the forward's ReLUs: a module, so quant.quantize_model can swap it

    def forward(self, x: Tensor) -> Tensor:
        kept, branch = x[:, : self.split], x[:, self.split :]
        out = self.relu(self.bn1(self.conv1(branch)))
        out = self.bn2(self.conv2(out))
        out = self.relu(self.bn3(self.conv3(out)))
        return channel_shuffle(torch.cat([kept, out], dim=1), 2)


class DownUnit(nn.Module):
    """Two stride-2 branches of ``out // 2`` channels each, concat, shuffle: halves H and W."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = c_out // 2
        # left branch
        self.conv1 = _depthwise(c_in, 2)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv2 = _pointwise(c_in, mid)
        self.bn2 = nn.BatchNorm2d(mid)
        # right branch
        self.conv3 = _pointwise(c_in, mid)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = _depthwise(mid, 2)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = _pointwise(mid, mid)
        self.bn5 = nn.BatchNorm2d(mid)
        self.relu = nn.ReLU()  # the forward's ReLUs: a module, so quant.quantize_model can swap it

    def forward(self, x: Tensor) -> Tensor:
        left = self.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.relu(self.bn3(self.conv3(x)))
        right = self.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle(torch.cat([left, right], dim=1), 2)


class ShuffleNetV2(KDModel):
    """ShuffleNet V2 with a 1x1 stem.

    Args:
        out_channels: channels of the three stages and of the final 1x1 conv.
        num_blocks: basic units per stage (after its down-sampling unit).
        num_classes: number of logits.
        in_channels: channels of the input images.
    """

    def __init__(
        self,
        out_channels: tuple[int, int, int, int],
        num_blocks: tuple[int, int, int],
        num_classes: int,
        in_channels: int = 3,
    ) -> None:
        super().__init__(
            stage_channels=(STEM_CHANNELS, out_channels[0], out_channels[1], out_channels[3]),
            feature_dim=out_channels[3],
            num_classes=num_classes,
        )
        self.conv1 = _pointwise(in_channels, STEM_CHANNELS)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        c_in = STEM_CHANNELS
        layers = []
        for c_out, blocks in zip(out_channels[:3], num_blocks, strict=True):
            units = [DownUnit(c_in, c_out)] + [BasicUnit(c_out) for _ in range(blocks)]
            layers.append(nn.Sequential(*units))
            c_in = c_out
        self.layer1, self.layer2, self.layer3 = layers
        self.conv2 = _pointwise(out_channels[2], out_channels[3])
        self.bn2 = nn.BatchNorm2d(out_channels[3])
        self.linear = nn.Linear(out_channels[3], num_classes)
        self.relu = nn.ReLU()  # the forward's ReLUs: a module, so quant.quantize_model can swap it

    def stage_maps(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        s1 = self.layer1(stem)
        s2 = self.layer2(s1)
        last = self.relu(self.bn2(self.conv2(self.layer3(s2))))
        return stem, s1, s2, last

    def classify(self, pooled: Tensor) -> Tensor:
        return self.linear(pooled)


@register_model("ShuffleV2")
def shufflev2(num_classes: int, in_channels: int) -> ShuffleNetV2:
    """ShuffleNet V2 1x: stages of 116, 232, 464 channels, (3, 7, 3) basic units, 1024-d head."""
    return ShuffleNetV2((116, 232, 464, 1024), (3, 7, 3), num_classes, in_channels)
