"""External DAs by spec: kornia, albumentations and user classes follow the augkd DA contract."""

from __future__ import annotations

import random
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from augkd.augment import Augmentation, create, external, list_augmentations, spec_of
from augkd.registry import UnknownNameError

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

NOISE = "kornia:RandomGaussianNoise(std=0.05, p=1.0)"
GRID = "albumentations:GridDistortion(p=1.0)"
CONTRACT_SPECS = (
    NOISE,
    "kornia:RandomGaussianNoise(std=0.05, p=1.0) | RandomAffine(degrees=15, p=1.0)",
    "kornia:RandomAffine(degrees=15, translate=(0.1, 0.1), p=1.0)",
    GRID,
    "albumentations(workers=2):GridDistortion(p=1.0) | HorizontalFlip",
)


def gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def random_images(b: int = 3, c: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=gen(seed))


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write the template of docs/augmentations.md, plus two contract breakers, into an
    importable module; return the module's name."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "augmentations.md").read_text()
    start = doc.index("```python\n", doc.index("A user\nDA, e.g. in `my_package/my_module.py`"))
    lines = doc[start:].split("\n")[1:]
    lines = lines[:lines.index("```")]
    extra = '''

class Forgetful(Augmentation):
    def __init__(self, *, strength: int = 1) -> None:
        super().__init__()

    def sample(self, shape, device, generator):
        return None

    def apply(self, images, params):
        return AugmentOutput(images=images)


class Unfinished(Augmentation):
    pass


def not_a_class(**kwargs):
    return None
'''
    (tmp_path / "augkd_test_user_da.py").write_text(textwrap.dedent("\n".join(lines)) + extra)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "augkd_test_user_da", raising=False)
    return "augkd_test_user_da"


# -------------------------------------------------------------------------------- contract


@pytest.mark.parametrize("spec", CONTRACT_SPECS)
@pytest.mark.parametrize("channels", [3, 1])
def test_uint8_shape_device_contract_in_color_and_grayscale(spec: str, channels: int) -> None:
    images = random_images(c=channels)
    before = images.clone()
    out = create(spec)(images, gen(0))
    assert out.images.dtype == torch.uint8
    assert out.images.shape == images.shape and out.images.device == images.device
    assert out.mix is None and out.erased is None
    assert torch.equal(images, before)  # DAs never write their input


@pytest.mark.parametrize("spec", [NOISE, GRID])
def test_same_seed_same_output_different_seed_different(spec: str) -> None:
    aug, images = create(spec), random_images()
    first = aug(images, gen(1)).images
    assert torch.equal(first, aug(images, gen(1)).images)
    assert not torch.equal(first, aug(images, gen(2)).images)
    assert not torch.equal(first, images)


def test_kornia_leaves_the_global_torch_rng_untouched() -> None:
    aug, images = create(NOISE + " | RandomAffine(degrees=15, p=0.5)"), random_images()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    aug(images, gen(0))
    assert torch.equal(torch.get_rng_state(), state)


def test_albumentations_leaves_numpy_and_python_rngs_untouched() -> None:
    aug = create("albumentations:GridDistortion(p=1.0) | HorizontalFlip")
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()
    aug(random_images(), gen(0))
    assert np.array_equal(np.random.get_state()[1], np_state) and random.getstate() == py_state


def test_kornia_draws_per_image_and_same_on_batch_is_per_batch() -> None:
    same = random_images(b=1).expand(4, 3, 16, 16).contiguous()  # four copies of one image
    per_image = create("kornia:RandomAffine(degrees=30, p=1.0)")(same, gen(0)).images
    assert len({tuple(img.flatten().tolist()) for img in per_image}) > 1
    aug = create("kornia:RandomAffine(degrees=30, p=1.0)", per_batch=True)
    assert aug.per_batch
    assert spec_of(aug) == "kornia:RandomAffine(degrees=30, p=1.0, same_on_batch=true)"
    shared = aug(same, gen(0)).images
    assert all(torch.equal(img, shared[0]) for img in shared)
    assert not create(spec_of(aug), per_batch=False).per_batch


def test_albumentations_workers_do_not_change_the_result() -> None:
    images = random_images(b=5)
    serial = create(GRID)(images, gen(3)).images
    assert torch.equal(serial, create("albumentations(workers=3):GridDistortion(p=1.0)")(
        images, gen(3)).images)


# -------------------------------------------------------------------------------- oracles


@pytest.mark.parametrize("channels", [3, 1])
def test_kornia_horizontal_flip_equals_torch_flip(channels: int) -> None:
    images = random_images(c=channels)
    out = create("kornia:RandomHorizontalFlip(p=1.0)")(images, gen(0)).images
    assert torch.equal(out, images.flip(-1))  # exact: uint8 -> [0, 1] -> uint8 is lossless


@pytest.mark.parametrize("channels", [3, 1])
def test_albumentations_horizontal_flip_equals_numpy_flip(channels: int) -> None:
    images = random_images(c=channels)
    out = create("albumentations:HorizontalFlip(p=1.0)")(images, gen(0)).images
    for got, image in zip(out, images, strict=True):
        hwc = image.permute(1, 2, 0).numpy()
        assert np.array_equal(got.permute(1, 2, 0).numpy(), np.flip(hwc, axis=1))


# ---------------------------------------------------------------------------- user classes


def test_user_augmentation_by_module_path(user_module: str) -> None:
    spec = f"{user_module}:MyAugmentation(strength=3)"
    aug = create(spec)
    assert isinstance(aug, Augmentation) and aug.strength == 3
    assert spec_of(aug) == spec == str(aug)
    images = random_images()
    out = aug(images, gen(0)).images
    assert out.dtype == torch.uint8 and out.shape == images.shape
    shift = out.to(torch.int16) - images.to(torch.int16)
    inside = (images > 3) & (images < 252)  # not clipped: the shift is exact there
    assert (shift.abs() <= 3).all() and torch.equal(out, aug(images, gen(0)).images)
    for i in range(len(images)):
        assert len(set(shift[i][inside[i]].tolist())) == 1  # one shift per image
    assert spec_of(create(f"{user_module}:MyAugmentation")) == f"{user_module}:MyAugmentation"
    shared = create(spec, per_batch=True)
    assert shared.per_batch
    assert spec_of(shared) == f"{user_module}:MyAugmentation(strength=3, per_batch=true)"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("Missing", "no 'Missing' in module"),
        ("not_a_class", "is not a subclass of augkd.augment.base.Augmentation"),
        ("Unfinished", "breaks the augkd DA contract"),
        ("Forgetful(strength=2)", "is not stored as the attribute 'strength'"),
        ("MyAugmentation(strenght=2)", "parameter 'strenght'; allowed: strength, per_batch"),
        ("MyAugmentation(strength=high)", "bad value strength='high'"),
    ],
)
def test_user_augmentation_errors(user_module: str, body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create(f"{user_module}:{body}")


def test_user_class_without_per_batch_refuses_per_batch_mode(user_module: str) -> None:
    with pytest.raises(ValueError, match="draws per image"):
        create(f"{user_module}:Forgetful", per_batch=True)


# -------------------------------------------------------------------------------- errors


def test_unknown_kornia_class_names_it_and_kornia_augmentation() -> None:
    with pytest.raises(UnknownNameError, match=r"no 'RandomGausianNoise' in kornia\.augmentation"
                       r"; did you mean RandomGaussianNoise"):
        create("kornia:RandomGausianNoise(std=0.05)")


def test_unknown_module_is_named() -> None:
    with pytest.raises(UnknownNameError, match="cannot import module 'no_such_package.da'"):
        create("no_such_package.da:MyAugmentation(strength=3)")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("albumentations:HorizontalFlip(p=1.0)", "albumentations draws per image"),
        ("kornia:CenterCrop(size=8)", "CenterCrop has none: kornia draws .* per image"),
    ],
)
def test_per_batch_is_refused_where_the_library_draws_per_image(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        create(spec, per_batch=True)
    assert spec in str(err.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("kornia:RandomAffine(degres=15)", "kornia:RandomAffine: unknown parameter 'degres'"),
        ("albumentations:GridDistortion(foo=1)", "unknown parameter 'foo'"),
        ("kornia:RandomAffine(15)", "takes key=value only"),
        ("kornia:RandomAffine(degrees=abs(15))", "'abs\\(15\\)' is not a literal"),
        ("kornia:RandomAffine(degrees=15, degrees=3)", "'degrees' given twice"),
        ("kornia:RandomAffine(degrees=15) |", "malformed augmentation spec"),
        ("kornia:RandomMixUpV2", "use augkd's mixup or cutmix"),
        ("kornia:RandomAffine(degrees=-15)", "kornia:RandomAffine: .*non negative"),
        ("albumentations(workers=-1):HorizontalFlip", "bad value workers=-1"),
        ("albumentations(threads=2):HorizontalFlip", "unknown option 'threads'"),
        ("kornia.augmentation:RandomAffine(degrees=15)", "write kornia:RandomAffine"),
    ],
)
def test_bad_external_specs_fail_with_a_named_message(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create(spec)


def test_a_library_error_at_call_time_names_the_spec() -> None:
    aug = create("albumentations:Normalize")  # float output breaks the uint8 contract
    with pytest.raises(ValueError, match="albumentations:Normalize: returned float32"):
        aug(random_images(), gen(0))


# -------------------------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        (NOISE, NOISE),
        ("kornia:RandomGaussianNoise(std=0.05, p=1.0)|RandomAffine( degrees = 15, p=1.0 )",
         "kornia:RandomGaussianNoise(std=0.05, p=1.0) | RandomAffine(degrees=15, p=1.0)"),
        ("kornia:RandomAffine(degrees=15, translate=(0.1, 0.1))",
         "kornia:RandomAffine(degrees=15, translate=(0.1, 0.1))"),
        ("kornia:RandomAffine(degrees=15, padding_mode='reflection', same_on_batch=True)",
         "kornia:RandomAffine(degrees=15, padding_mode=reflection, same_on_batch=true)"),
        ("kornia:RandomHorizontalFlip", "kornia:RandomHorizontalFlip"),
        ("kornia:auto.AutoAugment(policy=cifar10)", "kornia:auto.AutoAugment(policy=cifar10)"),
        (GRID, GRID),
        ("albumentations ( workers=2 ) : HorizontalFlip(p=1.0)",
         "albumentations(workers=2):HorizontalFlip(p=1.0)"),
    ],
)
def test_spec_of_round_trips(spec: str, canonical: str) -> None:
    aug = create(spec)
    assert spec_of(aug) == canonical == str(aug)
    assert spec_of(create(canonical)) == canonical


def test_literal_format_round_trips() -> None:
    for value in (True, None, 0.5, -3, "a b", "none", "1", (1,), (0.1, "x"), [1, 2]):
        text = external.format_literal(value)
        parsed = external.parse_external_spec(f"m:C(v={text})").stages[0].kwargs["v"]
        assert parsed == value and type(parsed) is type(value)


def test_external_forms_are_listed_and_built_in_specs_are_not_external() -> None:
    assert list_augmentations()[-3:] == list(external.EXTERNAL_FORMS)
    for spec in ("crop+flip", "cutout(size=8)", "autoaugment(policy=cifar10)"):
        assert not external.is_external_spec(spec)


# ---------------------------------------------------------------------------------- device


@CUDA
@pytest.mark.parametrize("spec", [NOISE, GRID])
def test_on_cuda_outputs_stay_on_the_device_repeat_and_leave_the_global_rng(spec: str) -> None:
    images = random_images().cuda()
    aug = create(spec)
    torch.manual_seed(5)
    cpu_state, cuda_state = torch.get_rng_state(), torch.cuda.get_rng_state()
    first = aug(images, gen(1, "cuda")).images
    assert first.device == images.device and first.dtype == torch.uint8
    assert torch.equal(first, aug(images, gen(1, "cuda")).images)
    assert not torch.equal(first, aug(images, gen(2, "cuda")).images)
    assert torch.equal(torch.get_rng_state(), cpu_state)
    assert torch.equal(torch.cuda.get_rng_state(), cuda_state)
