"""Distillation loss terms: ``task`` (cross-entropy) and ``distill`` (temperature-scaled KL)."""

from augkd.distill.losses import kd_loss, kd_terms, task_loss

__all__ = ["kd_loss", "kd_terms", "task_loss"]
