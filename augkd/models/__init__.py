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

torchvision and timm models take the same place under specs, ``create_model("tv:resnet18", 10)``,
``"timm:resnet18(weights=true, head=new)"`` (:mod:`augkd.models.external`); an ImageNet-1K
model's logits are restricted to a dataset of a subset of its classes by
:class:`~augkd.models.class_subset.ClassSubset` (``head=subset``).
"""

import importlib

from augkd.models.base import KDModel, ModelOutput
from augkd.models.checkpoint import (
    ForeignCheckpoint,
    load_foreign,
    load_kd_checkpoint,
    read_checkpoint_file,
)
from augkd.models.class_subset import ClassSubset, class_subset_index
from augkd.models.external import build_external, parse_model_spec
from augkd.models.imagenet_classes import IMAGENET1K_WNIDS
from augkd.models.registry import MODELS, create_model, list_models, register_model

# Importing a family registers its architectures; this order is the order of list_models().
for _family in ("resnet", "wrn", "vgg", "resnetv2", "mobilenetv2", "shufflenetv1", "shufflenetv2"):
    importlib.import_module(f"augkd.models.{_family}")

__all__ = [
    "IMAGENET1K_WNIDS",
    "MODELS",
    "ClassSubset",
    "ForeignCheckpoint",
    "KDModel",
    "ModelOutput",
    "build_external",
    "class_subset_index",
    "create_model",
    "list_models",
    "load_foreign",
    "load_kd_checkpoint",
    "parse_model_spec",
    "read_checkpoint_file",
    "register_model",
]
