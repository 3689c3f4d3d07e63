"""``python -m augkd.tune``: search a student's distill-loss weight with Optuna.

Examples::

    python -m augkd.tune --teacher runs/teacher-resnet20-... --model resnet8 --distill pkt \\
        --dataset imagefolder --root cifar10.tar.xz --resize 16 --train-subset 5000 \\
        --epochs 1 --trials 50 --sampler tpe --out runs/tune-pkt
    python -m augkd.tune ... --pruner hyperband --epochs 5      # up to 5 epochs per trial
    python -m augkd.tune ... --sampler anneal --final-epochs 240  # then train the best beta
    python -m augkd.tune ... --workers 2                          # two processes, one study
    python -m augkd.tune ... --storage sqlite:////nfs/studies/pkt.db # one command per machine
    python -m augkd.tune --config tune.yaml --out runs/tune-kd    # TrainConfig keys + tune:

Rerunning a command continues its study (the storage keeps the finished trials).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from augkd.cli import add_trust_flag, apply_trust_flag, run_cli, worker_log
from augkd.train import FLAGS, add_config_flags, config_from_args
from augkd.training.config import flatten_blocks, read_yaml_mapping
from augkd.tune.search import PRUNERS, SAMPLERS, TuneConfig, run_worker, tune

# the manual balancer at (w_task, beta) is what a trial is: these student flags do not apply
_NOT_FOR_TRIALS = ("balancer", "agb_lambda", "agb_search_epochs", "w_task", "w_distill")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m augkd.tune",
        description="Search the distill-loss weight beta (CE weight 1) of a KD student with "
        "Optuna, scored on the held-out 10%% of the training set; --epochs is per trial.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:" + __doc__.split("::")[1].replace("`", ""),
    )
    parser.add_argument("--config", help="a YAML file of TrainConfig fields and a 'tune:' "
                        "mapping of the search settings below (flags override it)")
    add_config_flags(parser, skip=_NOT_FOR_TRIALS)
    search = parser.add_argument_group("search")
    search.add_argument("--trials", type=int, help="finished trials of the study (default 20)")
    search.add_argument("--sampler", choices=SAMPLERS, help="tpe (default) | random | anneal")
    search.add_argument("--pruner", choices=PRUNERS,
                        help="none (default) | hyperband | halving, on the per-epoch held-out "
                        "top-1")
    search.add_argument("--beta-low", type=float, help="lower end of beta (default 0.02)")
    search.add_argument("--beta-high", type=float, help="upper end of beta (default 30000)")
    search.add_argument("--tune-w-task", dest="tune_w_task", type=float,
                        help="the CE weight of every trial (default 1)")
    search.add_argument("--storage", help="Optuna storage URL (default sqlite:///OUT/study.db)")
    search.add_argument("--study-name", help="the study's name in the storage (augkd-tune)")
    search.add_argument("--sampler-seed", type=int,
                        help="the sampler's seed (default: --seed; worker k adds k)")
    search.add_argument("--workers", type=int, help="processes on this study (default 1)")
    search.add_argument("--heartbeat", type=int, dest="heartbeat_s",
                        help="seconds between a trial's heartbeats; a silent trial is retried "
                        "after twice that (default 30)")
    search.add_argument("--max-epochs", type=int,
                        help="a compute budget: start no trial once the finished ones spent N "
                        "epochs (--trials still caps the count)")
    search.add_argument("--final-epochs", type=int,
                        help="train the best beta for N epochs on the full training set, "
                        "scored on the test set (default 0: no final run)")
    parser.add_argument("--out", required=True, help="the tuning folder (study, trials, table)")
    parser.add_argument("--worker-id", type=int, default=None, help=argparse.SUPPRESS)
    add_trust_flag(parser)
    return parser


_TUNE_FLAGS = {"trials": "trials", "sampler": "sampler", "pruner": "pruner",
               "beta_low": "beta_low", "beta_high": "beta_high", "tune_w_task": "w_task",
               "storage": "storage", "study_name": "study_name", "sampler_seed": "seed",
               "workers": "workers", "heartbeat_s": "heartbeat_s",
               "final_epochs": "final_epochs", "max_epochs": "max_epochs"}


def tune_config_from_args(args: argparse.Namespace) -> TuneConfig:
    """The search settings: defaults, then the YAML file's ``tune:`` mapping, then the flags."""
    values = dict(read_yaml_mapping(args.config).get("tune") or {}) if args.config else {}
    known = {f.name for f in dataclasses.fields(TuneConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown tune setting(s) {', '.join(map(repr, unknown))} in "
                         f"{args.config}; known: {', '.join(sorted(known))}")
    for flag, name in _TUNE_FLAGS.items():
        if getattr(args, flag) is not None:
            values[name] = getattr(args, flag)
    return TuneConfig(**values)


def student_config(args: argparse.Namespace):
    """The trials' student config: defaults, the YAML file less its ``tune:``, the flags."""
    values = flatten_blocks({k: v for k, v in read_yaml_mapping(args.config).items()
                             if k != "tune"}) if args.config else {}
    for key in _NOT_FOR_TRIALS:
        if key in values:
            raise ValueError(f"{args.config}: {key!r} does not apply to tuning trials (each "
                             "trial is the manual balancer at CE weight w_task and distill "
                             "weight beta; set w_task under tune:)")
    return config_from_args(argparse.Namespace(**{**vars(args), "role": "student"}), values)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args, argv), rerun="the finished trials are kept in the study: "
                   "rerun the same command to continue (a trial cut short is retried)",
                   flags=FLAGS)


def _run(args: argparse.Namespace, argv: list[str]) -> None:
    apply_trust_flag(args)
    student = student_config(args)
    tune_cfg = tune_config_from_args(args)
    if args.worker_id is not None:  # one of --workers N
        from pathlib import Path

        from augkd.training.api import load_data, resolve_normalization

        data = load_data(student)
        run_worker(resolve_normalization(student, data), tune_cfg, Path(args.out), data=data,
                   worker=args.worker_id,
                   log=worker_log(args.worker_id))
        return
    result = tune(student, tune_cfg, args.out, worker_argv=list(argv))
    print(f"trials: {result.out / 'trials.csv'}; summary: {result.out / 'tune.json'}")
    if result.final is not None:
        print(f"final run (w_distill {result.best_w_distill:.4g}, {tune_cfg.final_epochs} "
              f"epochs): test top-1 {result.final['test_top1']:.2f}% -> "
              f"{result.out / result.final['folder']}")


if __name__ == "__main__":
    sys.exit(main())
