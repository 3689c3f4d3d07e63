"""Loss balancers: turn the ``task`` and ``distill`` losses of one forward pass into ``.grad``.

``create_balancer("agb", lam=0.5)`` (the default, Automatic Gradient Blending), ``"manual"``,
``"uncertainty"`` (Kendall et al. 2018) and ``"gradnorm"`` (Chen et al. 2018); see
:class:`augkd.balance.base.Balancer` for the contract.
"""

from augkd.balance.agb import AGB, AGBWeights, agb_weights, gradient_products
from augkd.balance.base import (
    BALANCERS,
    LOSS_NAMES,
    Balancer,
    create_balancer,
    register_balancer,
)
from augkd.balance.gradnorm import GradNorm
from augkd.balance.manual import Manual
from augkd.balance.uncertainty import Uncertainty

DEFAULT_BALANCER = "agb"

__all__ = [
    "AGB",
    "AGBWeights",
    "BALANCERS",
    "DEFAULT_BALANCER",
    "LOSS_NAMES",
    "Balancer",
    "GradNorm",
    "Manual",
    "Uncertainty",
    "agb_weights",
    "create_balancer",
    "gradient_products",
    "register_balancer",
]
