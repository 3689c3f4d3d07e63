"""CIFAR ResNets (He et al. 2016, section 4.2) as the CIFAR KD framework defines them.

Depth ``6n + 2``: a 3x3 stem, then three stages of ``n`` basic blocks with
``widths[1:]`` channels (strides 1, 2, 2), global average pooling and ``fc``. A block whose input
and output differ in width or resolution has a projection shortcut ``downsample`` (1x1 conv + BN),
as in the framework (so ``resnet8x4``'s first block also projects 32 -> 64 channels).

Parameter names match the framework: ``conv1, bn1, layer1.0.conv1, ..., layer2.0.downsample.0,
..., fc``. The framework pools with a fixed 8x8 window, which is the global average at 32x32
input; global (adaptive) pooling keeps the network identical there and lets any size through.

Stages (all post-ReLU): stem (``relu(bn1(conv1(x)))``), ``layer1``, ``layer2``, ``layer3``.
"""

from __future__ import annotations

from torch import Tensor, nn

from augkd.models.base import KDModel, init_conv_fan_out
from augkd.models.registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut, ReLU after the sum: ``[B, c_in, H, W] -> [B, c_out,
    ceil(H/stride), ceil(W/stride)]``."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()  # the forward's ReLUs: a module, so quant.quantize_model can swap it
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class CifarResNet(KDModel):
    """A CIFAR ResNet of depth ``6n + 2`` with stage widths ``widths = (stem, s1, s2, s3)``.

    Args:
        depth: total depth, ``6n + 2`` (8, 14, 20, 32, 44, 56, 110).
        widths: channels of the stem and of the three stages.
        num_classes: number of logits.
        in_channels: channels of the input images.
    """

    def __init__(
        self,
        depth: int,
        widths: tuple[int, int, int, int],
        num_classes: int,
        in_channels: int = 3,
    ) -> None:
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        super().__init__(stage_channels=widths, feature_dim=widths[3], num_classes=num_classes)
        blocks_per_stage = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._make_layer(widths[0], widths[1], blocks_per_stage, stride=1)
        self.layer2 = self._make_layer(widths[1], widths[2], blocks_per_stage, stride=2)
        self.layer3 = self._make_layer(widths[2], widths[3], blocks_per_stage, stride=2)
        self.fc = nn.Linear(widths[3], num_classes)
        self.relu = nn.ReLU()  # the forward's ReLUs: a module, so quant.quantize_model can swap it
        init_conv_fan_out(self)

    @staticmethod
    def _make_layer(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_planes, planes, stride)]
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def stage_maps(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        s1 = self.layer1(stem)
        s2 = self.layer2(s1)
        s3 = self.layer3(s2)
        return stem, s1, s2, s3

    def classify(self, pooled: Tensor) -> Tensor:
        return self.fc(pooled)


_NARROW = (16, 16, 32, 64)
_WIDE = (32, 64, 128, 256)  # the "x4" variants


def _register(name: str, depth: int, widths: tuple[int, int, int, int]) -> None:
    def factory(num_classes: int, in_channels: int) -> CifarResNet:
        return CifarResNet(depth, widths, num_classes, in_channels)

    factory.__name__ = name
    factory.__doc__ = f"{name}: CIFAR ResNet, depth {depth}, widths {widths}."
    register_model(name)(factory)


for _depth in (8, 14, 20, 32, 44, 56, 110):
    _register(f"resnet{_depth}", _depth, _NARROW)
_register("resnet8x4", 8, _WIDE)
_register("resnet32x4", 32, _WIDE)
