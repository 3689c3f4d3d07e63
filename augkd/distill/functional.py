"""The methods' pure loss functions, tensors in and a 0-d float32 tensor out.

The parameter-free methods are complete here (``at_loss``, ``sp_loss``, ``pkt_loss``,
``rkd_loss``, ``nst_loss``, ``kd_loss``, ``dkd_loss``); the others' functions take the outputs
of their trained modules (``hint_loss`` the regressed map, ``cc_loss`` the embeddings,
``vid_nll`` the regressed mean and the log-scale, ``factor_loss`` the factors, ``nce_loss``
CRD's scores). Each equals the common CIFAR framework's definition on the same inputs.
"""

from augkd.distill.at import at_loss, attention_map
from augkd.distill.cc import cc_loss
from augkd.distill.crd import nce_loss
from augkd.distill.dkd import dkd_loss, dkd_terms
from augkd.distill.fitnet import hint_loss
from augkd.distill.ft import factor_loss
from augkd.distill.losses import kd_loss, task_loss
from augkd.distill.nst import nst_loss
from augkd.distill.pkt import pkt_loss
from augkd.distill.rkd import pairwise_distances, rkd_loss, rkd_terms
from augkd.distill.sp import similarity_matrix, sp_loss
from augkd.distill.vid import vid_nll

__all__ = [
    "at_loss", "attention_map", "cc_loss", "dkd_loss", "dkd_terms", "factor_loss", "hint_loss",
    "kd_loss", "nce_loss", "nst_loss", "pairwise_distances", "pkt_loss", "rkd_loss", "rkd_terms",
    "similarity_matrix", "sp_loss", "task_loss", "vid_nll",
]
