"""VGG with BatchNorm for small images, as the CIFAR KD framework defines it (``vgg*_bn``).

Five conv blocks ``block0..block4`` of 3x3 conv (with bias) + BN + ReLU layers, the last ReLU of
each block left to the forward; 2x2 max-pools between blocks 0-1, 1-2 and 2-3 (a fourth, between
blocks 3-4, only for inputs of 64 px and up), global average pooling, and a single linear layer
``classifier`` (512 -> classes): the fully connected layers of ImageNet VGG are removed.

Widths per block:

* vgg8: 64 | 128 | 256 | 512 | 512
* vgg11: 64 | 128 | 256 256 | 512 512 | 512 512
* vgg13: 64 64 | 128 128 | 256 256 | 512 512 | 512 512
* vgg16: 64 64 | 128 128 | 256 256 256 | 512 512 512 | 512 512 512
* vgg19: 64 64 | 128 128 | 256 x4 | 512 x4 | 512 x4

Parameter names match the framework: ``block{b}.{i}`` indexes the Sequential (conv at 3j, BN at
3j + 1), e.g. ``block0.0.weight``, ``block0.1.running_mean``, ``classifier.weight``.

Small inputs: the max-pools use ``ceil_mode=True``, which is identical to the framework's pools
on even sizes (32 -> 16 -> 8 -> 4) and keeps odd sizes from shrinking to zero (8x8 input gives
8 -> 4 -> 2 -> 1). The framework applies the pool before block4 for exactly 64 px input (its
Tiny-ImageNet setting); here it is applied for every input of 64 px or more.

Stages (all post-ReLU): ``block0`` (the stem), ``block1``, ``block2``, ``block4`` (the last map
at each of the four resolutions at 32x32 input: 32, 16, 8, 4 px).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from augkd.models.base import KDModel, init_conv_fan_out
from augkd.models.registry import register_model

CONFIGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": (
        (64, 64),
        (128, 128),
        (256, 256, 256, 256),
        (512, 512, 512, 512),
        (512, 512, 512, 512),
    ),
}

# The framework pools before block4 only when the input is 64 px (and not 32 px) high.
_POOL3_MIN_SIZE = 64


def _conv_block(widths: tuple[int, ...], in_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        in_channels = width
    return nn.Sequential(*layers[:-1])  # the block's last ReLU is applied in the forward


class VGG(KDModel):
    """VGG-BN with five conv blocks and a linear classifier.

    Args:
        config: widths of the convs of each of the five blocks.
        num_classes: number of logits.
        in_channels: channels of the input images.
    """

    def __init__(
        self, config: tuple[tuple[int, ...], ...], num_classes: int, in_channels: int = 3
    ) -> None:
        if len(config) != 5:
            raise ValueError(f"VGG needs 5 conv blocks, got {len(config)}")
        ends = tuple(block[-1] for block in config)
        super().__init__(
            stage_channels=(ends[0], ends[1], ends[2], ends[4]),
            feature_dim=ends[4],
            num_classes=num_classes,
        )
        self.block0 = _conv_block(config[0], in_channels)
        self.block1 = _conv_block(config[1], ends[0])
        self.block2 = _conv_block(config[2], ends[1])
        self.block3 = _conv_block(config[3], ends[2])
        self.block4 = _conv_block(config[4], ends[3])
        self.classifier = nn.Linear(ends[4], num_classes)
        self.relu = nn.ReLU()  # the forward's ReLUs: a module, so quant.quantize_model can swap it
        init_conv_fan_out(self)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    @staticmethod
    def _pool(x: Tensor) -> Tensor:
        return F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)

    def stage_maps(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        pool3 = x.shape[-2] >= _POOL3_MIN_SIZE
        s0 = self.relu(self.block0(x))
        s1 = self.relu(self.block1(self._pool(s0)))
        s2 = self.relu(self.block2(self._pool(s1)))
        out = self.relu(self.block3(self._pool(s2)))
        if pool3:
            out = self._pool(out)
        s4 = self.relu(self.block4(out))
        return s0, s1, s2, s4

    def classify(self, pooled: Tensor) -> Tensor:
        return self.classifier(pooled)


def _register(name: str) -> None:
    config = CONFIGS[name]

    def factory(num_classes: int, in_channels: int) -> VGG:
        return VGG(config, num_classes, in_channels)

    factory.__name__ = name
    factory.__doc__ = f"{name}: VGG with BatchNorm, block widths {config}."
    register_model(name)(factory)


for _name in CONFIGS:
    _register(_name)
