"""MobileNetV2 at half width, the KD papers' "MobileNetV2" (the framework's ``mobile_half``).

MobileNetV2 (Sandler et al. 2018) with width multiplier 0.5 and expansion 6 as the CIFAR KD
framework builds it: a 3x3 stride-2 stem conv-BN-ReLU (``conv1``, 16 channels), seven groups of
inverted residual blocks held in ``blocks`` (expansion t, channels c, repeats n, first stride s):

====  ===  ===  ===
t     c    n    s
====  ===  ===  ===
1     8    1    1
6     12   2    1
6     16   3    2
6     32   4    2
6     48   3    1
6     80   3    2
6     160  1    1
====  ===  ===  ===

then a 1x1 conv-BN-ReLU to 1280 channels (``conv2``; not scaled by the width multiplier),
global average pooling and ``classifier.0`` (1280 -> classes). Every inverted residual keeps its
1x1 expansion conv, even at t = 1, as in the framework; the block is residual when it keeps
stride 1 and width.

Parameter names match the framework: ``conv1.0``, ``conv1.1``, ``blocks.{g}.{i}.conv.{0,1,3,4,
6,7}``, ``conv2.0``, ``conv2.1``, ``classifier.0``.

Stages (all post-ReLU): ``blocks[1]`` (16x16 at 32x32 input), ``blocks[2]`` (8x8),
``blocks[4]`` (4x4) and ``conv2`` (2x2, the pooled map). The block outputs are linear
bottlenecks; their ReLU is applied only to the feature copy.
"""

from __future__ import annotations

from torch import Tensor, nn

from augkd.models.base import KDModel, init_conv_fan_out
from augkd.models.registry import register_model

# (expansion t, channels c at width 1.0, repeats n, stride s) of the seven block groups.
SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
LAST_CHANNELS = 1280


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1x1 expand (BN, ReLU) -> 3x3 depthwise, strided (BN, ReLU) -> 1x1 project (BN, linear)."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.use_residual = stride == 1 and c_in == c_out
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(KDModel):
    """MobileNetV2 for small images.

    Args:
        width_mult: channel multiplier of the stem and the blocks (0.5 for ``MobileNetV2``).
        expansion: expansion t of every group but the first (6).
        num_classes: number of logits.
        in_channels: channels of the input images.
    """

    linear_stages = (True, True, True)

    def __init__(
        self, width_mult: float, expansion: int, num_classes: int, in_channels: int = 3
    ) -> None:
        widths = [int(c * width_mult) for _, c, _, _ in SETTINGS]
        last = int(LAST_CHANNELS * width_mult) if width_mult > 1.0 else LAST_CHANNELS
        super().__init__(
            stage_channels=(widths[1], widths[2], widths[4], last),
            feature_dim=last,
            num_classes=num_classes,
        )
        c_in = int(32 * width_mult)
        self.conv1 = _conv_bn_relu(in_channels, c_in, 3, 2)
        groups = []
        for (t, _, n, s), c_out in zip(SETTINGS, widths, strict=True):
            t = t if t == 1 else expansion
            group = []
            for i in range(n):
                group.append(InvertedResidual(c_in, c_out, s if i == 0 else 1, t))
                c_in = c_out
            groups.append(nn.Sequential(*group))
        self.blocks = nn.ModuleList(groups)
        self.conv2 = _conv_bn_relu(c_in, last, 1, 1)
        self.classifier = nn.Sequential(nn.Linear(last, num_classes))
        init_conv_fan_out(self)
        nn.init.normal_(self.classifier[0].weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier[0].bias)

    def stage_maps(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = self.conv1(x)
        maps = []
        for i, group in enumerate(self.blocks):
            out = group(out)
            if i in (1, 2, 4):
                maps.append(out)
        last = self.conv2(out)
        return maps[0], maps[1], maps[2], last

    def classify(self, pooled: Tensor) -> Tensor:
        return self.classifier(pooled)


@register_model("MobileNetV2")
def mobilenetv2_half(num_classes: int, in_channels: int) -> MobileNetV2:
    """MobileNetV2 with width 0.5 and expansion 6 (the framework's ``mobile_half``)."""
    return MobileNetV2(0.5, 6, num_classes, in_channels)
