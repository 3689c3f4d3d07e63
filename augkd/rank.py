"""``python -m augkd.rank``: rank the DAs for distilling a teacher, from the teacher alone.

For every DA spec, the teacher-only T. stddev (docs/protocol.md §3) is measured; the DAs are
ranked lowest first (a good DA lowers it). With ``--validate`` one student per DA (and seed) is
distilled with the trainer, and the correlation of T. stddev with the students' test loss is
reported with p-values, in the terminal, in the results folder and in an HTML/Markdown report.

With no arguments it runs the embedded default: scikit-learn's digits, a small resnet20 teacher
trained on first use and cached, all nine DAs of the benchmark.

Results folder (read by ``python -m augkd.report``)::

    OUT/results.csv     one row per DA, lowest T. stddev first: rank (the position), tier,
                        aug, t_stddev, t_stddev_se, t_stddev_std (blank with one seed),
                        [s_test_loss(_se, _std), s_test_loss_tier, s_test_acc(_std)], n_seeds
    OUT/summary.json    protocol, timings, uncertainty, tiers, recommended, warnings, and
                        (with --validate) pearson/spearman/kendall, s_test_loss_tiers and
                        effect_vs_noise (the ANOVA of the per-seed values)
    OUT/per_seed.csv    every (DA, seed) measurement before averaging, with its one-run SE
    OUT/tstddev/        the recorded group means of every measurement (to recompute the value)
    OUT/students/       the student runs of --validate

With ``--both-modes`` OUT holds one such folder per mode: OUT/per-image/, OUT/per-batch/.

How sure the ranking is (:mod:`augkd.metrics.tiers`): every T. stddev has a standard error,
one run's from a bootstrap over its groups, several seeds' from their spread (never below the
one-run error); walking down the sorted list, each DA joins its tier unless a Welch test
separates it from the tier's best (Bonferroni over the k - 1 tests), and the first tier is the
recommendation ("recommended: X (tied with Y)"). Warnings name what makes an answer weak: a
teacher near chance (:data:`TEACHER_FLOOR`), a correlation from fewer than
:data:`MIN_DAS_FOR_CORRELATION` DAs or students shorter than :data:`MIN_STUDENT_EPOCHS` epochs,
and AGB lambdas that its held-out split cannot tell apart.
"""

from __future__ import annotations

import argparse
import sys

from augkd.cli import run_cli
from augkd.ranking import RankConfig, rank
from augkd.ranking.config import MODES
from augkd.ranking.run import data_settings, expand_augs


def build_parser() -> argparse.ArgumentParser:
    d = RankConfig()
    p = argparse.ArgumentParser(
        prog="python -m augkd.rank",
        description="Rank data augmentations for KD by the teacher-only T. stddev.",
        epilog="--validate's students use the manual balancer by default (the paper's "
        "0.1 CE + 0.9 KD, as the DA-in-KD study trained them), while augkd.train defaults to "
        "AGB; --balancer agb gives them AGB's lambda search.",
    )
    p.add_argument("--dataset", default=None,
                   help="digits | cifar10 | cifar100 | imagefolder (default: a teacher run's, "
                   "else digits)")
    p.add_argument("--root", default=None,
                   help="dataset folder or archive (default: a teacher run's)")
    p.add_argument("--teacher", default=d.teacher,
                   help="teacher run folder or checkpoint, or a model name to train one first "
                   "(default %(default)s)")
    p.add_argument("--teacher-model", default=None,
                   help="architecture of a foreign (RepDistiller, mdistiller, torchdistill) "
                        "checkpoint (default: inferred from its weights)")
    p.add_argument("--teacher-epochs", type=int, default=d.teacher_epochs,
                   help="epochs of a teacher trained here when --teacher is a model name "
                   "(default %(default)s)")
    p.add_argument("--augs", nargs="+", default=list(d.augs), metavar="SPEC",
                   help="DA specs; 'default' stands for the nine of the benchmark, e.g. "
                   "--augs default 'kornia:RandomGaussianNoise(std=0.05, p=1.0)' (default: "
                   "the nine)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--per-batch", action="store_true", help="the paper's once-per-batch mode")
    mode.add_argument("--both-modes", action="store_true", help="per-image and per-batch")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help="passes over the training set of the T. stddev measurement (default "
                   "%(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help="KD batch size of the measured stream (default %(default)s)")
    p.add_argument("--group-size", type=int, default=d.group_size,
                   help="stream tensors per group of T. stddev (default %(default)s)")
    p.add_argument("--seeds", type=int, default=d.seeds,
                   help="repeat with seeds 0..N-1 (default %(default)s)")
    p.add_argument("--tstddev-subset", type=int, default=None, metavar="N",
                   help="measure T. stddev on a class-stratified subset of N training images, "
                        "a new one per seed, so the seed spread includes the subset's (for "
                        "ImageNet-sized data; default: the whole training split)")
    p.add_argument("--student", default=d.student,
                   help="the pair's student: --validate trains it; a short KD run of it scores "
                   "cutmixpick-s unless --student-run is given (default %(default)s)")
    p.add_argument("--student-run", default=None, metavar="RUN",
                   help="a finished KD student run of this teacher: cutmixpick-s's scorer")
    p.add_argument("--scorer-epochs", type=int, default=d.scorer_epochs,
                   help="epochs of the cached crop+flip KD student that scores cutmixpick-s "
                   "(default %(default)s)")
    p.add_argument("--resize", type=int, default=None, metavar="PX",
                   help="dataset option: resize the images to PX x PX once at load")
    p.add_argument("--train-subset", type=int, default=None, metavar="N",
                   help="dataset option: a seeded class-stratified subset of N training images")
    p.add_argument("--subset-seed", type=int, default=None,
                   help="seed of --train-subset (default: a teacher run's, else 0)")
    p.add_argument("--agb-lambda", type=float, default=None,
                   help="--validate with --balancer agb: fix lambda, skip AGB's search")
    p.add_argument("--validate", action="store_true", help="also distill one student per DA")
    p.add_argument("--student-epochs", type=int, default=d.student_epochs,
                   help="epochs of --validate's students (default %(default)s)")
    p.add_argument("--balancer", default=d.balancer,
                   help="balancer of --validate's students (default %(default)s: the paper's "
                   "0.1 CE + 0.9 KD; augkd.train's default is agb)")
    p.add_argument("--distill", default=d.distill,
                   help="distillation method of --validate's students (default kd; e.g. crd, "
                   "'fitnet(hint_layer=2)')")
    p.add_argument("--device", default=d.device,
                   help="auto | cpu | cuda | cuda:N (default %(default)s)")
    p.add_argument("--out", default=None, help="results folder (default runs/rank-...)")
    p.add_argument("--report-dir", default=None,
                   help="a folder for --validate's report, which goes into DIR/<name of OUT> "
                   "(default: OUT/report, beside the results)")
    p.add_argument("--cache-dir", default=None,
                   help="where teachers trained here are cached ($AUGKD_CACHE or ~/.cache/augkd)")
    p.add_argument("--download", action="store_true",
                   help="download cifar10/cifar100 into --root if missing")
    p.add_argument("--bf16", action="store_true",
                   help="run T. stddev's teacher forwards in bf16 autocast on CUDA (faster)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (they are drawn only on a terminal anyway)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    modes = MODES if args.both_modes else (("per-batch",) if args.per_batch else ("per-image",))

    def body() -> None:
        data = data_settings({"dataset": args.dataset, "root": args.root,
                              "resize": args.resize, "train_subset": args.train_subset,
                              "subset_seed": args.subset_seed}, args.teacher)
        d = RankConfig()
        cfg = RankConfig(
            dataset=data.get("dataset", d.dataset), root=data.get("root"), teacher=args.teacher,
            teacher_model=args.teacher_model, teacher_epochs=args.teacher_epochs,
            augs=expand_augs(args.augs), modes=modes, epochs=args.epochs,
            batch_size=args.batch_size,
            group_size=args.group_size, seeds=args.seeds,
            tstddev_subset=args.tstddev_subset, student=args.student,
            student_run=args.student_run, scorer_epochs=args.scorer_epochs,
            resize=data.get("resize"), train_subset=data.get("train_subset"),
            subset_seed=data.get("subset_seed", d.subset_seed),
            data_options=data.get("dataset_options") or {},
            agb_lambda=args.agb_lambda,
            validate=args.validate, student_epochs=args.student_epochs, balancer=args.balancer,
            distill=args.distill,
            device=args.device, out=args.out, report_dir=args.report_dir,
            cache_dir=args.cache_dir, download=args.download, bf16=args.bf16,
            progress=not args.no_progress,
        )
        rank(cfg)

    return run_cli(body, rerun="rerun the same command to continue (the teachers, scorers "
                   "and students it finished are reused)",
                   flags={"root": "--root", "agb_lambda": "--agb-lambda"})

if __name__ == "__main__":
    sys.exit(main())
