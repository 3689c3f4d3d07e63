"""A classifier trained on many classes used on a dataset of a subset of them, matched by name.

An ImageNet-1K teacher distilled on ImageNet-100 (or on any image folder whose class folders are
wnids) must give logits over the dataset's classes only, in the dataset's label order. The match
is by class name, never by position: :func:`class_subset_index` builds the index from both class
lists and :class:`ClassSubset` selects those logits, recording the mapping.

>>> index = class_subset_index(["cat", "dog", "fox"], ["fox", "cat"])
>>> index.tolist()
[2, 0]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from augkd.models.base import KDModel, ModelOutput

_MAX_LISTED = 8


def class_subset_index(model_classes: Sequence[str], dataset_classes: Sequence[str]) -> Tensor:
    """Where each of the dataset's classes is among the model's classes.

    Args:
        model_classes: the names of the model's logits, ``model_classes[j]`` naming logit ``j``
            (for ImageNet-1K models :data:`augkd.models.imagenet_classes.IMAGENET1K_WNIDS`).
        dataset_classes: the dataset's class names, ``dataset_classes[k]`` naming label ``k``.

    Returns:
        int64 ``[len(dataset_classes)]``: ``index[k]`` is the model logit of label ``k``.

    Raises:
        ValueError: a list is empty or names a class twice, or a dataset class is not among the
            model's; the message names the classes and shows what the model's names look like.
    """
    for what, names in (("model", model_classes), ("dataset", dataset_classes)):
        if len(names) == 0:
            raise ValueError(f"the {what} has no class names; a class subset needs both lists")
        seen: set[str] = set()
        twice = [n for n in names if n in seen or seen.add(n)]
        if twice:
            raise ValueError(f"the {what}'s class names are not unique: {twice[:_MAX_LISTED]} "
                             "appear twice; names must identify classes")
    position = {name: j for j, name in enumerate(model_classes)}
    missing = [name for name in dataset_classes if name not in position]
    if missing:
        shown = ", ".join(map(repr, missing[:_MAX_LISTED]))
        more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
        example = ", ".join(map(repr, list(model_classes)[:3]))
        raise ValueError(
            f"{len(missing)} of the dataset's {len(dataset_classes)} classes are not among the "
            f"model's {len(model_classes)} classes: {shown}{more}; the model's classes are "
            f"named like {example}, ... (ImageNet-1K models: wnids such as 'n01440764', the "
            "names of ImageNet's class folders)")
    return torch.tensor([position[name] for name in dataset_classes], dtype=torch.int64)


class ClassSubset(KDModel):
    """A model whose logits are restricted to a dataset's classes (picked by name).

    Its stages and pooled feature are the wrapped model's; only the logits change:
    ``logits[:, k] = model_logits[:, index[k]]``. The index is a buffer, so it is saved with
    the weights (``class_index``) and a reloaded model checks it is the same mapping.

    Args:
        model: the full classifier (e.g. 1000 ImageNet classes).
        model_classes: the names of its logits.
        dataset_classes: the dataset's class names, in label order.

    Attributes:
        mapping: ``{dataset class: model logit}``, the record of the match.
    """

    def __init__(self, model: KDModel, model_classes: Sequence[str],
                 dataset_classes: Sequence[str]) -> None:
        index = class_subset_index(model_classes, dataset_classes)
        if len(model_classes) != model.num_classes:
            raise ValueError(f"{len(model_classes)} class names for a model of "
                             f"{model.num_classes} logits; one name per logit is needed")
        super().__init__(model.stage_channels, model.feature_dim, len(dataset_classes),
                         pooled_is_last_stage=False)
        self.model = model
        self.register_buffer("class_index", index)
        self.mapping = dict(zip(dataset_classes, index.tolist(), strict=True))

    def forward(self, x: Tensor, features: bool = False) -> Tensor | ModelOutput:
        """The wrapped model's forward with the logits of the dataset's classes only."""
        out = self.model(x, features=features)
        if not features:
            return out.index_select(1, self.class_index)
        return out._replace(logits=out.logits.index_select(1, self.class_index))
