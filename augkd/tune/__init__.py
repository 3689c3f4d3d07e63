"""``augkd.tune``: search the distill-loss weight with Optuna, to compare with AGB's search.

Python API::

    from augkd.training import TrainConfig
    from augkd.tune import TuneConfig, tune

    student = TrainConfig(role="student", model="resnet8", teacher="runs/teacher-...",
                          distill="pkt", epochs=5)          # epochs per trial
    result = tune(student, TuneConfig(trials=20, sampler="tpe", pruner="hyperband"),
                  "runs/tune-pkt")
    result.best_w_distill, result.best_holdout_top1, result.search_epochs

See :mod:`augkd.tune.search` for what a trial is and what the folder holds, and
``python -m augkd.tune --help`` for the command line.
"""

from augkd.tune.anneal import AnnealingSampler, make_sampler
from augkd.tune.search import TuneConfig, TuneResult, run_worker, trial_config, tune

__all__ = ["AnnealingSampler", "TuneConfig", "TuneResult", "make_sampler", "run_worker",
           "trial_config", "tune"]
