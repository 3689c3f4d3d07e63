"""Training: one loop for teachers and students, run folders, checkpoints, the CLI's engine."""

from augkd.training.api import RunResult, load_student, load_teacher, search_agb_lambda, train
from augkd.training.config import TrainConfig, default_lr
from augkd.training.run import RunDir
from augkd.training.trainer import NonFiniteLossError, Split, Trainer

__all__ = [
    "NonFiniteLossError", "RunDir", "RunResult", "Split", "TrainConfig", "Trainer",
    "default_lr", "load_student", "load_teacher", "search_agb_lambda", "train",
]
