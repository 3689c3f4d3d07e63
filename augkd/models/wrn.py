"""Wide ResNets (Zagoruyko & Komodakis 2016) as the CIFAR KD framework defines them.

``wrn_{depth}_{k}``: depth ``6n + 4``; a 3x3 stem conv with 16 channels (no BN or ReLU of its
own), three groups ``block1..3`` of ``n`` pre-activation blocks (BN-ReLU-conv3x3-BN-ReLU-conv3x3)
with 16k, 32k, 64k channels and strides 1, 2, 2, then a final BN-ReLU (``bn1``), global average
pooling and ``fc``. A block that changes width has a 1x1 ``convShortcut`` applied to its
pre-activated input; otherwise the shortcut is the raw input. No dropout (rate 0 in all the
framework's models).

Parameter names match the framework: ``conv1, block1.layer.0.bn1, block1.layer.0.conv1, ...,
block1.layer.0.convShortcut, ..., bn1, fc``.

Stages (all post-ReLU): ``relu(conv1)``, ``relu(block1)``, ``relu(block2)``, and
``relu(bn1(block3))`` (the map that is pooled). The pre-activation blocks hand on un-rectified
sums; the ReLU of the first three stages is applied only to the feature copy.
"""

from __future__ import annotations

from torch import Tensor, nn

from augkd.models.base import KDModel, init_conv_fan_out
from augkd.models.registry import register_model


class PreActBlock(nn.Module):
    """Pre-activation basic block (the framework's ``BasicBlock`` of ``wrn``)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.relu = nn.ReLU()  # the forward's ReLUs: a module, so quant.quantize_model can swap it
        self.equal_in_out = in_planes == out_planes
        self.convShortcut: nn.Conv2d | None = None
        if not self.equal_in_out:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        activated = self.relu(self.bn1(x))
        out = self.relu(self.bn2(self.conv1(activated)))
        out = self.conv2(out)
        # Equal widths keep the raw input as shortcut; a projection sees the activated input.
        shortcut = x if self.convShortcut is None else self.convShortcut(activated)
        return shortcut + out


class NetworkBlock(nn.Module):
    """A group of pre-activation blocks held as ``layer`` (the framework's key layout)."""

    def __init__(self, blocks: int, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        first = PreActBlock(in_planes, out_planes, stride)
        rest = (PreActBlock(out_planes, out_planes, 1) for _ in range(blocks - 1))
        self.layer = nn.Sequential(first, *rest)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(KDModel):
    """WRN-depth-k for small images.

    Args:
        depth: ``6n + 4`` (16, 40, ...).
        widen_factor: ``k``; group widths are 16k, 32k, 64k.
        num_classes: number of logits.
        in_channels: channels of the input images.
    """

    linear_stages = (True, True, True)

    def __init__(
        self, depth: int, widen_factor: int, num_classes: int, in_channels: int = 3
    ) -> None:
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n + 4, got {depth}")
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        super().__init__(stage_channels=widths, feature_dim=widths[3], num_classes=num_classes)
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        self.relu = nn.ReLU()  # the forward's ReLUs: a module, so quant.quantize_model can swap it
        init_conv_fan_out(self)
        nn.init.zeros_(self.fc.bias)

    def stage_maps(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        stem = self.conv1(x)
        s1 = self.block1(stem)
        s2 = self.block2(s1)
        s3 = self.relu(self.bn1(self.block3(s2)))
        return stem, s1, s2, s3

    def classify(self, pooled: Tensor) -> Tensor:
        return self.fc(pooled)


def _register(depth: int, k: int) -> None:
    name = f"wrn_{depth}_{k}"

    def factory(num_classes: int, in_channels: int) -> WideResNet:
        return WideResNet(depth, k, num_classes, in_channels)

    factory.__name__ = name
    factory.__doc__ = f"{name}: WideResNet, depth {depth}, widen factor {k}."
    register_model(name)(factory)


for _depth, _k in ((16, 1), (16, 2), (40, 1), (40, 2)):
    _register(_depth, _k)
