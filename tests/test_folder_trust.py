"""A folder someone else made runs no code, and no second command silently mixes into the first.

Each test pins a finding of the hostile-input probe of the newer surfaces: folders read back
(run configs, checkpoints, trial and sweep folders), report values, tune settings, foreign
teachers, DAs that change nothing, and clean stops.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from augkd.training import TrainConfig
from augkd.training.run import RunDir
from augkd.trust import UntrustedFolderError, reading_folder, trust_folders
from tests.helpers import FAST


def _plant_module(tmp_path: Path, monkeypatch) -> tuple[str, Path]:
    """A module beside the folder that touches a marker file when imported."""
    name = f"evil_da_{uuid.uuid4().hex[:8]}"
    marker = tmp_path / f"{name}.ran"
    (tmp_path / f"{name}.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return name, marker


def _plant_run(folder: Path, aug: str, **changes) -> RunDir:
    values = {"role": "student", "model": "resnet8", "teacher": str(folder.parent / "t"),
              "epochs": 1, "aug": "flip", **FAST, **changes}
    config = TrainConfig(**values).to_dict()
    config["aug"] = aug
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return RunDir(folder)


@pytest.fixture(autouse=True)
def _untrusted():
    trust_folders(False)
    yield
    trust_folders(False)


# ------------------------------------------------------------------ 1. a folder imports nothing
def test_resume_of_a_planted_folder_imports_nothing(tmp_path, monkeypatch, capsys):
    from augkd.train import main as train_main

    name, marker = _plant_module(tmp_path, monkeypatch)
    run = _plant_run(tmp_path / "run1", f"{name}:Whatever")
    assert train_main(["--resume", str(run.path)]) == 2
    err = capsys.readouterr().err.strip()
    assert not marker.exists()
    assert len(err.splitlines()) == 1
    assert str(run.config) in err and f"{name}:Whatever" in err and "--trust-folder" in err


def test_trust_folder_lets_the_folder_import_its_module(tmp_path, monkeypatch, capsys):
    from augkd.train import main as train_main

    name, marker = _plant_module(tmp_path, monkeypatch)
    run = _plant_run(tmp_path / "run1", f"{name}:Whatever")
    assert train_main(["--resume", str(run.path), "--trust-folder"]) == 2
    assert marker.exists()  # imported as asked; the class is then missing
    assert "Whatever" in capsys.readouterr().err


def test_a_spec_the_user_typed_still_imports(tmp_path, monkeypatch):
    from augkd.augment import create

    name, marker = _plant_module(tmp_path, monkeypatch)
    with pytest.raises(ValueError, match="Whatever"):
        create(f"{name}:Whatever")
    assert marker.exists()


@pytest.mark.parametrize("spec", ["flip", "cutmix(beta=1.0)", "kornia:RandomAffine(degrees=15)",
                                  "augkd.augment.erase:Cutout(size=4)"])
def test_augkd_and_library_specs_read_back_from_a_folder_still_build(tmp_path, spec):
    from augkd.augment import create

    with reading_folder(tmp_path / "config.yaml"):
        create(spec)


def test_a_checkpoint_config_read_back_imports_nothing(tmp_path, monkeypatch):
    from augkd.augment import create

    name, marker = _plant_module(tmp_path, monkeypatch)
    with reading_folder(tmp_path / "checkpoint.pt"), pytest.raises(UntrustedFolderError,
                                                                  match="checkpoint.pt"):
        create(f"{name}:X")
    assert not marker.exists()


def test_sweep_collect_and_dry_run_over_a_planted_run_import_nothing(tmp_path, monkeypatch,
                                                                    capsys):
    from augkd.sweep.cli import main as sweep_main

    name, marker = _plant_module(tmp_path, monkeypatch)
    spec = _tiny_sweep_spec(tmp_path)
    planted = tmp_path / "sweep" / "teachers" / "resnet8"
    planted.mkdir(parents=True)
    config = TrainConfig(role="teacher", model="resnet8", epochs=1, **FAST).to_dict()
    config.update(role="student", teacher="x", aug=f"{name}:X")
    (planted / "config.yaml").write_text(yaml.safe_dump(config))
    (planted / "summary.json").write_text("{}")
    (planted / "model.pt").write_bytes(b"")
    for extra in (["--dry-run"], ["--collect"]):
        assert sweep_main([str(spec), *extra]) == 2
        err = capsys.readouterr().err
        assert "--trust-folder" in err and str(planted / "config.yaml") in err
    assert not marker.exists()


def _tiny_sweep_spec(tmp_path: Path) -> Path:
    spec = {
        "name": "trust", "out": str(tmp_path / "sweep"), "device": "cpu",
        "dataset": {"name": "digits"},
        "teacher": {"epochs": 1},
        "pairs": [{"teacher": "resnet8", "student": "resnet8"}],
        "grid": {"aug": ["flip"], "epochs": [1], "seed": [0]},
        "tstddev": {"epochs": 1},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


# -------------------------------------------------------------- 3. only the command line downloads
def test_a_resumed_config_starts_no_download(tmp_path, monkeypatch, capsys):
    from torchvision.datasets import utils

    from augkd.train import main as train_main

    calls = []
    monkeypatch.setattr(utils, "download_and_extract_archive", lambda *a, **k: calls.append(a))
    root = tmp_path / "chosen-by-the-config"
    config = TrainConfig(role="teacher", model="resnet8", epochs=1, **FAST).to_dict()
    config.update(dataset="cifar10", root=str(root), dataset_options={"download": True})
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    assert train_main(["--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "cifar10" in err and "--download" in err
    assert not calls and not root.exists()


def test_a_failed_download_names_the_dataset_and_url(tmp_path, monkeypatch):
    import urllib.error

    from torchvision.datasets import utils

    from augkd.data import load_dataset

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(utils, "download_and_extract_archive", offline)
    with pytest.raises(OSError, match=r"cifar10: download of https://\S+cifar-10-python\.tar\.gz"):
        load_dataset("cifar10", tmp_path, download=True)


# ------------------------------------------------------------------ 2. report.md passes no markup
HOSTILE_VALUES = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>",
                  "![x](http://host/track.png)", "[c](javascript:alert(1))",
                  "<a href='http://evil'>x</a>", "**bold** _em_ `code`", "http://bare.example/x",
                  "# heading", "&lt;i&gt;", "$\\frac{$"]


def _hostile_results(tmp_path: Path) -> Path:
    import numpy as np
    import pandas as pd

    from augkd.report.results import write_results

    n = len(HOSTILE_VALUES)
    table = pd.DataFrame({"aug": HOSTILE_VALUES, "t_stddev": np.linspace(0.1, 0.2, n),
                          "s_test_loss": np.linspace(1.0, 1.2, n),
                          "<b onmouseover=x>col</b>": HOSTILE_VALUES})
    summary = {"protocol": {"teacher": "<script>t</script>", "dataset": "[d](javascript:x)"},
               "note": "![t](http://host/track.png)"}
    return write_results(tmp_path / "[r](javascript:x)", table, summary)


def test_report_md_renders_no_markup_from_the_values(tmp_path):
    from html.parser import HTMLParser

    import markdown

    from augkd.report.render import render_report
    from augkd.report.results import load_results

    paths = render_report([load_results(_hostile_results(tmp_path))], tmp_path / "out",
                          title="<script>title</script>")
    rendered = markdown.markdown(paths.md.read_text(), extensions=["tables"])

    class Elements(HTMLParser):
        def __init__(self):
            super().__init__()
            self.found: list[tuple[str, dict]] = []

        def handle_starttag(self, tag, attrs):
            self.found.append((tag, dict(attrs)))

    parser = Elements()
    parser.feed(rendered)
    report_tags = {"h1", "h2", "h3", "p", "em", "table", "thead", "tbody", "tr", "th", "td",
                   "img", "blockquote"}
    assert {tag for tag, _ in parser.found} <= report_tags
    pngs = {p.name for p in paths.pngs}
    for tag, attrs in parser.found:
        if tag == "img":  # the report's own figures only
            assert attrs["src"] in pngs and set(attrs) == {"src", "alt"}
        else:
            assert not attrs or set(attrs) <= {"style", "align"}
    assert "track.png" not in {a.get("src") for _, a in parser.found}
    assert "onerror" not in rendered.replace("onerror=alert", "")  # only as text
    for value in ("<img src=x onerror=alert(1)>", "[c](javascript:alert(1))", "$\\frac{$"):
        assert value in _text_of(rendered)


def _text_of(rendered_html: str) -> str:
    from html.parser import HTMLParser

    class Text(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []

        def handle_data(self, data):
            self.parts.append(data)

    parser = Text()
    parser.feed(rendered_html)
    return "".join(parser.parts)


# ------------------------------------------------------------------ tune: one study, one search
@pytest.fixture(scope="module")
def teacher(digits_teacher):
    return digits_teacher  # resnet8, 3 epochs on digits (conftest); read-only


def _tune_args(teacher, out, *extra) -> list[str]:
    return ["--teacher", str(teacher), "--model", "resnet8", "--dataset", "digits",
            "--device", "cpu", "--no-progress", "--epochs", "1", "--out", str(out), *extra]


def test_a_second_tune_command_on_one_storage_is_refused_naming_the_settings(teacher, tmp_path,
                                                                           capsys):
    from augkd.tune.cli import main as tune_main

    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    first = ("--trials", "1", "--storage", storage, "--beta-low", "0.1", "--beta-high", "1")
    assert tune_main(_tune_args(teacher, tmp_path / "a", *first)) == 0
    capsys.readouterr()
    second = ("--trials", "1", "--storage", storage, "--distill", "pkt", "--beta-low", "100",
              "--beta-high", "1000")
    assert tune_main(_tune_args(teacher, tmp_path / "b", *second)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    for name in ("student.distill", "tune.beta_low", "tune.beta_high", "--study-name"):
        assert name in err
    assert not (tmp_path / "b" / "trials").exists()  # no trial of the other study ran
    # its own study in the same database
    assert tune_main(_tune_args(teacher, tmp_path / "b", *second, "--study-name", "pkt")) == 0
    import json

    best = json.loads((tmp_path / "b" / "tune.json").read_text())["best_w_distill"]
    assert 100 <= best <= 1000


def _shared_study(out: Path, tune_cfg):
    from augkd.tune import search

    out.mkdir(parents=True, exist_ok=True)
    return search._open_study(tune_cfg, out, 0, 0, 1)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_stale_trial_is_retried_once_and_counted_once(teacher, tmp_path):
    import json

    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    from augkd.data import load_dataset
    from augkd.tune import TuneConfig, search, tune

    out = tmp_path / "tune"
    cfg = TuneConfig(trials=2, sampler="random", heartbeat_s=1)
    study = _shared_study(out, cfg)
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.FAIL, params={"w_distill": 0.5},
        distributions={"w_distill": FloatDistribution(cfg.beta_low, cfg.beta_high, log=True)}))
    stale = study.get_trials()[0]
    search._retry_stale_trial(study, stale)
    search._retry_stale_trial(study, stale)  # a second worker finding it stale too
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1
    # a storage that already holds two retries of one trial (written by an older augkd)
    RetryHeartbeatStaleTrialCallback()(study, stale)
    student = TrainConfig(role="student", model="resnet8", teacher=str(teacher), epochs=1,
                          **FAST)
    result = tune(student, cfg, out, data=load_dataset("digits"), log=lambda s: None)
    done = [r for r in result.trials if r["state"] == "complete"]
    assert len(done) == 2
    assert len({r["folder"] for r in done}) == 2  # never two trials on one folder
    assert result.search_epochs == 2  # each trial's epoch counted once
    summary = json.loads((out / "tune.json").read_text())
    assert summary["complete"] == 2 and summary["search_epochs"] == 2


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning",
                            "ignore:Heartbeat of storage:UserWarning")
def test_a_trial_killed_after_the_search_had_its_trials_is_still_completed(teacher, tmp_path):
    """A tune killed while its last (extra) trial ran, rerun at once: the study already held
    its trials, so the rerun stopped and the dead trial stayed 'running' in the storage and in
    trials.csv for good, its folder half trained. The rerun now waits for it to go stale and
    completes its retry in its folder, as the uninterrupted search would have."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    from augkd.data import load_dataset
    from augkd.tune import TuneConfig, tune

    out = tmp_path / "tune"
    cfg = TuneConfig(trials=1, sampler="random", heartbeat_s=1)
    study = _shared_study(out, cfg)
    beta = FloatDistribution(cfg.beta_low, cfg.beta_high, log=True)
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.COMPLETE, value=50.0, params={"w_distill": 0.5},
        distributions={"w_distill": beta},
        user_attrs={"folder": "trials/trial-0000", "epochs": 1, "worker": 0}))
    killed = study.ask({"w_distill": beta})  # running in a worker that is then killed
    killed.set_user_attr("folder", "trials/trial-0001")
    study._storage.record_heartbeat(killed._trial_id)  # its last heartbeat: now
    student = TrainConfig(role="student", model="resnet8", teacher=str(teacher), epochs=1,
                          **FAST)
    result = tune(student, cfg, out, data=load_dataset("digits"), log=lambda s: None)
    states = {r["number"]: r["state"] for r in result.trials}
    assert states == {0: "complete", 1: "fail", 2: "complete"}
    retry = next(r for r in result.trials if r["number"] == 2)
    assert retry["folder"] == "trials/trial-0001"  # the killed trial's own folder
    assert retry["w_distill"] == killed.params["w_distill"]
    assert (out / "trials" / "trial-0001" / "model.pt").is_file()
    assert result.search_epochs == 2  # each trial's epoch counted once


@pytest.mark.parametrize("storage, words", [
    ("corrupt", "DatabaseError"),
    ("sqlite:////nonexistent-dir/deeper/study.db", "OperationalError"),
    ("foo://host/db", "augkd.tune takes sqlite"),
    ("postgresql://user:s3cret@127.0.0.1:1/db", "user:***@"),
])
def test_a_bad_study_storage_is_one_line(tmp_path, capsys, storage, words):
    from augkd.tune.cli import main as tune_main

    if storage == "corrupt":
        (tmp_path / "study.db").write_bytes(b"not a database at all\x00" * 100)
        storage = f"sqlite:///{tmp_path / 'study.db'}"
    code = tune_main(_tune_args(tmp_path / "no-teacher", tmp_path / "out", "--storage", storage))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "cannot use the study storage" in err and words in err and "s3cret" not in err


@pytest.mark.parametrize("text, words", [("- a\n- b\n", "must hold a mapping"),
                                         ("student: [unclosed\n", "not valid YAML")])
def test_a_damaged_tune_yaml_is_one_line(tmp_path, capsys, text, words):
    from augkd.tune.cli import main as tune_main

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "tune.yaml").write_text(text)
    assert tune_main(_tune_args(tmp_path / "no-teacher", tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "tune.yaml" in err


# ---------------------------------------------------- 5. rank --validate reuses only matching runs
def test_rank_validate_refuses_finished_students_of_other_settings(teacher, tmp_path, capsys):
    from augkd.rank import main as rank_main

    common = ["--teacher", str(teacher), "--dataset", "digits", "--augs", "flip", "--epochs", "1",
              "--validate", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "rank"),
              "--report-dir", str(tmp_path / "reports"), "--student", "resnet8",
              "--agb-lambda", "0.5"]
    assert rank_main([*common, "--student-epochs", "1"]) == 0
    capsys.readouterr()
    assert rank_main([*common, "--student-epochs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "epochs" in err and str(tmp_path / "rank" / "students") in err
    assert len(err.splitlines()) == 1


# ------------------------------------------------------------- 7, 10. sweeps: one folder, one spec
def test_two_da_specs_that_map_to_one_job_folder_are_refused_at_spec_time(tmp_path):
    from augkd.sweep.spec import SpecError, load_spec

    spec = yaml.safe_load(_tiny_sweep_spec(tmp_path).read_text())
    spec["grid"]["aug"] = ["cutmix(beta=1.0, per_batch=true)",
                           "cutmix(beta=1.0 ,per_batch=true)"]
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match=r"grid.aug: .*cutmix.*one job folder name"):
        load_spec(tmp_path / "two.yaml")


def test_collect_with_another_spec_leaves_the_sweep_alone(tmp_path, capsys):
    from augkd.sweep.cli import main as sweep_main
    from augkd.sweep.spec import load_spec

    spec_a = _tiny_sweep_spec(tmp_path)
    sweep = load_spec(spec_a)
    sweep.out.mkdir(parents=True)
    (sweep.out / "spec.yaml").write_text(yaml.safe_dump(sweep.spec, sort_keys=False))
    (sweep.out / "results.csv").write_text("pair,aug\nA,flip\n")
    spec = yaml.safe_load(spec_a.read_text())
    spec["grid"]["aug"] = ["cutmix"]
    spec["tstddev"]["epochs"] = 2
    spec_b = tmp_path / "b.yaml"
    spec_b.write_text(yaml.safe_dump(spec))
    assert sweep_main([str(spec_b), "--collect"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "grid.aug drops flip" in err and "tstddev.epochs" in err and "spec.yaml" in err
    assert (sweep.out / "results.csv").read_text() == "pair,aug\nA,flip\n"
    # a spec that only adds grid values may collect (and run) in the same folder
    spec["grid"]["aug"] = ["flip", "cutmix"]
    spec["tstddev"]["epochs"] = 1
    spec_b.write_text(yaml.safe_dump(spec))
    assert sweep_main([str(spec_b), "--collect", "--device", "cpu"]) == 0


# ------------------------------------------------------------------ 8. a DA must change the images
@pytest.mark.parametrize("spec", [
    "kornia:ColorJitter(saturation=0.5, p=1.0)", "kornia:RandomGrayscale(p=1.0)",
    "albumentations:ToGray(p=1.0)", "albumentations:ChannelShuffle(p=1.0)",
    "crop(padding=0)", "kornia:RandomAffine(degrees=15, p=0.0)",
    "albumentations:HorizontalFlip(p=0.0)",
])
@pytest.mark.filterwarnings("ignore:The image is already gray")
def test_a_da_that_changes_no_pixel_is_refused_before_the_run(spec):
    from augkd.augment import create
    from augkd.augment.probe import NoOpAugmentationError, probe_augmentation
    from augkd.data import load_dataset

    aug = create(spec)
    images = load_dataset("digits").train_images
    with pytest.raises(NoOpAugmentationError, match=r"changed no pixel.*--allow-noop-aug"):
        probe_augmentation(aug, spec, images)
    warned = []
    probe_augmentation(aug, spec, images, allow_noop=True, warn=warned.append)
    assert warned and spec in warned[0]


@pytest.mark.parametrize("spec", ["identity", "flip", "cutmix", "kornia:RandomAffine(degrees=15)",
                                  "autoaugment"])
def test_das_that_change_pixels_pass_the_probe(spec, digits):
    from augkd.augment import create
    from augkd.augment.probe import probe_augmentation

    probe_augmentation(create(spec), spec, digits.train_images)
    probe_augmentation(create(spec, per_batch=True), spec, digits.train_images)


def test_a_noop_da_stops_the_student_before_training(teacher, tmp_path, capsys):
    from augkd.train import main as train_main

    args = ["student", "--teacher", str(teacher), "--model", "resnet8", "--epochs", "1",
            "--aug", "crop(padding=0)", "--dataset", "digits", "--device", "cpu",
            "--no-progress", "--balancer", "manual"]
    assert train_main([*args, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "changed no pixel" in err and "--allow-noop-aug" in err
    assert not (tmp_path / "s").exists()
    assert train_main([*args, "--out", str(tmp_path / "s2"), "--allow-noop-aug"]) == 0
    assert "warning: DA crop(padding=0) changed no pixel" in capsys.readouterr().out


def test_an_error_inside_a_da_names_the_da(digits):
    from augkd.augment import create
    from augkd.augment.probe import probe_augmentation

    spec = "kornia:ColorJitter(hue=0.2, p=1.0)"
    with pytest.raises(ValueError, match=r"DA kornia:ColorJitter\(hue=0.2, p=1.0\): fails on"):
        probe_augmentation(create(spec), spec, digits.train_images)


@pytest.mark.parametrize("resize, words", [(1, r"in \[4, 1024\] px, got 1"),
                                          (5000, r"in \[4, 1024\] px, got 5000")])
def test_a_resize_the_models_cannot_use_is_refused(resize, words):
    from augkd.data import load_dataset

    with pytest.raises(ValueError, match=words):
        load_dataset("digits", resize=resize)


# ------------------------------------------------------------------ 9, 13. hostile foreign teachers
@pytest.fixture(scope="module")
def foreign_state(teacher):
    import torch

    return {k: v.clone() for k, v in torch.load(teacher / "model.pt",
                                                 weights_only=True)["model"].items()}


def _foreign(tmp_path: Path, state: dict) -> Path:
    import torch

    path = tmp_path / "foreign" / "ckpt.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state}, path)
    return path


@pytest.mark.parametrize("change, words", [
    (lambda s: s.update({"fc.weight": s["fc.weight"] * 1e30}), r"logits up to \|.*e\+"),
    (lambda s: s.update({"fc.weight": s["fc.weight"].to(__import__("torch").int64)}),
     r"'fc.weight' is torch.int64, not a floating point type"),
    (lambda s: s.update({"fc.weight": s["fc.weight"].to(__import__("torch").complex64)}),
     r"'fc.weight' is torch.complex64 \(complex\)"),
    (lambda s: s["fc.bias"].__setitem__(0, float("-inf")), r"'fc.bias' holds non-finite values"),
    (lambda s: s.update({"fc.weight": s["fc.weight"].to_sparse()}), r"'fc.weight' is .*sparse"),
])
@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants")
def test_a_hostile_foreign_teacher_is_refused_naming_file_and_tensor(foreign_state, digits,
                                                                    tmp_path, change, words):
    from augkd.training import load_teacher

    state = {k: v.clone() for k, v in foreign_state.items()}
    change(state)
    path = _foreign(tmp_path, state)
    with pytest.raises(ValueError, match=words) as err:
        load_teacher(path, digits, log=lambda s: None)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_the_teacher_tar_itself_says_extract_it(foreign_state, digits, tmp_path):
    import tarfile

    from augkd.training import load_teacher

    inner = _foreign(tmp_path, foreign_state)
    tar = tmp_path / "cifar_teachers.tar"
    with tarfile.open(tar, "w") as archive:
        archive.add(inner, arcname="models/resnet8_vanilla/ckpt_epoch_240.pth")
    with pytest.raises(ValueError, match=r"tar archive.*extract it.*ckpt_epoch_240\.pth") as err:
        load_teacher(tar, digits, log=lambda s: None)
    assert "weights_only=False" not in str(err.value)


def test_a_teacher_of_other_dataset_options_names_them(teacher, tmp_path):
    from augkd.data import load_dataset
    from augkd.training import load_teacher

    # (a train_subset of the teacher's own data alone is allowed: test_training)
    other = load_dataset("digits", resize=6, train_subset=300)
    with pytest.raises(ValueError, match=r"other data \(teacher: train_subset none, subset_seed "
                                         r"none, resize none; this run: train_subset 300, "
                                         r"subset_seed 0, resize 6\)"):
        load_teacher(teacher, other, log=lambda s: None)


# ------------------------------------------------------------------ 12. one line, not a traceback
@pytest.mark.parametrize("spec", ["kornia:" + "(" * 21000 + "X" + ")" * 21000,
                                  "kornia:RandomAffine(degrees=15) | " * 2000 + "X",
                                  "cutout(size=" + "1" * 63000 + ")"])
def test_a_huge_spec_is_one_clear_error(spec):
    from augkd.augment import create

    with pytest.raises(ValueError, match="specs are at most 2000 characters"):
        create(spec)


@pytest.mark.parametrize("text, words", [("[1, 2]", "got list"),
                                         ('{"t_stddev": ', "damaged JSON")])
def test_a_damaged_tstddev_record_names_the_file(tmp_path, capsys, text, words):
    from augkd.sweep.cli import main as sweep_main
    from augkd.sweep.spec import load_spec

    spec = _tiny_sweep_spec(tmp_path)
    sweep = load_spec(spec, ["pairs=[{teacher: resnet8, student: resnet8, teacher_run: t}]"])
    job = next(j for j in sweep.jobs() if j.kind == "tstddev")
    record = sweep.out / job.key
    record.parent.mkdir(parents=True)
    record.write_text(text)
    args = [str(spec), "--set", "pairs=[{teacher: resnet8, student: resnet8, teacher_run: t}]"]
    for extra in (["--dry-run"], ["--collect"]):
        assert sweep_main([*args, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(record) in err and words in err


# --------------------------------------------------------------- 11. workers die with their parent
_SLEEPER = """
import os, sys, time
folder = sys.argv[1]
worker = sys.argv[sys.argv.index("--worker-id") + 1]
open(os.path.join(folder, f"worker-{worker}.pid"), "w").write(str(os.getpid()))
time.sleep(120)
"""

_PARENT = """
import sys
from augkd.cli import run_worker_processes
run_worker_processes("augkd_sleeper", [sys.argv[1]], 2, what="test", rerun="-",
                     cpu_threads=False)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_workers_die_with_their_parent(tmp_path, signal_name):
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "augkd_sleeper.py").write_text(_SLEEPER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get(
        "PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(tmp_path)], env=env)
    pid_files = [tmp_path / f"worker-{i}.pid" for i in range(2)]
    deadline = time.monotonic() + 60
    while not all(p.is_file() and p.read_text() for p in pid_files):
        assert time.monotonic() < deadline and parent.poll() is None, "workers did not start"
        time.sleep(0.05)
    workers = [int(p.read_text()) for p in pid_files]
    parent.send_signal(getattr(signal, signal_name))
    parent.wait(timeout=60)
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # do not leave them behind even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"workers {survivors} outlived their parent ({signal_name})"


_RANK = """
import os, sys, time
from augkd.training.distributed import init_from_env
init_from_env("cpu")
open(os.path.join(sys.argv[1], f"rank-{os.environ['RANK']}.pid"), "w").write(str(os.getpid()))
time.sleep(120)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_torchrun_ranks_die_with_a_killed_torchrun(tmp_path):
    """torchrun starts its ranks in sessions of their own: a kill -9 of torchrun's process
    group left them training on (and writing the run folder) beside the resumed command."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    (tmp_path / "rank.py").write_text(_RANK)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
         str(port), str(tmp_path / "rank.py"), str(tmp_path)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_files = [tmp_path / f"rank-{i}.pid" for i in range(2)]
    deadline = time.monotonic() + 120
    while not all(p.is_file() and p.read_text() for p in pid_files):
        assert time.monotonic() < deadline and launcher.poll() is None, "ranks did not start"
        time.sleep(0.05)
    ranks = [int(p.read_text()) for p in pid_files]
    os.killpg(launcher.pid, signal.SIGKILL)  # torchrun's group: the ranks are not in it
    launcher.wait(timeout=60)
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in ranks) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [pid for pid in ranks if _alive(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"ranks {survivors} outlived their torchrun"


# ---------------------------------------------- 12. a killed atomic write leaves no file behind
def _temporary(folder: Path, name: str, pid: int, age_s: float = 0.0) -> Path:
    """The temporary file an atomic write of ``folder / name`` by process ``pid`` leaves."""
    import os
    import time

    from augkd.files import temporary_prefix

    prefix = temporary_prefix(folder / name)
    path = folder / (prefix[:-len(f"{os.getpid()}.")] + f"{pid}.k1ll3d_x.tmp")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half")
    if age_s:
        os.utime(path, (time.time() - age_s,) * 2)
    return path


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_only_the_temporaries_of_writers_that_are_gone_are_removed(tmp_path):
    import os

    from augkd.files import FOREIGN_TEMPORARY_AGE_S, remove_stale_temporaries

    dead = _temporary(tmp_path / "tstddev" / "pair", "identity-per-image-s0.json", _dead_pid())
    # this process's number, on a file older than the process: a writer whose number came back
    reused = _temporary(tmp_path, "trials.csv", os.getpid(), age_s=10 * 24 * 3600)
    untagged_old = tmp_path / ".summary.csv.abc123.tmp"  # an older augkd's, two days old
    untagged_old.write_bytes(b"")
    os.utime(untagged_old, (0, 0))
    running = _temporary(tmp_path, "spec.yaml", os.getpid())  # a write in progress
    untagged_new = tmp_path / ".results.csv.xyz789.tmp"
    untagged_new.write_bytes(b"")
    other_host = tmp_path / ".model.pt.elsewhere~1~123.abcdefgh.tmp"
    other_host.write_bytes(b"")
    os.utime(other_host, (os.path.getmtime(other_host) - FOREIGN_TEMPORARY_AGE_S / 2,) * 2)
    assert remove_stale_temporaries(tmp_path) == sorted([dead, reused, untagged_old])
    assert running.exists() and untagged_new.exists() and other_host.exists()


def test_a_sweep_and_a_tune_remove_what_killed_writes_left(teacher, tmp_path):
    """A SIGKILL inside an atomic write of a sweep's spec.yaml or T. stddev record, or of a
    tune's tune.yaml or trials.csv, left its temporary file for good (run folders were
    cleaned when resumed; these folders never were)."""
    from augkd.sweep.cli import main as sweep_main
    from augkd.tune.cli import main as tune_main

    spec = _tiny_sweep_spec(tmp_path)
    sweep = tmp_path / "sweep"
    left = [_temporary(sweep, "spec.yaml", _dead_pid()),
            _temporary(sweep / "tstddev" / "resnet8-resnet8", "flip-per-image-s0.json",
                       _dead_pid())]
    assert sweep_main([str(spec), "--collect", "--no-progress"]) == 0
    assert not any(p.exists() for p in left)
    out = tmp_path / "tune"
    left = [_temporary(out, "tune.yaml", _dead_pid()), _temporary(out, "trials.csv", _dead_pid())]
    assert tune_main(_tune_args(teacher, out, "--trials", "1")) == 0
    assert not list(out.rglob(".*.tmp"))


def test_a_failed_sweep_worker_still_collects_what_finished(tmp_path, monkeypatch, capsys):
    from augkd import cli
    from augkd.sweep import cli as sweep_cli

    def killed(*args, **kwargs):
        raise cli.WorkersFailedError("sweep worker(s) 1 failed (exit codes -9); rerun the sweep")

    monkeypatch.setattr(sweep_cli, "run_worker_processes", killed)
    spec = _tiny_sweep_spec(tmp_path)
    pairs = "pairs=[{teacher: resnet8, student: resnet8, teacher_run: none}]"
    assert sweep_cli.main([str(spec), "--workers", "2", "--set", pairs, "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == ["error: sweep worker(s) 1 failed (exit codes -9); rerun the sweep"]
    assert (tmp_path / "sweep" / "results.csv").is_file()


def test_an_augkd_teacher_with_inf_in_a_bias_is_named(foreign_state, digits, tmp_path, teacher):
    import torch

    from augkd.training import load_teacher

    saved = torch.load(teacher / "model.pt", weights_only=True)
    saved["model"]["fc.bias"] = saved["model"]["fc.bias"].clone()
    saved["model"]["fc.bias"][3] = float("-inf")
    (tmp_path / "t").mkdir()
    torch.save(saved, tmp_path / "t" / "model.pt")
    with pytest.raises(ValueError, match=r"model.pt: tensor 'fc.bias' holds non-finite values"):
        load_teacher(tmp_path / "t", digits, log=lambda s: None)


# ------------------------------------------------------------------ a real database for studies
def _find_postgres_bin(name: str) -> str | None:
    import glob
    import shutil

    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server for the test: ``AUGKD_TEST_POSTGRES_URL`` if set, else a throwaway
    cluster started with Debian's initdb / pg_ctl (as the ``postgres`` user under root) on a
    Unix socket in a temporary folder; skipped with the reason where neither can be had."""
    import os
    import shutil
    import subprocess
    import tempfile

    given = os.environ.get("AUGKD_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("no PostgreSQL driver: pip install \"augkd[postgres]\" (psycopg)")
    initdb, pg_ctl = _find_postgres_bin("initdb"), _find_postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server (initdb, pg_ctl): apt-get install postgresql "
                    "(.ci/run installs it)")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        as_user = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="augkd-pg-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    if as_user:
        for path in (base, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    base.chmod(0o755)
    log = base / "server.log"
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "augkd",
                        "--no-sync"], check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60",
                        "-o", f"-k {sockets} -c listen_addresses='' -p 5433", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        detail = getattr(err, "stderr", b"") or b""
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL server: {err} {detail.decode()[-300:]}")
    try:
        yield f"postgresql+psycopg://augkd@/postgres?host={sockets}&port=5433"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _worker_pids(parent: int) -> dict[int, int]:
    """``{worker id: pid}`` of the tune workers started by ``parent`` (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.split(")")[-1].split()[1]) == parent and b"--worker-id" in args:
            found[int(args[args.index(b"--worker-id") + 1])] = int(entry.name)
    return found


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_two_tune_workers_on_postgresql_survive_a_killed_worker(teacher, tmp_path,
                                                                postgres_url):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    import optuna
    from optuna.trial import TrialState

    from augkd.tune.search import _retries_of

    out = tmp_path / "pg"
    args = _tune_args(teacher, out, "--epochs", "3", "--trials", "4", "--sampler", "random",
                      "--workers", "2", "--heartbeat", "1", "--storage", postgres_url,
                      "--study-name", f"pg-{os.getpid()}-{time.monotonic_ns()}")
    parent = subprocess.Popen([sys.executable, "-m", "augkd.tune", *args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    killed = None
    while killed is None:
        assert parent.poll() is None and time.monotonic() < deadline, parent.stderr.read()
        workers = _worker_pids(parent.pid)
        started = [p for p in (out / "trials").glob("trial-*/metrics.jsonl")
                   if p.read_text().strip()]
        if started and 1 in workers:
            os.kill(workers[1], signal.SIGKILL)  # mid-trial: its heartbeat stops
            killed = workers[1]
        time.sleep(0.05)
    code = parent.wait(timeout=600)
    err = parent.stderr.read().decode()
    assert code == 1 and "worker(s) 1 failed" in err, err
    assert (out / "trials.csv").is_file()  # what finished, written though a worker died
    # the next run collects the finished study
    from augkd.tune.cli import main as tune_main

    assert tune_main(args) == 0
    study = optuna.load_study(study_name=args[args.index("--study-name") + 1],
                              storage=postgres_url)
    done = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(done) >= 4
    folders = [t.user_attrs["folder"] for t in done]
    assert len(set(folders)) == len(folders)  # each trial once, one folder each
    for stale in study.get_trials(states=(TrialState.FAIL,)):
        assert len(_retries_of(study, stale.number)) <= 1
    summary = json.loads((out / "tune.json").read_text())
    assert summary["complete"] == len(done)


def test_worker_processes_run_a_script_path_once_per_worker_and_name_a_failed_one(tmp_path):
    """A study script under experiments/ is run as ``python script.py ARGS --worker-id I``."""
    from augkd.cli import WorkersFailedError, run_worker_processes

    script = tmp_path / "study.py"
    script.write_text("import sys, pathlib\n"
                      "worker = sys.argv[sys.argv.index('--worker-id') + 1]\n"
                      "pathlib.Path(sys.argv[1], 'w' + worker).write_text(' '.join(sys.argv[1:]))\n"
                      "sys.exit(3 if worker == '1' and len(sys.argv) > 4 else 0)\n")
    run_worker_processes(script, [str(tmp_path)], 2, what="study", rerun="-", cpu_threads=False)
    assert sorted(p.name for p in tmp_path.glob("w*")) == ["w0", "w1"]
    assert (tmp_path / "w1").read_text() == f"{tmp_path} --worker-id 1"
    with pytest.raises(WorkersFailedError, match=r"study worker\(s\) 1 failed \(exit codes 3\); "
                                                 r"run it again"):
        run_worker_processes(script, [str(tmp_path), "fail"], 2, what="study",
                             rerun="run it again", cpu_threads=False)
