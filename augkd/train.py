"""``python -m augkd.train``: train a teacher or distill a student from the command line.

Examples::

    python -m augkd.train teacher --model resnet8 --dataset digits --epochs 30
    python -m augkd.train teacher --model wrn_40_2 --dataset imagefolder \\
        --root PATH/cifar10-jpeg.tar.xz --epochs 60
    python -m augkd.train student --teacher runs/teacher-wrn_40_2-... --model wrn_16_2 \\
        --dataset imagefolder --root PATH/cifar10-jpeg.tar.xz --aug cutmix --epochs 240
    python -m augkd.train student ... --balancer agb --agb-lambda 0.5   # no lambda search
    python -m augkd.train student ... --distill crd            # any method, AGB-balanced
    python -m augkd.train student ... --distill 'fitnet(hint_layer=2)' --balancer manual
    python -m augkd.train teacher --model resnet20 --dataset imagefolder \\
        --root PATH/cifar10-jpeg.tar.xz --resize 16 --train-subset 5000
    python -m augkd.train student ... --quant w2a1 --temperature 15   # a DoReFa student
    python -m augkd.train --resume runs/student-wrn_16_2-...   # continue a killed run
    python -m augkd.train teacher --model resnet8 --epochs 30 --tensorboard
    WANDB_MODE=offline python -m augkd.train teacher --model resnet8 --epochs 30 --wandb
    tensorboard --logdir runs/                  # the per-epoch scalars of every run below

Every run writes one folder (see :mod:`augkd.training.run`). ``--tensorboard`` (a config's
``tensorboard: true``; needs ``pip install "augkd[tensorboard]"``) also writes each epoch's
metrics.jsonl record as TensorBoard scalars into ``RUN_DIR/tensorboard/``, step = epoch
(:mod:`augkd.training.tensorboard`). Given with ``--resume RUN_DIR`` it turns them on for a run
started without them; the finished epochs are replayed from metrics.jsonl first. ``--wandb``
(``wandb: true``; ``pip install "augkd[wandb]"``) logs the same records to Weights & Biases,
the same way (:mod:`augkd.training.wandb_log`; ``WANDB_MODE=offline`` keeps them in
``RUN_DIR/wandb/``). Every run prints one line per epoch and keeps them in ``RUN_DIR/train.log``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from augkd.cli import add_trust_flag, apply_trust_flag, run_cli
from augkd.training.api import DATA_SETTINGS, inherit_teacher_data, train
from augkd.training.config import (
    TrainConfig,
    apply_recipe,
    default_lr,
    flatten_blocks,
    read_yaml_mapping,
)
from augkd.training.distributed import current, init_from_env
from augkd.training.run import RunDir
from augkd.training.tensorboard import summary_writer_class
from augkd.training.wandb_log import wandb_module

# CLI flag -> (TrainConfig field type, help), for the flags that map one to one.
_FIELDS = {
    "model": (str, "architecture (augkd.models.list_models())"),
    "recipe": (str, "optimization preset: cifar (the defaults), tinyimagenet (the same, as the "
                    "DA-in-KD code), imagenet (SGD 0.1 x batch/256, wd 1e-4, 100 epochs, lr "
                    "x0.1 at 30/60/90, batch 256); flags override it"),
    "quant": (str, "DoReFa-quantize the model: wNaM bits (e.g. w2a1; N, M in 1..8 or 32)"),
    "dataset": (str, "digits (default) | cifar10 | cifar100 | tinyimagenet | imagenet | "
                     "imagefolder, options as a spec: 'imagefolder(size=64, train_subset=5000)'"),
    "root": (str, "dataset folder or archive"),
    "epochs": (int, "epochs (default 240); the lr decays at 62.5/75/87.5 %% of them"),
    "batch_size": (int, "batch size (default 64; the global batch under torchrun)"),
    "lr": (float, "initial lr (default 0.05; 0.01 for MobileNetV2 / ShuffleNets)"),
    "momentum": (float, "SGD momentum (default 0.9)"),
    "optimizer": (str, "sgd (default) | adamw, options as a spec: 'sgd(nesterov=true)', "
                       "'adamw(beta1=0.9, beta2=0.999, eps=1e-8)' (give AdamW an lr: --lr 1e-3)"),
    "schedule": (str, "lr schedule, stepped per epoch: multistep (default: x lr_decay_rate at "
                      "62.5/75/87.5 %% of the epochs) | cosine | constant, each with an "
                      "optional linear warm-up: 'cosine(warmup=5, min_lr=0.0)'"),
    "weight_decay": (float, "weight decay (default 5e-4)"),
    "seed": (int, "seed of every random stream (default 0)"),
    "device": (str, "auto | cpu | cuda | cuda:N (default auto)"),
    "teacher": (str, "student runs: the teacher's run folder or checkpoint"),
    "teacher_model": (str, "architecture of a foreign (RepDistiller, mdistiller, torchdistill) "
                           "teacher checkpoint; default: inferred from its weights"),
    "aug": (str, "student runs: the DA under study, an augkd.augment spec (e.g. cutmix)"),
    "distill": (str, "student runs: the distillation method, e.g. kd (default), crd, "
                     "'fitnet(hint_layer=2)' (augkd.distill.list_distillers())"),
    "temperature": (float, "KD temperature (default 4)"),
    "balancer": (str, "agb (default) | manual | uncertainty | gradnorm, options as a spec: "
                      "'gradnorm(alpha=1.0, lr=0.01)', 'uncertainty(init_log_var=0.5)'; "
                      "'agb(lam=0.3)' fixes AGB's lambda, 'agb(lam=search)' searches it"),
    "agb_lambda": (float, "fix AGB's lambda in [0, 1] and skip its warm-up search"),
    "agb_search_epochs": (int, "warm-up epochs per candidate lambda (default 5 x epochs/240, "
                               ">= 1)"),
    "holdout_fraction": (float, "share of the training set held out by the search (0.1)"),
    "w_task": (float, "manual balancer: task weight (default: the method's, 0.1 for kd, "
                      "1 for the others)"),
    "w_distill": (float, "manual balancer: distill weight (default: the method's hand-tuned "
                         "beta, e.g. kd 0.9, fitnet 100, pkt 30000)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m augkd.train", description="Train a teacher or a KD student.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:" + __doc__.split("::")[1].replace(":mod:", "").replace("`", ""),
    )
    parser.add_argument("role", nargs="?", choices=("teacher", "student"),
                        help="what to train (omit with --resume RUN_DIR)")
    parser.add_argument("--config", help="a YAML file of TrainConfig fields (flags override it)")
    add_config_flags(parser)
    parser.add_argument("--out", help="the run folder (default: runs/<role>-<model>-...)")
    parser.add_argument("--runs-root", default="runs", help="where default run folders go")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                        help="continue a killed run: RUN_DIR, or the folder given by --out")
    add_trust_flag(parser)
    return parser


def add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """The flags that :func:`config_from_args` reads, less the :data:`_FIELDS` in ``skip``
    (which then read as None). ``augkd.tune`` shares them."""
    for name, (kind, text) in _FIELDS.items():
        if name in skip:
            parser.set_defaults(**{name: None})
            continue
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=text)
    parser.add_argument("--download", action="store_true",
                        help="download cifar10/cifar100 into --root if missing")
    parser.add_argument("--per-batch", action="store_true", default=None,
                        help="draw the extra DA's random parameters once per batch (paper mode)")
    parser.add_argument("--allow-noop-aug", action="store_true", default=None,
                        help="run an extra DA that changes no pixel of a probe batch of 256 "
                        "training images (refused by default), with a warning")
    parser.add_argument("--joint-forward", action="store_true", default=None,
                        help="one forward over [x; x~] instead of the reference's two "
                        "(pools the views' BatchNorm statistics; not the paper's)")
    parser.add_argument("--resize", type=int, default=None, metavar="PX",
                        help="dataset option: resize images to PX x PX once at load")
    parser.add_argument("--train-subset", type=int, default=None, metavar="N",
                        help="dataset option: a seeded class-stratified subset of N training "
                        "images")
    parser.add_argument("--subset-seed", type=int, default=None, help="seed of --train-subset")
    parser.add_argument("--compile", action="store_true", default=None, help="torch.compile")
    parser.add_argument("--no-bf16", action="store_true", help="full fp32 on CUDA")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--tensorboard", action="store_true", default=None,
                        help="also write each epoch's metrics as TensorBoard scalars into "
                        "RUN_DIR/tensorboard/ (pip install \"augkd[tensorboard]\")")
    parser.add_argument("--wandb", action="store_true", default=None,
                        help="also log each epoch's metrics to Weights & Biases (project "
                        "$WANDB_PROJECT or augkd; WANDB_MODE=offline logs into RUN_DIR/wandb/; "
                        "pip install \"augkd[wandb]\")")


def config_from_args(args: argparse.Namespace,
                     values: dict | None = None) -> TrainConfig:
    """Defaults, then the YAML file (or ``values``, already read from it), then the flags."""
    if values is None:
        values = read_yaml_mapping(args.config) if args.config else {}
    values = flatten_blocks(values)  # a file's blocks, or given values (augkd.tune's)
    if args.role:
        values["role"] = args.role
    for name in _FIELDS:
        value = getattr(args, name)
        if value is not None:
            values[name] = value
    for flag in ("per_batch", "joint_forward", "compile", "tensorboard", "wandb",
                 "allow_noop_aug"):
        if getattr(args, flag):
            values[flag] = True
    if args.agb_lambda is not None:  # a fixed lambda: AGB without its search
        values["agb_search"] = False
    for option in ("resize", "train_subset", "subset_seed"):
        if getattr(args, option) is not None:
            values.setdefault("dataset_options", {})[option] = getattr(args, option)
    if args.no_bf16:
        values["bf16"] = False
    if args.no_progress:
        values["progress"] = False
    if args.download:
        values.setdefault("dataset_options", {})["download"] = True
    if isinstance(values.get("dataset"), str) and "(" in values["dataset"]:
        # --dataset 'imagefolder(size=64)': the options join dataset_options before a student
        # compares its data with its teacher's
        from augkd.data.dataset import split_dataset_spec

        values["dataset"], values["dataset_options"] = split_dataset_spec(
            values["dataset"], values.get("dataset_options") or {})
    values = apply_recipe(values)  # a recipe's lr, epochs... where the flags give none
    if "lr" not in values and "model" in values:
        values["lr"] = default_lr(values["model"])
    if values.get("role") == "student" and values.get("teacher"):
        values = with_teacher_data(values)
    return TrainConfig.from_dict(values)


def with_teacher_data(values: dict, log=print) -> dict:
    """``values`` (TrainConfig fields) with the data settings they leave unset taken from the
    teacher's run (:func:`augkd.training.api.inherit_teacher_data`)."""
    options = dict(values.get("dataset_options") or {})
    given = {"dataset": values.get("dataset"), "root": values.get("root"),
             **{k: options.get(k) for k in DATA_SETTINGS[2:]}}
    given["dataset_options"] = {k: v for k, v in options.items() if k not in DATA_SETTINGS[2:]}
    settings = inherit_teacher_data(given, values["teacher"], log)
    values = {**values, **{k: settings[k] for k in ("dataset", "root") if k in settings}}
    options.update({k: settings[k] for k in DATA_SETTINGS[2:] if k in settings})
    options.update(settings.get("dataset_options") or {})  # size, classes... of the teacher's
    if options:
        values["dataset_options"] = options
    return values


def _under_torchrun(cfg: TrainConfig) -> TrainConfig:
    """Join torchrun's process group (if any): this rank's device, progress on rank 0 only."""
    info, device = init_from_env(cfg.device)
    if not info.enabled:
        return cfg
    return cfg.replace(device=device, progress=cfg.progress and info.is_main)


def _check_extras(cfg: TrainConfig) -> None:
    """Fail before any work when the run asks for an optional dependency that is missing."""
    if cfg.tensorboard:
        summary_writer_class()
    if cfg.wandb:
        wandb_module()


#: Config keys -> the flags that set them, for errors that name the flag a user typed.
FLAGS = {name: "--" + name.replace("_", "-")
         for name in (*_FIELDS, "resize", "train_subset", "subset_seed")}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), flags=FLAGS)


def _run(args: argparse.Namespace) -> None:
    apply_trust_flag(args)
    if isinstance(args.resume, str):
        given = [f"--{k.replace('_', '-')}" for k in (*_FIELDS, "config", "per_batch",
                                                       "joint_forward", "resize", "train_subset",
                                                       "subset_seed", "out")
                 if getattr(args, k) is not None and getattr(args, k) is not False]
        if args.role or given:
            raise ValueError(
                f"--resume RUN_DIR continues the run with its own config.yaml; drop "
                f"{', '.join(([args.role] if args.role else []) + given)}"
            )
        run = RunDir(args.resume)
        if not run.config.is_file():
            raise FileNotFoundError(f"cannot resume: {run.path} holds no config.yaml")
        cfg = run.read_config()
        if args.no_progress:
            cfg = cfg.replace(progress=False)
        if args.tensorboard:
            cfg = cfg.replace(tensorboard=True)
        if args.wandb:
            cfg = cfg.replace(wandb=True)
        if args.allow_noop_aug:
            cfg = cfg.replace(allow_noop_aug=True)
        if args.download:  # only the command line asks for a download, never the folder
            cfg = cfg.replace(dataset_options={**cfg.dataset_options, "download": True})
        _check_extras(cfg)
        train(_under_torchrun(cfg), run.path, resume=True)
        return
    if not args.role:
        raise ValueError("say what to train: 'teacher' or 'student' (or --resume RUN_DIR)")
    if args.resume and not args.out:
        raise ValueError("--resume without a folder needs --out RUN_DIR")
    cfg = config_from_args(args)
    _check_extras(cfg)
    cfg = _under_torchrun(cfg)
    if current().enabled and not args.out:
        raise ValueError("under torchrun give --out RUN_DIR so every rank uses one folder")
    train(cfg, Path(args.out) if args.out else None, resume=bool(args.resume),
          runs_root=args.runs_root)


if __name__ == "__main__":
    sys.exit(main())
