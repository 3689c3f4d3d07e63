"""torchvision and timm models under augkd's contract (``tv:NAME``, ``timm:NAME``), their weights,
and ImageNet-1K logits restricted to a dataset's classes. Nothing here downloads: library weights
are only named in error cases, and weights files are written by the tests."""

from __future__ import annotations

import pytest
import torch
import torchvision

from augkd.distill import DistillSetup, FeatureShapes, Step, create_distiller, list_distillers
from augkd.models import MODELS, create_model, load_kd_checkpoint
from augkd.models.class_subset import ClassSubset, class_subset_index
from augkd.models.external import parse_model_spec
from augkd.models.imagenet_classes import IMAGENET1K_WNIDS
from augkd.registry import UnknownNameError

try:
    import timm
except ImportError:  # the GPU machine has no timm
    timm = None
needs_timm = pytest.mark.skipif(timm is None, reason="timm is not installed (pip install timm)")


def fixed(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _check_contract(model, x, channels, sides):
    model.eval()
    out = model(x, features=True)
    assert len(out.stages) == 4
    assert tuple(s.shape[1] for s in out.stages) == model.stage_channels == channels
    assert tuple(s.shape[2] for s in out.stages) == sides
    assert all(bool((s >= 0).all()) for s in out.stages)  # post-ReLU
    assert out.pooled.shape == (x.shape[0], model.feature_dim)
    assert out.logits.shape == (x.shape[0], model.num_classes)
    assert torch.equal(model(x), out.logits)
    return out


# ------------------------------------------------------------------ the contract at 32 px
def test_tv_resnet18_gives_the_contracts_record_and_the_librarys_logits():
    torch.manual_seed(0)
    model = create_model("tv:resnet18", 10, 3)
    x = fixed(2, 3, 32, 32)
    out = _check_contract(model, x, (64, 128, 256, 512), (8, 4, 2, 1))
    # layer1..layer4, the pooled map is the last stage's mean (ResNet: post-ReLU, avgpool + fc)
    assert model.plan.stages == ("layer1.1.relu_1", "layer2.1.relu_1", "layer3.1.relu_1",
                                 "layer4.1.relu_1")
    torch.testing.assert_close(out.pooled, out.stages[-1].mean((2, 3)))
    # the keys are torchvision's, so the library model with these weights computes the same
    reference = torchvision.models.resnet18(num_classes=10).eval()
    reference.load_state_dict(model.net.state_dict())
    torch.testing.assert_close(model(x), reference(x))


@needs_timm
def test_timm_resnet18_gives_the_contracts_record_and_the_librarys_logits():
    model = create_model("timm:resnet18", 10, 3)
    x = fixed(2, 3, 32, 32)
    out = _check_contract(model, x, (64, 128, 256, 512), (8, 4, 2, 1))
    torch.testing.assert_close(out.logits, model.net(x))
    torch.testing.assert_close(out.pooled, out.stages[-1].mean((2, 3)))


@pytest.mark.parametrize("spec, channels", [
    ("tv:mobilenet_v2", (24, 32, 96, 1280)),
    pytest.param("tv:vit_b_16(image_size=32)", (768, 768, 768, 768), marks=pytest.mark.slow),
])
def test_other_tv_families_give_four_rectified_stages(spec, channels):
    model = create_model(spec, 10, 1)  # one input channel: the first conv is rebuilt
    sides = (2, 2, 2, 2) if "vit" in spec else (8, 4, 2, 1)
    _check_contract(model, fixed(2, 1, 32, 32), channels, sides)


@needs_timm
def test_a_timm_vit_gives_its_last_four_blocks_on_the_patch_grid():
    model = create_model("timm:vit_tiny_patch16_224(img_size=32, depth=4)", 10, 3)
    out = _check_contract(model, fixed(2, 3, 32, 32), (192, 192, 192, 192), (2, 2, 2, 2))
    assert out.pooled.shape == (2, 192)  # the class token after the final norm


@needs_timm
def test_timm_imagenet_weights_from_a_file_with_one_channel_and_a_class_subset(tmp_path):
    reference = timm.create_model("resnet18").eval()  # 1000 classes, as ImageNet weights
    path = tmp_path / "timm_in1k.pth"
    torch.save(reference.state_dict(), path)
    grey = create_model(f"timm:resnet18(weights={path}, head=new)", 10, 1).eval()
    assert grey.net.fc.weight.shape == (10, 512)
    torch.testing.assert_close(grey.net.conv1.weight, reference.conv1.weight.sum(1, keepdim=True))
    classes = [IMAGENET1K_WNIDS[0], IMAGENET1K_WNIDS[999]]
    subset = create_model(f"timm:resnet18(weights={path}, head=subset)", 2, classes=classes)
    x = fixed(2, 3, 32, 32)
    torch.testing.assert_close(subset.eval()(x), reference(x)[:, [0, 999]])


def test_swins_channels_last_stages_are_handed_out_as_nchw():
    model = create_model("tv:swin_t", 10, 3)
    out = _check_contract(model, fixed(1, 3, 32, 32), (96, 192, 384, 768), (8, 4, 2, 1))
    assert out.pooled.shape == (1, 768)


# ------------------------------------------------------------------ every distiller
@pytest.mark.slow
def test_every_distiller_runs_on_a_torchvision_student_and_teacher():
    torch.manual_seed(0)
    teacher = create_model("tv:resnet18", 10).eval()
    student = create_model("tv:mobilenet_v2", 10)
    sample = fixed(2, 3, 32, 32)
    setup = DistillSetup(FeatureShapes.probe(student, sample), FeatureShapes.probe(teacher, sample),
                         train_labels=torch.arange(20) % 10, epochs=10)
    x = fixed(4, 3, 32, 32, seed=5)
    step = Step(labels=torch.tensor([0, 1, 2, 3]), index=torch.tensor([0, 1, 2, 3]),
                view="original", epoch=1)
    for method in list_distillers():
        distiller = create_distiller(method, setup)
        seen = x if distiller.base_augmentation() is None else torch.cat(
            [torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
        with torch.no_grad():
            t_out = teacher(seen, features=True)
        loss = distiller(student.train()(seen, features=True), t_out, step)["loss"]
        assert loss.dim() == 0 and bool(torch.isfinite(loss)), method
        loss.backward()


# ------------------------------------------------------------------ weights from a file
def test_weights_from_a_state_dict_file_give_the_library_models_forward(tmp_path):
    reference = torchvision.models.resnet18(num_classes=10).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = create_model(f"tv:resnet18(weights={path})", 10, 3).eval()
    x = fixed(2, 3, 32, 32)
    torch.testing.assert_close(model(x), reference(x))


def test_imagenet_shaped_weights_need_a_head_and_head_new_keeps_the_trunk(tmp_path):
    reference = torchvision.models.resnet18().eval()  # 1000 classes, as ImageNet weights
    path = tmp_path / "in1k.pth"
    torch.save({"model": reference.state_dict()}, path)  # a RepDistiller-style file reads too
    with pytest.raises(ValueError, match=r"1000 classes, the dataset 10; add head=new"):
        create_model(f"tv:resnet18(weights={path})", 10, 3)
    model = create_model(f"tv:resnet18(weights={path}, head=new)", 10, 1).eval()
    assert model.net.fc.weight.shape == (10, 512)
    torch.testing.assert_close(model.net.get_submodule("layer3.0.conv1").weight,
                               reference.layer3[0].conv1.weight)
    # one grey channel: the RGB kernel summed, so a grey image gives the RGB model's features
    grey = fixed(2, 1, 32, 32)
    torch.testing.assert_close(model(grey, features=True).pooled,
                               torch.flatten(reference.avgpool(torch.nn.Sequential(
                                   *list(reference.children())[:-2])(grey.expand(-1, 3, -1, -1))),
                                   1), atol=1e-4, rtol=1e-4)


@needs_timm
def test_timm_weights_from_a_file_give_the_library_models_forward(tmp_path):
    reference = timm.create_model("resnet18", num_classes=10).eval()
    path = tmp_path / "timm_resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = create_model(f"timm:resnet18(weights={path})", 10, 3).eval()
    x = fixed(2, 3, 32, 32)
    torch.testing.assert_close(model(x), reference(x))


def test_a_torchvision_state_dict_loads_as_a_foreign_teacher_with_teacher_model(tmp_path):
    reference = torchvision.models.resnet18(num_classes=10).eval()
    path = tmp_path / "teacher.pth"
    torch.save(reference.state_dict(), path)
    model = load_kd_checkpoint(path, "tv:resnet18", 10, 3)
    x = fixed(2, 3, 32, 32)
    torch.testing.assert_close(model(x), reference(x))
    with pytest.raises(ValueError, match="name the architecture only"):
        load_kd_checkpoint(path, f"tv:resnet18(weights={path})", 10, 3)


def test_an_imagenet_teacher_file_on_a_class_subset_loads_with_head_subset(tmp_path):
    from augkd.models import load_foreign, read_checkpoint_file

    reference = torchvision.models.resnet18().eval()
    path = tmp_path / "in1k_teacher.pth"
    torch.save(reference.state_dict(), path)
    classes = [IMAGENET1K_WNIDS[i] for i in (10, 20, 30)]
    foreign = load_foreign(read_checkpoint_file(path), path, 3, 3,
                           "tv:resnet18(head=subset)", classes=classes)
    x = fixed(2, 3, 32, 32)
    torch.testing.assert_close(foreign.model(x), reference(x)[:, [10, 20, 30]])
    assert foreign.model.mapping == dict(zip(classes, (10, 20, 30), strict=True))


def test_a_missing_weights_file_and_a_wrong_file_stop_by_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file at .*nothing.pth"):
        create_model(f"tv:resnet18(weights={tmp_path}/nothing.pth)", 10)
    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v2(num_classes=10).state_dict(), path)
    with pytest.raises(ValueError, match="not a state_dict of torchvision's resnet18"):
        create_model(f"tv:resnet18(weights={path})", 10)


def test_load_weights_false_builds_the_shapes_without_reading_the_file(tmp_path):
    model = create_model(f"tv:resnet18(weights={tmp_path}/gone.pth, head=new)", 10,
                         load_weights=False)
    assert model.net.fc.weight.shape == (10, 512)


# ------------------------------------------------------------------ ImageNet class subsets
def test_the_wnid_list_is_imagenet1ks_sorted_wnids():
    assert len(IMAGENET1K_WNIDS) == 1000 == len(set(IMAGENET1K_WNIDS))
    assert list(IMAGENET1K_WNIDS) == sorted(IMAGENET1K_WNIDS)
    assert IMAGENET1K_WNIDS[0] == "n01440764" and IMAGENET1K_WNIDS[999] == "n15075141"
    categories = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    assert (categories[0], categories[1], categories[999]) == ("tench", "goldfish",
                                                                "toilet tissue")


@needs_timm
def test_the_wnid_list_is_timms_and_names_torchvisions_categories():
    import os

    info = os.path.join(os.path.dirname(timm.__file__), "data", "_info")
    with open(os.path.join(info, "imagenet_synsets.txt")) as f:
        assert tuple(f.read().split()) == IMAGENET1K_WNIDS
    with open(os.path.join(info, "imagenet_synset_to_lemma.txt")) as f:
        lemmas = dict(line.rstrip("\n").split("\t", 1) for line in f)
    categories = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    differ = [i for i, (w, c) in enumerate(zip(IMAGENET1K_WNIDS, categories, strict=True))
              if c.lower() not in [lemma.strip().lower() for lemma in lemmas[w].split(",")]]
    assert differ == [134, 639]  # torchvision's 'crane bird' and 'maillot tank suit'


def test_class_subset_picks_the_logits_of_the_datasets_classes_by_name():
    torch.manual_seed(0)
    full = create_model("resnet8", 1000).eval()  # a fake ImageNet-1K classifier
    dataset_classes = [IMAGENET1K_WNIDS[5], IMAGENET1K_WNIDS[0], IMAGENET1K_WNIDS[999]]
    subset = ClassSubset(full, IMAGENET1K_WNIDS, dataset_classes).eval()
    x = fixed(2, 3, 32, 32)
    torch.testing.assert_close(subset(x), full(x)[:, [5, 0, 999]])
    out = subset(x, features=True)
    assert out.logits.shape == (2, 3) and subset.num_classes == 3
    torch.testing.assert_close(out.pooled, full(x, features=True).pooled)
    assert subset.mapping == {IMAGENET1K_WNIDS[5]: 5, IMAGENET1K_WNIDS[0]: 0,
                              IMAGENET1K_WNIDS[999]: 999}
    assert subset.state_dict()["class_index"].tolist() == [5, 0, 999]  # saved with the weights


def test_class_subset_index_refuses_unknown_and_repeated_names():
    assert class_subset_index(["a", "b", "c"], ["c", "a"]).tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"1 of the dataset's 2 classes .* 'goldfish'.*wnids"):
        class_subset_index(IMAGENET1K_WNIDS, ["n01440764", "goldfish"])
    with pytest.raises(ValueError, match="dataset's class names are not unique"):
        class_subset_index(["a", "b"], ["a", "a"])


def test_head_subset_through_a_spec_with_the_datasets_classes(tmp_path):
    reference = torchvision.models.resnet18().eval()
    path = tmp_path / "in1k.pth"
    torch.save(reference.state_dict(), path)
    classes = [IMAGENET1K_WNIDS[i] for i in (7, 3)]
    model = create_model(f"tv:resnet18(weights={path}, head=subset)", 2, classes=classes).eval()
    x = fixed(2, 3, 32, 32)
    torch.testing.assert_close(model(x), reference(x)[:, [7, 3]])
    with pytest.raises(ValueError, match="head=subset needs the dataset's class names"):
        create_model(f"tv:resnet18(weights={path}, head=subset)", 2)


# ------------------------------------------------------------------ names and errors
def test_specs_are_model_names_wherever_the_registry_is_asked():
    assert "tv:resnet18" in MODELS and "tv:resnet18(weights=IMAGENET1K_V1)" in MODELS
    assert "tv:resnet19" not in MODELS and "foo:resnet18" not in MODELS
    assert "tv:resnet18" not in MODELS.names()  # listings stay the zoo's
    spec = parse_model_spec("timm:convnext_tiny(weights=fb_in22k, head=new, drop_rate=0.1)")
    assert (spec.source, spec.name, spec.weights, spec.head, spec.kwargs) == (
        "timm", "convnext_tiny", "fb_in22k", "new", {"drop_rate": 0.1})


def test_a_sweep_takes_library_pairs_and_names_their_folders_safely(tmp_path):
    import yaml

    from augkd.sweep.spec import SpecError, load_spec
    from tests.helpers import write_changed_spec

    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    spec = yaml.safe_load((repo / "experiments" / "paper_cifar10.yaml").read_text())
    pairs = [{"teacher": f"tv:resnet18(weights={tmp_path}/w.pth, head=new)",
              "student": "timm:resnet18" if timm is not None else "tv:mobilenet_v2"}]
    sweep = load_spec(write_changed_spec(spec, tmp_path, pairs=pairs))
    keys = {j.key for j in sweep.jobs()}
    teacher_key = next(k for k in keys if k.startswith("teachers/"))
    assert teacher_key.count("/") == 1 and "(" not in teacher_key and ":" not in teacher_key
    assert all(k.split("/")[1] == sweep.pairs[0].name for k in keys if k.startswith("students/"))
    with pytest.raises(SpecError, match="tv:resnet19"):
        load_spec(write_changed_spec(spec, tmp_path, pairs=[{"teacher": "tv:resnet19",
                                                             "student": "resnet8"}]))


def test_a_training_config_accepts_a_library_model():
    from augkd.training import TrainConfig

    TrainConfig(role="teacher", model="tv:resnet18", epochs=1).validate()
    with pytest.raises(UnknownNameError, match="did you mean resnet18"):
        TrainConfig(role="teacher", model="tv:resnet81", epochs=1).validate()


@pytest.mark.parametrize("name, message", [
    ("tv:resnet19", r"unknown torchvision model 'resnet19'.*did you mean resnet18"),
    ("resnet21", r"unknown model 'resnet21'; did you mean .*resnet20.*tv:NAME or timm:NAME"),
    ("foo:resnet18", r"unknown model source 'foo'.*known: tv \(torchvision\), timm"),
    ("tv:resnet18(weights=IMAGENET9K)", r"no weights 'IMAGENET9K' for resnet18; known: DEFAULT, "
                                        r"IMAGENET1K_V1$"),
    # checked before any download: nothing here reaches the network
    ("tv:resnet18(weights=IMAGENET1K_V1)", r"the weights have 1000 classes, the dataset 10; "
                                           r"add head=new"),
    ("tv:resnet18(head=old)", r"bad value head='old'; allowed: new, subset"),
    ("tv:resnet18(head=new)", r"head=new applies to pretrained weights"),
    ("tv:resnet18(num_classes=5)", r"num_classes cannot be set in a model spec"),
    ("tv:resnet18(depth=5)", r"torchvision refused the options \{'depth': 5\}"),
    ("tv:resnet18(", r"malformed model spec"),
])
def test_bad_names_and_options_stop_naming_the_value(name, message):
    with pytest.raises((ValueError, UnknownNameError), match=message):
        create_model(name, 10)


@needs_timm
def test_an_unknown_timm_name_or_tag_gets_close_names():
    with pytest.raises(UnknownNameError, match=r"unknown timm model 'resnet181'.*resnet18"):
        create_model("timm:resnet181", 10)
    with pytest.raises(ValueError, match=r"no pretrained weights 'resnet18.nope'.*a1_in1k"):
        create_model("timm:resnet18(weights=nope)", 10)


# ------------------------------------------------------------------ end to end on digits
@pytest.mark.slow
def test_a_tv_teacher_run_and_kd_and_at_students_of_both_libraries_on_digits(tmp_path):
    """Digits are 8x8 grey, resized to 32 px here (``resize=32``); the first conv takes one
    channel. ResNet-18's maps are 1x1 from layer4 on (from layer2 on at 8 px), where a batch in
    which a channel is constant gives its BatchNorm a zero variance and a gradient of about
    1/sqrt(eps) per such layer: one epoch of such a teacher can end with weights that overflow
    in eval mode (seen: a 1-epoch tv:resnet18 teacher with a NaN test loss). That is the
    network on images far below its design size, not the wrapper (whose forward and backward
    equal torchvision's, tested above), so the students here learn from a zoo teacher and the
    tv teacher run is checked to finish and to be rebuilt from its folder."""
    from augkd.data import load_dataset
    from augkd.training import TrainConfig, load_teacher, train
    from tests.helpers import FAST

    options = {"resize": 32}
    data = load_dataset("digits", **options)
    quiet = {"data": data, "log": lambda s: None}
    tv_cfg = TrainConfig(role="teacher", model="tv:resnet18", epochs=1, lr=0.01,
                         dataset_options=options, **FAST)
    tv_dir = train(tv_cfg, tmp_path / "tv-teacher", **quiet).run_dir
    tv_teacher, manifest = load_teacher(tv_dir, data)  # rebuilt from the recorded spec
    assert manifest["architecture"] == "tv:resnet18" and manifest["in_channels"] == 1
    assert type(tv_teacher).__name__ == "TorchvisionModel"

    zoo_cfg = TrainConfig(role="teacher", model="resnet8", epochs=2, dataset_options=options,
                          **FAST)
    zoo_dir = train(zoo_cfg, tmp_path / "zoo-teacher", **quiet).run_dir
    student = "timm:resnet18" if timm is not None else "tv:mobilenet_v2"
    for model, method in (("tv:resnet18", "kd"), (student, "at")):
        cfg = TrainConfig(role="student", model=model, teacher=str(zoo_dir), distill=method,
                          balancer="manual", epochs=1, lr=0.01, dataset_options=options, **FAST)
        result = train(cfg, tmp_path / f"student-{method}", **quiet)
        assert 0 <= result.summary["last"]["test_top1"] <= 100
        assert result.summary["model"] == model



@pytest.mark.slow
def test_a_run_rebuilds_from_its_folder_without_the_specs_weights_file(tmp_path, digits):
    """model.pt holds every weight of a run: rebuilding its model (a teacher, a scorer) does
    not read the spec's weights again, so the file may be gone; the manifest records the
    dataset's class names (what head=subset picks logits by)."""
    import torch

    from augkd.training import TrainConfig, load_teacher, train

    weights = tmp_path / "in1k.pth"
    torch.save(torchvision.models.resnet18(num_classes=1000).state_dict(), weights)
    cfg = TrainConfig(role="teacher", model=f"tv:resnet18(weights={weights}, head=new)",
                      epochs=1, dataset="digits", batch_size=64, device="cpu", progress=False,
                      lr=0.01)
    run = train(cfg, tmp_path / "run", data=digits, log=lambda s: None).run_dir
    weights.unlink()
    model, manifest = load_teacher(run, digits, torch.device("cpu"))
    assert manifest["classes"] == list(digits.classes)
    state = torch.load(run / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
