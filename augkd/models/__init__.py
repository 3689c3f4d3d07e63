"""The model zoo: the CIFAR architectures of the knowledge-distillation literature.

Definitions, widths and parameter names follow the CIFAR KD framework of the CRD paper
(RepDistiller; mdistiller uses the same), so its checkpoints, mdistiller's and those of
torchdistill's CIFAR ResNets load with :func:`load_kd_checkpoint` (the file layouts are in
:mod:`augkd.models.layouts`). Every model maps ``[B, in_channels, H, W]`` images (any size
from 8x8 up) to ``[B, num_classes]`` logits, and ``model(x, features=True)`` returns a
:class:`ModelOutput` with four post-ReLU stages and the pooled feature (see
:mod:`augkd.models.base`).

>>> model = create_model("resnet20", num_classes=100)
>>> model.stage_channels, model.feature_dim
((16, 16, 32, 64), 64)
"""

import importlib

from augkd.models.base import KDModel, ModelOutput
from augkd.models.checkpoint import (
    ForeignCheckpoint,
    load_foreign,
    load_kd_checkpoint,
    read_checkpoint_file,
)
from augkd.models.registry import MODELS, create_model, list_models, register_model

# Importing a family registers its architectures; this order is the order of list_models().
for _family in ("resnet", "wrn", "vgg", "resnetv2", "mobilenetv2", "shufflenetv1", "shufflenetv2"):
    importlib.import_module(f"augkd.models.{_family}")

__all__ = [
    "MODELS",
    "ForeignCheckpoint",
    "KDModel",
    "ModelOutput",
    "create_model",
    "list_models",
    "load_foreign",
    "load_kd_checkpoint",
    "read_checkpoint_file",
    "register_model",
]
