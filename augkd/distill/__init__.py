"""Distillation methods behind one contract (see :mod:`augkd.distill.base`).

``create_distiller("fitnet(hint_layer=2)", setup)`` builds a method; ``list_distillers()``
names them: kd, fitnet, at, sp, cc, vid, rkd, pkt, ft, nst, crd, dkd, mlkd and gt
(the labels as soft targets). Their pure loss
functions are in :mod:`augkd.distill.functional`.
"""

# registration order = the protocol's order of the methods
from augkd.distill import kd, fitnet, at, sp, cc, vid, rkd, pkt, ft, nst, crd, dkd, mlkd, gt  # noqa: F401, I001, E501
from augkd.distill.base import (
    DISTILLERS,
    VIEWS,
    Distiller,
    DistillSetup,
    FeatureShapes,
    Step,
    create_distiller,
    framework_features,
    list_distillers,
    method_options,
    register_distiller,
    resolve_method,
)
from augkd.distill.losses import kd_loss, task_loss

DEFAULT_DISTILLER = "kd"

__all__ = [
    "DEFAULT_DISTILLER",
    "DISTILLERS",
    "VIEWS",
    "DistillSetup",
    "Distiller",
    "FeatureShapes",
    "Step",
    "create_distiller",
    "framework_features",
    "kd_loss",
    "list_distillers",
    "method_options",
    "register_distiller",
    "resolve_method",
    "task_loss",
]
