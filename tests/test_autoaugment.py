"""Batched AutoAugment / RandAugment / TrivialAugment against torchvision's per-image kernels.

The oracle is ``torchvision.transforms.autoaugment._apply_op`` (the functional kernels with the
arguments AutoAugment uses) applied image by image, with torchvision's own magnitude tables.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms import autoaugment as tv_aa

from augkd.augment import create
from augkd.augment import ops as batched_ops
from augkd.augment.autoaugment import (
    POLICIES,
    WIDE_OPS,
    AutoAugment,
    OpChainParams,
    RandAugment,
    TrivialAugment,
    magnitude_table,
)
from augkd.augment.ops import OPS_BY_NAME, SIGNED_OPS, Op, apply_ops

NAME_OF = {op: name for name, op in OPS_BY_NAME.items()}
BLEND_OPS = {Op.BRIGHTNESS, Op.COLOR, Op.CONTRAST, Op.SHARPNESS}
DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
    ),
]
# Named single-op functions of augkd.augment.ops, by op.
NAMED = {
    Op.SHEAR_X: batched_ops.shear_x,
    Op.SHEAR_Y: batched_ops.shear_y,
    Op.TRANSLATE_X: batched_ops.translate_x,
    Op.TRANSLATE_Y: batched_ops.translate_y,
    Op.ROTATE: batched_ops.rotate,
    Op.BRIGHTNESS: batched_ops.brightness,
    Op.COLOR: batched_ops.color,
    Op.CONTRAST: batched_ops.contrast,
    Op.SHARPNESS: batched_ops.sharpness,
    Op.POSTERIZE: batched_ops.posterize,
    Op.SOLARIZE: batched_ops.solarize,
}


def make_images(channels: int, size: int, seed: int = 0) -> Tensor:
    """8 uint8 images [8, C, size, size]: 3 smooth gradients plus noise, 3 uniform noise,
    1 constant (the degenerate case of autocontrast and equalize), 1 with two levels."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    natural = []
    for _ in range(3):
        a = torch.rand(channels, 3, 1, 1, generator=g)
        smooth = a[:, 0] * 220 * xs + a[:, 1] * 160 * ys + a[:, 2] * 60
        noisy = smooth + 10 * torch.randn(channels, size, size, generator=g)
        natural.append(noisy.clamp(0, 255).round().to(torch.uint8))
    noise = torch.randint(0, 256, (3, channels, size, size), generator=g, dtype=torch.uint8)
    constant = torch.full((1, channels, size, size), 97, dtype=torch.uint8)
    two_levels = torch.full((1, channels, size, size), 40, dtype=torch.uint8)
    two_levels[..., : size // 3, :] = 200
    return torch.cat([torch.stack(natural), noise, constant, two_levels])


def tv_space(kind: str, bins: int, height: int, width: int) -> dict[str, tuple[Tensor, bool]]:
    """torchvision's own (magnitudes, signed) table of an augmentation kind."""
    if kind == "autoaugment":
        return tv_aa.AutoAugment()._augmentation_space(bins, (height, width))
    if kind == "randaugment":
        return tv_aa.RandAugment(num_magnitude_bins=bins)._augmentation_space(bins, (height, width))
    return tv_aa.TrivialAugmentWide(num_magnitude_bins=bins)._augmentation_space(bins)


def tv_magnitude(space: dict, name: str, level: int, negate: bool) -> float:
    """The magnitude torchvision's transforms pass to _apply_op."""
    magnitudes, signed = space.get(name, (torch.tensor(0.0), False))
    value = float(magnitudes[level].item()) if magnitudes.ndim > 0 else 0.0
    return -value if signed and negate else value


def tv_op(image: Tensor, name: str, magnitude: float) -> Tensor:
    return tv_aa._apply_op(image, name, magnitude, InterpolationMode.NEAREST, None)


def check_close(ours: Tensor, ref: Tensor, op: Op, label: str) -> None:
    """Exact for integer ops; blend ops may differ by one level on rare pixels (float rounding)."""
    diff = (ours.int() - ref.int()).abs()
    differing = int((diff > 0).sum())
    if op in BLEND_OPS:
        print(f"{label}: {differing} of {diff.numel()} pixels differ from torchvision")
        assert int(diff.max()) <= 1, label
        assert differing <= diff.numel() // 100, label
    else:
        assert differing == 0, f"{label}: {differing} pixels differ, max {int(diff.max())}"


# --- single ops, every magnitude bin ---------------------------------------------------------


@pytest.mark.parametrize("channels,size", [(3, 32), (1, 8)])
@pytest.mark.parametrize("op", list(Op), ids=lambda op: NAME_OF[op])
def test_op_matches_torchvision_at_every_autoaugment_bin(op: Op, channels: int, size: int) -> None:
    images = make_images(channels, size)
    space = tv_space("autoaugment", 10, size, size)
    has_levels = NAME_OF[op] in space and space[NAME_OF[op]][0].ndim > 0
    combos = [
        (level, negate)
        for level in (range(10) if has_levels else [0])
        for negate in ((False, True) if op in SIGNED_OPS else (False,))
    ]
    batch = images.repeat(len(combos), 1, 1, 1)
    magnitudes = [tv_magnitude(space, NAME_OF[op], lv, ng) for lv, ng in combos]
    per_image = torch.tensor(magnitudes).repeat_interleave(len(images))
    ours = apply_ops(batch, torch.full((len(batch),), int(op)), per_image)
    ref = torch.stack(
        [tv_op(im, NAME_OF[op], float(m)) for im, m in zip(batch, per_image, strict=True)]
    )
    check_close(ours, ref, op, f"{NAME_OF[op]} {channels}x{size}x{size}")
    if op in NAMED:  # the single-op function is the same computation
        assert torch.equal(NAMED[op](batch, per_image), ours)


@pytest.mark.parametrize(
    "op", [Op.SHEAR_X, Op.SHEAR_Y, Op.TRANSLATE_X, Op.ROTATE, Op.SHARPNESS, Op.POSTERIZE]
)
def test_op_matches_torchvision_on_the_trivialaugment_wide_table(op: Op) -> None:
    """Large shears (0.99), rotations (135 deg) and translations (32 px) of TrivialAugmentWide."""
    images = make_images(3, 32)[[0, 3]]
    space = tv_space("trivialaugment", 31, 32, 32)
    signs = (False, True) if op in SIGNED_OPS else (False,)
    combos = [(level, negate) for level in range(31) for negate in signs]
    batch = images.repeat(len(combos), 1, 1, 1)
    magnitudes = [tv_magnitude(space, NAME_OF[op], lv, ng) for lv, ng in combos]
    per_image = torch.tensor(magnitudes).repeat_interleave(len(images))
    ours = apply_ops(batch, torch.full((len(batch),), int(op)), per_image)
    ref = torch.stack(
        [tv_op(im, NAME_OF[op], float(m)) for im, m in zip(batch, per_image, strict=True)]
    )
    check_close(ours, ref, op, f"wide {NAME_OF[op]}")


def test_mixed_ops_per_image_and_unselected_images_untouched() -> None:
    images = make_images(3, 16).repeat(4, 1, 1, 1)  # 32 images
    g = torch.Generator().manual_seed(3)
    op = torch.randint(len(Op), (len(images),), generator=g)
    op[:4] = Op.IDENTITY
    magnitude = torch.rand(len(images), generator=g) * 0.8
    magnitude = torch.where(op == Op.POSTERIZE, 5.0, magnitude)
    magnitude = torch.where(op == Op.SOLARIZE, 128.0, magnitude)
    magnitude = torch.where((op >= Op.TRANSLATE_X) & (op <= Op.ROTATE), 5.5, magnitude)
    ours = apply_ops(images, op, magnitude)
    assert torch.equal(ours[:4], images[:4])
    for i in range(len(images)):
        ref = tv_op(images[i], NAME_OF[Op(int(op[i]))], float(magnitude[i]))
        check_close(ours[i], ref, Op(int(op[i])), f"image {i}")
    # an op left out of `possible` leaves its images unchanged
    hinted = apply_ops(images, op, magnitude, possible={Op.INVERT})
    assert torch.equal(hinted[op != Op.INVERT], images[op != Op.INVERT])
    assert torch.equal(hinted[op == Op.INVERT], 255 - images[op == Op.INVERT])


# --- magnitude tables ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,bins", [("autoaugment", 10), ("randaugment", 31), ("trivialaugment", 31)]
)
@pytest.mark.parametrize("height,width", [(32, 32), (64, 64), (24, 40)])
def test_magnitude_tables_match_torchvision(kind: str, bins: int, height: int, width: int) -> None:
    table = magnitude_table(bins, height, width, wide=kind == "trivialaugment")
    for name, (magnitudes, signed) in tv_space(kind, bins, height, width).items():
        op = OPS_BY_NAME[name]
        assert signed == (op in SIGNED_OPS), name
        expected = magnitudes.float() if magnitudes.ndim > 0 else torch.zeros(bins)
        assert torch.equal(table[op], expected), name


# --- full policies -----------------------------------------------------------------------------


def chain_oracle(images: Tensor, params: OpChainParams, space: dict) -> Tensor:
    """torchvision's composition of each image's op chain, image by image, on its device."""
    out = []
    for i, image in enumerate(images):
        for k in range(params.op.shape[1]):
            if bool(params.fire[i, k]):
                name = NAME_OF[Op(int(params.op[i, k]))]
                level, negate = int(params.level[i, k]), bool(params.negate[i, k])
                image = tv_op(image, name, tv_magnitude(space, name, level, negate))
        out.append(image)
    return torch.stack(out)


def assert_chain_matches(ours: Tensor, ref: Tensor) -> None:
    diff = (ours.int() - ref.int()).abs()
    # blends of a chain may differ by one level on rare pixels, which a later op can move
    # around (e.g. a posterize bit); anything systematic would change many pixels
    print(f"chain: {int((diff > 0).sum())} of {diff.numel()} pixels differ from torchvision")
    assert int((diff > 0).sum()) <= diff.numel() // 1000


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "policy,channels,size",
    [("cifar10", 3, 32), ("cifar10", 1, 8), ("imagenet", 3, 64), ("svhn", 3, 32)],
)
def test_autoaugment_forced_sub_policies_match_torchvision(
    policy: str, channels: int, size: int, device: str
) -> None:
    aug = AutoAugment(policy=policy)
    images = make_images(channels, size, seed=1).repeat(7, 1, 1, 1)[:50].to(device)
    g = torch.Generator().manual_seed(5)
    sub_policy = torch.arange(50) % 25  # every sub-policy, twice
    fire = torch.rand(50, 2, generator=g) < 0.75
    negate = torch.rand(50, 2, generator=g) < 0.5
    params = aug.params_for(sub_policy.to(device), fire.to(device), negate.to(device))
    for i in range(50):  # the forced ops are the sub-policy's, by torchvision's table
        tv_policy = tv_aa.AutoAugment(tv_aa.AutoAugmentPolicy(policy)).policies[i % 25]
        assert [NAME_OF[Op(int(o))] for o in params.op[i]] == [tv_policy[0][0], tv_policy[1][0]]
        assert [int(lv) for lv in params.level[i]] == [t[2] or 0 for t in tv_policy]
    ours = aug.apply(images, params).images
    assert ours.device == images.device and ours.dtype == torch.uint8
    assert_chain_matches(
        ours, chain_oracle(images, params, tv_space("autoaugment", 10, size, size))
    )


@pytest.mark.parametrize("seed", range(12))
def test_autoaugment_per_batch_is_torchvision_autoaugment_on_the_batch(seed: int) -> None:
    """Same seed, same draws: per_batch=True reproduces torchvision's transform of a batch."""
    images = make_images(3, 32, seed=seed)
    ours = AutoAugment(policy="cifar10", per_batch=True)(
        images, torch.Generator().manual_seed(seed)
    ).images
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        ref = tv_aa.AutoAugment(tv_aa.AutoAugmentPolicy.CIFAR10)(images)
    assert_chain_matches(ours, ref)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "aug,kind,bins",
    [
        (RandAugment(), "randaugment", 31),
        (RandAugment(num_ops=3, magnitude=20, num_magnitude_bins=25), "randaugment", 25),
        (TrivialAugment(), "trivialaugment", 31),
    ],
    ids=["randaugment", "randaugment-3ops", "trivialaugment"],
)
def test_rand_and_trivial_augment_match_torchvision(aug, kind: str, bins: int, device: str) -> None:
    images = make_images(3, 32, seed=2).repeat(6, 1, 1, 1).to(device)
    params = aug.sample(images.shape, images.device, torch.Generator(device).manual_seed(0))
    ours = aug.apply(images, params).images
    assert_chain_matches(ours, chain_oracle(images, params, tv_space(kind, bins, 32, 32)))


# --- randomness --------------------------------------------------------------------------------

AUGS = {
    "autoaugment": AutoAugment,
    "randaugment": RandAugment,
    "trivialaugment": TrivialAugment,
}


@pytest.mark.parametrize("name", list(AUGS))
def test_per_image_randomness_and_per_batch_sharing(name: str) -> None:
    images = make_images(3, 32)[:1].repeat(64, 1, 1, 1)
    out = AUGS[name]()(images, torch.Generator().manual_seed(0)).images
    assert len({bytes(o.flatten().tolist()) for o in out}) > 8
    shared = AUGS[name](per_batch=True)
    for seed in range(5):
        out = shared(images, torch.Generator().manual_seed(seed)).images
        assert torch.equal(out, out[:1].expand_as(out))


@pytest.mark.parametrize("name", list(AUGS))
def test_same_seed_same_output(name: str) -> None:
    images = make_images(3, 32).repeat(4, 1, 1, 1)
    aug = AUGS[name]()
    first = aug(images, torch.Generator().manual_seed(7)).images
    again = aug(images, torch.Generator().manual_seed(7)).images
    other = aug(images, torch.Generator().manual_seed(8)).images
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    params = aug.sample(images.shape, images.device, torch.Generator().manual_seed(7))
    assert torch.equal(aug.apply(images, params).images, first)  # apply is deterministic
    assert torch.equal(aug.apply(images, params).images, first)


def test_sub_policies_uniform_and_ops_fire_with_their_probability() -> None:
    aug = AutoAugment(policy="cifar10")
    params = aug.sample(
        torch.Size([20000, 3, 32, 32]), torch.device("cpu"), torch.Generator().manual_seed(0)
    )
    counts = torch.bincount(params.sub_policy, minlength=25)
    assert len(counts) == 25 and int(counts.min()) > 0
    probs = torch.tensor([[o[1] for o in sp] for sp in POLICIES["cifar10"]])
    for s in range(25):
        rate = params.fire[params.sub_policy == s].float().mean(dim=0)
        assert torch.allclose(rate, probs[s], atol=0.1), s
    assert abs(params.negate.float().mean().item() - 0.5) < 0.02


def test_randaugment_and_trivialaugment_draw_every_op_and_bin() -> None:
    shape, cpu = torch.Size([5000, 3, 32, 32]), torch.device("cpu")
    ra = RandAugment(num_ops=2, magnitude=4).sample(shape, cpu, torch.Generator().manual_seed(0))
    assert set(ra.op.flatten().tolist()) == {int(op) for op in WIDE_OPS}
    assert bool((ra.level == 4).all()) and bool(ra.fire.all())
    ta = TrivialAugment().sample(shape, cpu, torch.Generator().manual_seed(0))
    assert ta.op.shape == (5000, 1)
    assert set(ta.op.flatten().tolist()) == {int(op) for op in WIDE_OPS}
    assert set(ta.level.flatten().tolist()) == set(range(31))


# --- construction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: AutoAugment(policy="cifar100"), "policy must be one of cifar10, imagenet, svhn"),
        (lambda: RandAugment(num_ops=0), "num_ops must be an integer in [1, 16], got 0"),
        (lambda: RandAugment(magnitude=31), "magnitude must be an integer in [0, 30], got 31"),
        (lambda: RandAugment(magnitude=3, num_magnitude_bins=3), "in [0, 2], got 3"),
        (lambda: RandAugment(num_ops=True), "num_ops must be an integer in [1, 16], got True"),
        (lambda: TrivialAugment(num_magnitude_bins=1), "num_magnitude_bins must be an integer"),
    ],
)
def test_invalid_parameters(build, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build()


def test_channels_checked() -> None:
    with pytest.raises(ValueError, match="1 or 3 channels"):
        AutoAugment()(torch.zeros(2, 4, 8, 8, dtype=torch.uint8))


def test_specs_build_the_augmentations() -> None:
    aug = create("autoaugment(policy=svhn, per_batch=true)")
    assert isinstance(aug, AutoAugment) and aug.policy == "svhn" and aug.per_batch
    assert str(create("autoaugment")) == "autoaugment"
    ra = create("randaugment(num_ops=3, magnitude=5)")
    assert isinstance(ra, RandAugment) and (ra.num_ops, ra.magnitude) == (3, 5)
    assert str(create("trivialaugment(num_magnitude_bins=11)")) == (
        "trivialaugment(num_magnitude_bins=11)"
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_call_has_no_host_sync() -> None:
    images = make_images(3, 32).repeat(8, 1, 1, 1).cuda()
    for aug in (AutoAugment(), RandAugment(), TrivialAugment()):
        g = torch.Generator("cuda").manual_seed(0)
        aug(images, g)  # first call fills the per-device table caches
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            aug(images, g)
        finally:
            torch.cuda.set_sync_debug_mode("default")
