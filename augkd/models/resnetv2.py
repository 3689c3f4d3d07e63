"""ResNet50 for 32x32 images, as the CIFAR KD framework defines it (its ``resnetv2``).

The ImageNet bottleneck ResNet-50 (He et al. 2016) with a CIFAR stem: one 3x3 conv of stride 1
with 64 channels and no max-pool, then four stages of (3, 4, 6, 3) bottleneck blocks
(1x1 -> 3x3 -> 1x1, expansion 4; strides 1, 2, 2, 2; stride on the 3x3 conv), global average
pooling and a linear classifier named ``linear``. Shortcuts that change width or resolution are a
1x1 conv + BN named ``shortcut``; identity shortcuts are an empty ``shortcut`` Sequential (no
parameters), as in the framework.

Stages (all post-ReLU): ``layer1``, ``layer2``, ``layer3``, ``layer4`` (32, 16, 8, 4 px at 32x32).
"""

from __future__ import annotations

from torch import Tensor, nn

from augkd.models.base import KDModel, init_conv_fan_out
from augkd.models.registry import register_model

EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand to ``4 * planes``; ReLU after the residual sum."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = EXPANSION * planes
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU()  # the forward's ReLUs: a module, so quant.quantize_model can swap it
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class BottleneckResNet(KDModel):
    """Bottleneck ResNet with a CIFAR stem; ``num_blocks`` per stage, widths 64-128-256-512 (x4).

    Args:
        num_blocks: blocks in each of the four stages, (3, 4, 6, 3) for ResNet50.
        num_classes: number of logits.
        in_channels: channels of the input images.
    """

    def __init__(
        self, num_blocks: tuple[int, int, int, int], num_classes: int, in_channels: int = 3
    ) -> None:
        widths = (64, 128, 256, 512)
        stage_channels = tuple(EXPANSION * w for w in widths)
        super().__init__(stage_channels, feature_dim=stage_channels[-1], num_classes=num_classes)
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes = 64
        layers = []
        for planes, blocks, stride in zip(widths, num_blocks, (1, 2, 2, 2), strict=True):
            strides = [stride] + [1] * (blocks - 1)
            stage = []
            for s in strides:
                stage.append(Bottleneck(in_planes, planes, s))
                in_planes = EXPANSION * planes
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.linear = nn.Linear(stage_channels[-1], num_classes)
        self.relu = nn.ReLU()  # the forward's ReLUs: a module, so quant.quantize_model can swap it
        init_conv_fan_out(self)

    def stage_maps(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = self.relu(self.bn1(self.conv1(x)))
        s1 = self.layer1(out)
        s2 = self.layer2(s1)
        s3 = self.layer3(s2)
        s4 = self.layer4(s3)
        return s1, s2, s3, s4

    def classify(self, pooled: Tensor) -> Tensor:
        return self.linear(pooled)


@register_model("ResNet50")
def resnet50(num_classes: int, in_channels: int) -> BottleneckResNet:
    """ResNet50 (CIFAR stem): bottleneck blocks (3, 4, 6, 3), 2048-d pooled feature."""
    return BottleneckResNet((3, 4, 6, 3), num_classes, in_channels)
