"""The paper's protocol to the letter (issue: trust the numbers).

Each test pins one place where augkd once measured something other than the reference code:
CutMixPick-S's scorer, two forwards per step, the per-batch mode end to end, fp32 figures, the
CutMix box and partners, normalization constants, no test-selected numbers, AGB's search by
default, and the dataset options the CPU-scale study needs.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image
import pytest
import torch

from augkd.augment import create
from augkd.augment.mixing import CutMix, sample_derangement
from augkd.augment.pipeline import Normalize, ViewPipeline
from augkd.data import load_dataset
from augkd.data.dataset import PUBLISHED_STATS, resize_images, stratified_subset
from augkd.metrics import mark_trained, measure_t_stddev
from augkd.models import create_model
from augkd.rank import main as rank_main
from augkd.ranking import measure_aug
from augkd.sweep import SpecError, load_spec
from augkd.sweep import main as sweep_main
from augkd.train import main as train_main
from augkd.training import Split, TrainConfig, Trainer, load_student, train
from augkd.training.run import RunDir
from augkd.training.step import Batch, StepContext, loss_terms, step_views
from tests.helpers import FAST, write_changed_spec

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def teacher_run(digits_teacher):
    return digits_teacher  # resnet8, 3 epochs on digits


@pytest.fixture(scope="module")
def student_run(tmp_path_factory, digits, teacher_run):
    out = tmp_path_factory.mktemp("fidelity") / "student"
    cfg = TrainConfig(role="student", model="resnet8", teacher=str(teacher_run), aug="crop+flip",
                      epochs=1, balancer="manual", **FAST)
    return train(cfg, out, data=digits, log=lambda s: None).run_dir


# ------------------------------------------------------------------ 1. CutMixPick-S's scorer
def test_an_untrained_student_is_refused_as_cutmixpick_s_scorer(digits, teacher_run):
    teacher = create_model("resnet8", 10, 1).eval()
    pipeline = ViewPipeline(create("crop+flip"), create("cutmixpick-s"),
                            Normalize(digits.mean, digits.std))
    fresh = create_model("resnet8", 10, 1)
    with pytest.raises(ValueError, match="never trained"):
        measure_t_stddev(teacher, digits.train_images[:128], pipeline, epochs=1, student=fresh,
                         progress=False)
    with pytest.raises(ValueError, match="trained KD student"):
        measure_t_stddev(teacher, digits.train_images[:128], pipeline, epochs=1, progress=False)
    # the same model, declared trained, scores (the check is about provenance, not weights)
    result = measure_t_stddev(teacher, digits.train_images[:256], pipeline, epochs=1,
                              group_size=2, student=mark_trained(fresh, 3), progress=False)
    assert result.n_groups >= 2


def test_load_student_checks_role_data_and_teacher(digits, teacher_run, student_run, tmp_path):
    model, manifest = load_student(student_run, digits, teacher=teacher_run)
    assert manifest["role"] == "student" and manifest["epochs"] == 1
    assert model.augkd_trained_epochs == 1 and not model.training
    with pytest.raises(ValueError, match="teacher run"):
        load_student(teacher_run, digits)
    other = train(TrainConfig(role="teacher", model="resnet8", epochs=1, **FAST),
                  tmp_path / "other", data=digits, log=lambda s: None).run_dir
    with pytest.raises(ValueError, match="distilled from teacher"):
        load_student(student_run, digits, teacher=other)
    resized = load_dataset("digits", resize=6)  # a train_subset alone is allowed: a subset
    with pytest.raises(ValueError, match="does not fit this dataset"):
        load_student(student_run, resized)


def test_rank_trains_and_caches_a_scorer_or_takes_student_run(tmp_path, capsys, teacher_run,
                                                             student_run):
    common = ["--teacher", str(teacher_run), "--augs", "identity", "cutmixpick-s",
              "--epochs", "1", "--scorer-epochs", "1", "--cache-dir", str(tmp_path / "cache"),
              "--no-progress"]
    assert rank_main([*common, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "cutmixpick-s needs a trained student: distilling a resnet8 for 1 epochs" in out
    scorers = [p for p in (tmp_path / "cache" / "students").iterdir() if p.is_dir()]
    assert len(scorers) == 1 and RunDir(scorers[0]).is_finished()
    assert rank_main([*common, "--out", str(tmp_path / "b")]) == 0
    assert "the cached resnet8 KD student" in capsys.readouterr().out
    a = pd.read_csv(tmp_path / "a" / "results.csv").set_index("aug")
    b = pd.read_csv(tmp_path / "b" / "results.csv").set_index("aug")
    assert a.loc["cutmixpick-s", "t_stddev"] == b.loc["cutmixpick-s", "t_stddev"]
    assert rank_main([*common, "--student-run", str(student_run),
                      "--out", str(tmp_path / "c")]) == 0
    assert f"student resnet8 from {student_run}" in capsys.readouterr().out
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["protocol"]["cutmixpick_s_scorer"] == str(student_run)


def test_rank_refuses_a_student_run_of_another_teacher(tmp_path, capsys, digits, student_run):
    other = train(TrainConfig(role="teacher", model="resnet8", epochs=1, **FAST),
                  tmp_path / "other", data=digits, log=lambda s: None).run_dir
    code = rank_main(["--teacher", str(other), "--augs", "cutmixpick-s", "--epochs", "1",
                      "--student-run", str(student_run), "--out", str(tmp_path / "r"),
                      "--no-progress"])
    assert code != 0 and "distilled from teacher" in capsys.readouterr().err


# ------------------------------------------------------------------ 2. two forwards per step
def _student_trainer(digits, teacher_run, **kw) -> Trainer:
    from augkd.training import load_teacher

    cfg = TrainConfig(role="student", model="resnet8", teacher=str(teacher_run), aug="cutmix",
                      epochs=1, balancer="manual", **FAST, **kw)
    teacher, _ = load_teacher(teacher_run, digits)
    split = Split(digits.train_images, digits.train_labels)
    return Trainer(cfg, split, split, mean=digits.mean, std=digits.std, num_classes=10,
                   in_channels=1, teacher=teacher, run=None, log=lambda s: None)


def _bn_counts(model) -> set[int]:
    return {int(m.num_batches_tracked) for m in model.modules()
            if isinstance(m, torch.nn.BatchNorm2d)}


@pytest.mark.parametrize("joint, updates", [(False, 2), (True, 1)])
def test_each_view_gets_its_own_forward_by_default(digits, teacher_run, joint, updates):
    trainer = _student_trainer(digits, teacher_run, joint_forward=joint)
    trainer.model.train()
    generator = torch.Generator().manual_seed(0)
    loss_terms(trainer.parts, Batch(digits.train_images[:64], digits.train_labels[:64]),
               StepContext(epoch=1, step=0, generator=generator))
    assert _bn_counts(trainer.model) == {updates}


def test_two_forward_losses_equal_the_reference_step(digits, teacher_run):
    """Oracle: the default step's KD terms are those of separate student forwards on x, x~."""
    from tests.oracles import kd_terms

    trainer = _student_trainer(digits, teacher_run)
    reference = create_model("resnet8", 10, 1)
    reference.load_state_dict(trainer.model.state_dict())
    images, labels = digits.train_images[:64], digits.train_labels[:64]
    x, x_aug, _, _ = step_views(trainer.parts, Batch(images, labels),
                                torch.Generator().manual_seed(3))
    trainer.model.train(), reference.train()
    losses = loss_terms(trainer.parts, Batch(images, labels),
                        StepContext(epoch=1, step=0, generator=torch.Generator().manual_seed(3)))
    with torch.no_grad():
        t_x, t_aug = trainer.teacher(x), trainer.teacher(x_aug)
    expected = kd_terms(reference(x), t_x, labels, reference(x_aug), t_aug, temperature=4.0)
    for name in ("task", "distill"):
        assert float(losses[name].detach()) == pytest.approx(float(expected[name].detach()),
                                                             rel=1e-5)


# ------------------------------------------------------------------ 3. the paper's mode, end to end
def test_paper_spec_runs_students_and_tstddev_per_batch():
    spec = load_spec(REPO / "experiments" / "paper_cifar10.yaml").spec
    assert spec["grid"]["mode"] == ["per-batch"] and spec["tstddev"]["modes"] == ["per-batch"]
    study = load_spec(REPO / "experiments" / "cifar10_cpu.yaml").spec
    assert study["grid"]["mode"] == ["per-batch"] and study["tstddev"]["modes"] == ["per-batch"]


def _digits_spec(tmp_path: Path, **changes) -> Path:
    spec = {
        "name": "modes", "dataset": {"name": "digits", "options": {"train_subset": 400}},
        "pairs": [{"teacher": "resnet8", "student": "resnet8"}],
        "teacher": {"epochs": 1},
        "grid": {"aug": ["identity", "cutmix", "mixup"], "epochs": [1], "seed": [0],
                 "balancer": ["manual"], "mode": ["per-image"]},
        "tstddev": {"epochs": 2},
    }
    return write_changed_spec(spec, tmp_path, **changes)


def test_sweep_per_batch_flag_sets_both_modes(tmp_path):
    spec = _digits_spec(tmp_path)
    from augkd.sweep.cli import _overrides, build_parser

    args = build_parser().parse_args([str(spec), "--per-batch"])
    sweep = load_spec(spec, _overrides(args))
    assert sweep.spec["grid"]["mode"] == ["per-batch"]
    assert sweep.spec["tstddev"]["modes"] == ["per-batch"]


def test_modes_that_never_meet_are_refused_unless_cross_mode(tmp_path):
    spec = _digits_spec(tmp_path, tstddev__modes=["per-batch"])
    with pytest.raises(SpecError, match="cross_mode"):
        load_spec(spec)
    load_spec(_digits_spec(tmp_path, tstddev__modes=["per-batch"], tstddev__cross_mode=True))


def test_correlations_pair_same_mode_and_name_a_cross_pairing(tmp_path):
    spec = _digits_spec(tmp_path, tstddev__modes=["per-image", "per-batch"],
                        tstddev__cross_mode=True)
    assert sweep_main([str(spec), "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    folders = sorted(p.name for p in (tmp_path / "s" / "results").iterdir())
    assert folders == ["resnet8-resnet8-manual-per-image-e1",
                       "resnet8-resnet8-manual-per-image-e1-cross-tper-batch"]
    cross = json.loads((tmp_path / "s" / "results" / folders[1] / "summary.json").read_text())
    assert cross["protocol"]["pairing"].startswith("cross-mode")
    same = json.loads((tmp_path / "s" / "results" / folders[0] / "summary.json").read_text())
    assert same["protocol"]["pairing"] == "same mode (per-image)"
    # without cross_mode only the same-mode folder is written (a sweep folder belongs to one
    # spec, so this one gets its own)
    spec = _digits_spec(tmp_path, tstddev__modes=["per-image", "per-batch"])
    assert sweep_main([str(spec), "--out", str(tmp_path / "s2"), "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "s2" / "results").iterdir()) == folders[:1]


# ------------------------------------------------------------------ 4. reported figures in fp32
def test_test_figures_ignore_an_enclosing_autocast(digits, teacher_run):
    trainer = _student_trainer(digits, teacher_run)
    plain = trainer.evaluate()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = trainer.evaluate()
    assert inside == plain


def test_t_stddev_ignores_an_enclosing_autocast(digits):
    teacher = create_model("resnet8", 10, 1).eval()
    norm = Normalize(digits.mean, digits.std)
    images = digits.train_images[:256]
    plain = measure_aug(teacher, images, norm, "flip", "per-image", 0, epochs=1, group_size=2,
                        progress=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = measure_aug(teacher, images, norm, "flip", "per-image", 0, epochs=1,
                             group_size=2, progress=False)
    assert inside.value == plain.value


# ------------------------------------------------------------------ 5. CutMix as the reference
def _reference_box(lam: float, cy: int, cx: int, h: int, w: int) -> tuple[int, int, int, int]:
    """The reference code's rand_bbox, for one drawn lambda and centre."""
    cut_h, cut_w = int(math.sqrt(1 - lam) * h), int(math.sqrt(1 - lam) * w)
    clip = lambda v, hi: min(max(v, 0), hi)  # noqa: E731
    return (clip(cy - cut_h // 2, h), clip(cy + cut_h // 2, h),
            clip(cx - cut_w // 2, w), clip(cx + cut_w // 2, w))


@pytest.mark.parametrize("h, w", [(32, 32), (8, 8), (7, 5)])
def test_cutmix_boxes_are_the_reference_boxes(h, w, monkeypatch):
    """Replay the draws (lambda, centre) and compare every box with the reference formula."""
    import augkd.augment.mixing as mixing

    seen = {}
    real_beta, real_randint = mixing.sample_beta, torch.randint

    def beta(*a, **k):
        seen["lam"] = real_beta(*a, **k)
        return seen["lam"]

    def randint(low, high, size, **k):
        value = real_randint(low, high, size, **k)
        seen.setdefault("centres", []).append(value)
        return value

    monkeypatch.setattr(mixing, "sample_beta", beta)
    monkeypatch.setattr(mixing.torch, "randint", randint)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        seen.clear()
        params = CutMix().sample(torch.Size((50, 3, h, w)), CPU, generator)
        cy, cx = seen["centres"][:2]
        for i in range(50):
            expected = _reference_box(float(seen["lam"][i]), int(cy[i]), int(cx[i]), h, w)
            got = (int(params.top[i]), int(params.bottom[i]), int(params.left[i]),
                   int(params.right[i]))
            assert got == expected


def test_cutmix_side_of_one_pastes_nothing_and_odd_sides_lose_a_pixel():
    h = w = 32
    # lam such that cut = int(sqrt(1 - lam) * 32) = 1, and = 5
    assert _reference_box(1 - (1.5 / 32) ** 2, 16, 16, h, w)[:2] == (16, 16)
    top, bottom, _, _ = _reference_box(1 - (5.5 / 32) ** 2, 16, 16, h, w)
    assert bottom - top == 4
    # and augkd's sampler agrees on area over many draws: lambda = 1 - area / (H W)
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 255, (256, 3, h, w), dtype=torch.uint8, generator=generator)
    out = create("cutmix")(images, generator)
    changed = (out.images != images).any(dim=1).flatten(1).sum(1).float()
    kept = out.mix.lam
    # pasted pixels that happen to equal the partner's are invisible: changed <= area
    assert torch.all(changed <= (1 - kept) * h * w + 1e-4)
    assert (kept == 1).float().mean() > 0  # some boxes are empty (a side of 0 or 1)
    assert torch.all((1 - kept) * h * w == torch.round((1 - kept) * h * w))


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_partner_permutation_is_uniform_over_derangements(n):
    derangements = [p for p in itertools.permutations(range(n))
                    if all(p[i] != i for i in range(n))]
    draws = 400 * len(derangements)
    generator = torch.Generator().manual_seed(n)
    counts = Counter(tuple(sample_derangement(n, CPU, generator).tolist()) for _ in range(draws))
    assert set(counts) == set(derangements)  # every derangement, and nothing else
    expected = draws / len(derangements)
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    dof = max(1, len(derangements) - 1)
    assert chi2 < dof + 6 * math.sqrt(2 * dof)  # far inside the tail for a uniform draw


def test_derangement_of_one_image_is_itself():
    assert sample_derangement(1, CPU, None).tolist() == [0]


# ------------------------------------------------------------------ 6. normalization constants
def test_cifar_loaders_use_the_published_constants(tmp_path):
    from tests.test_data import write_cifar10

    write_cifar10(tmp_path)
    data = load_dataset("cifar10", tmp_path)
    assert (data.mean, data.std) == PUBLISHED_STATS["cifar10"]
    assert PUBLISHED_STATS["cifar10"] == ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    assert PUBLISHED_STATS["cifar100"] == ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
    # a subset keeps the published constants; other datasets recompute from their split
    assert load_dataset("cifar10", tmp_path, train_subset=5).mean == PUBLISHED_STATS["cifar10"][0]


def test_run_config_records_the_normalization(teacher_run, digits):
    cfg = RunDir(teacher_run).read_config()
    assert cfg.mean == pytest.approx(digits.mean) and cfg.std == pytest.approx(digits.std)
    sub = load_dataset("digits", train_subset=300)
    from augkd.data import channel_stats

    assert sub.mean == pytest.approx(channel_stats(sub.train_images)[0])
    assert sub.mean != pytest.approx(digits.mean)


# ------------------------------------------------------------------ 7. no test-selected numbers
def test_no_best_epoch_is_exported(teacher_run, tmp_path):
    summary = json.loads((Path(teacher_run) / "summary.json").read_text())
    assert "best" not in summary and summary["last"]["epoch"] == 3
    assert sweep_main([str(_digits_spec(tmp_path)), "--out", str(tmp_path / "s"),
                       "--no-progress"]) == 0
    for name in ("results.csv", "summary.csv"):
        columns = pd.read_csv(tmp_path / "s" / name).columns
        assert not [c for c in columns if "best" in c], name


# ------------------------------------------------------------------ 8. AGB's Algorithm 1 by default
def test_agb_searches_lambda_by_default_with_scaled_warmups():
    cfg = TrainConfig(role="student", teacher="t", balancer="agb")
    assert cfg.agb_search and cfg.uses_agb_search
    assert cfg.search_epochs == 5  # 240 epochs
    assert cfg.replace(epochs=480).search_epochs == 10
    assert cfg.replace(epochs=30).search_epochs == 1
    assert cfg.replace(epochs=2).search_epochs == 1  # at least one
    assert cfg.replace(agb_search_epochs=3).search_epochs == 3
    assert not TrainConfig(role="student", teacher="t", balancer="manual").uses_agb_search
    with pytest.raises(ValueError, match="agb_search_lambdas"):
        TrainConfig(agb_search_lambdas=())


def test_agb_lambda_flag_fixes_lambda_and_skips_the_search(tmp_path, teacher_run):
    out = tmp_path / "fixed"
    assert train_main(["student", "--teacher", str(teacher_run), "--model", "resnet8",
                       "--epochs", "1", "--agb-lambda", "0.3", "--out", str(out),
                       "--no-progress", "--device", "cpu"]) == 0
    assert not (out / "agb_search.csv").exists()
    assert json.loads((out / "summary.json").read_text())["agb_lambda"] == 0.3
    searched = tmp_path / "searched"
    assert train_main(["student", "--teacher", str(teacher_run), "--model", "resnet8",
                       "--epochs", "1", "--out", str(searched), "--no-progress",
                       "--device", "cpu"]) == 0
    table = pd.read_csv(searched / "agb_search.csv")
    assert table["lambda"].tolist() == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert (table["epochs"] == 1).all()
    chosen = json.loads((searched / "summary.json").read_text())["agb_lambda"]
    assert chosen == table.sort_values(["holdout_top1", "holdout_loss"],
                                       ascending=[False, True])["lambda"].iloc[0]


def test_sweep_tables_carry_agb_lambda(tmp_path):
    spec = _digits_spec(tmp_path, grid__balancer=["agb"], grid__aug=["identity", "flip", "mixup"])
    assert sweep_main([str(spec), "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    results = pd.read_csv(tmp_path / "s" / "results.csv")
    assert results["agb_lambda"].isin([0.1, 0.3, 0.5, 0.7, 0.9]).all()
    assert "agb_lambda" in pd.read_csv(tmp_path / "s" / "summary.csv")
    for run in (tmp_path / "s" / "students").rglob("summary.json"):
        assert (run.parent / "agb_search.csv").is_file()
    (folder,) = (tmp_path / "s" / "results").iterdir()
    per_da = pd.read_csv(folder / "results.csv")
    assert per_da["agb_lambda"].astype(str).str.fullmatch(r"0\.[13579]").all()


# ------------------------------------------------------------------ dataset options of the study
def test_resize_matches_pillow_antialiased_bilinear():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    ours = resize_images(torch.from_numpy(pixels), 16).numpy()
    for i in range(4):
        image = PIL.Image.fromarray(pixels[i].transpose(1, 2, 0))
        theirs = np.asarray(image.resize((16, 16), PIL.Image.BILINEAR)).transpose(2, 0, 1)
        assert np.abs(ours[i].astype(int) - theirs.astype(int)).max() <= 1


def test_train_subset_is_stratified_seeded_and_part_of_the_checksum(digits):
    sub = load_dataset("digits", train_subset=500)
    full_counts = torch.bincount(digits.train_labels).double()
    counts = torch.bincount(sub.train_labels).double()
    assert int(counts.sum()) == 500
    assert torch.all((counts - full_counts * 500 / len(digits.train_labels)).abs() < 1)
    again = load_dataset("digits", train_subset=500)
    assert torch.equal(again.train_images, sub.train_images)
    other = load_dataset("digits", train_subset=500, subset_seed=1)
    assert not torch.equal(other.train_images, sub.train_images)
    checksums = {digits.checksum, sub.checksum, other.checksum,
                 load_dataset("digits", resize=16).checksum}
    assert len(checksums) == 4
    assert torch.equal(sub.test_images, digits.test_images)  # the test set stays whole
    index = stratified_subset(digits.train_labels, 500, 0)
    assert torch.equal(digits.train_images[index], sub.train_images)


@pytest.mark.parametrize("options, message", [
    ({"train_subset": 0}, "train_subset must be a positive integer"),
    ({"train_subset": 10**6}, "larger than the training split"),
    ({"resize": -4}, "resize must be a positive integer"),
    ({"subset_seed": -1, "train_subset": 10}, "subset_seed"),
])
def test_bad_dataset_options_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        load_dataset("digits", **options)


def test_dataset_options_reach_the_run_and_the_teacher_check(tmp_path, capsys, teacher_run):
    out = tmp_path / "small"
    assert train_main(["teacher", "--model", "resnet8", "--epochs", "1", "--resize", "6",
                       "--train-subset", "300", "--out", str(out), "--no-progress",
                       "--device", "cpu"]) == 0
    cfg = RunDir(out).read_config()
    assert cfg.dataset_options == {"resize": 6, "train_subset": 300}
    manifest = torch.load(out / "model.pt", weights_only=True)["manifest"]
    assert manifest["dataset_options"] == {"train_subset": 300, "subset_seed": 0, "resize": 6}
    # a student given other data cannot use this teacher; the message names what differs
    code = train_main(["student", "--teacher", str(out), "--model", "resnet8", "--epochs", "1",
                       "--resize", "8", "--out", str(tmp_path / "st"), "--no-progress",
                       "--device", "cpu"])
    err = capsys.readouterr().err
    assert code != 0 and "does not fit this dataset" in err and "resize" in err
