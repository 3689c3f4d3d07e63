"""Behaviour of the augmentation library: maths of each DA, randomness, specs, scorers, views."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from augkd.augment import (
    AUGMENTATIONS,
    PAPER_DAS,
    Augmentation,
    AugmentOutput,
    CropParams,
    CutMixPick,
    CutoutParams,
    Normalize,
    ViewPipeline,
    create,
    entropy_scorer,
    kl_scorer,
    list_augmentations,
    make_scorer,
    parse_spec,
    spec_of,
)
from augkd.augment.mixing import cutmix_pixels, sample_derangement
from augkd.registry import UnknownNameError

MEAN = (0.5071, 0.4867, 0.4408)
STD = (0.2675, 0.2565, 0.2761)
FAST = settings(max_examples=12, deadline=None)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_images(b: int, h: int = 16, w: int = 16, c: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=gen(seed))


def brightness(images: torch.Tensor) -> torch.Tensor:
    """A model-free scorer: mean pixel value, float32 [N]."""
    return images.float().mean(dim=(1, 2, 3))


def run(aug: Augmentation, images: torch.Tensor, seed: int = 0) -> AugmentOutput:
    """Call ``aug`` with a seeded generator, giving pick DAs a scorer."""
    if aug.needs_scorer:
        return aug(images, gen(seed), scorer=brightness)
    return aug(images, gen(seed))


def constant_images(b: int, h: int, w: int) -> torch.Tensor:
    """Image i is filled with the value 3 i + 1 + channel, so a pixel names its source image."""
    values = torch.arange(b)[:, None] * 3 + 1 + torch.arange(3)[None, :]
    return values.to(torch.uint8)[:, :, None, None].expand(b, 3, h, w).contiguous()


# ---------------------------------------------------------------------------------- registry


def test_every_paper_da_is_registered_and_round_trips() -> None:
    names = list_augmentations()
    for spec in PAPER_DAS:
        assert spec in names
        assert spec_of(create(spec)) == spec
    assert PAPER_DAS[0] == "identity" and PAPER_DAS[-2:] == ("cutmixpick-t", "cutmixpick-s")
    assert len(PAPER_DAS) == 9


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
@FAST
@given(
    b=st.integers(1, 5),
    h=st.integers(8, 20),
    w=st.integers(8, 20),
    per_batch=st.booleans(),
)
@example(b=2, h=8, w=8, per_batch=False)
@example(b=3, h=8, w=16, per_batch=True)
def test_shape_dtype_device_preserved(name: str, b: int, h: int, w: int, per_batch: bool) -> None:
    aug = AUGMENTATIONS.get(name)(per_batch=per_batch)
    images = random_images(b, h, w)
    before = images.clone()
    out = run(aug, images)
    assert out.images.shape == images.shape
    assert out.images.dtype == torch.uint8
    assert out.images.device == images.device
    assert torch.equal(images, before), "a DA wrote into its input"
    if out.mix is not None:
        assert out.mix.partner.shape == (b,) and out.mix.partner.dtype == torch.int64
        assert out.mix.lam.shape == (b,) and out.mix.lam.dtype == torch.float32
        assert bool(((out.mix.lam >= 0) & (out.mix.lam <= 1)).all())
    if out.erased is not None:
        assert out.erased.shape == (b, 1, h, w) and out.erased.dtype == torch.bool


@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_same_seed_same_output(name: str) -> None:
    aug = AUGMENTATIONS.get(name)()
    images = random_images(8)
    first, again = run(aug, images, seed=5), run(aug, images, seed=5)
    assert torch.equal(first.images, again.images)
    if name != "identity":
        others = [run(aug, images, seed=s).images for s in range(6, 10)]
        assert any(not torch.equal(first.images, o) for o in others)


def _all_equal(batch: torch.Tensor) -> bool:
    return bool((batch == batch[:1]).all())


@pytest.mark.parametrize("name", [n for n in AUGMENTATIONS.names() if n != "identity"])
def test_per_image_randomness_and_per_batch_sharing(name: str) -> None:
    cls = AUGMENTATIONS.get(name)
    probe = run(cls(), random_images(4))
    if probe.mix is None:
        # A batch of one image repeated: per-image draws make the copies differ.
        same = random_images(1, seed=3).expand(16, 3, 16, 16).contiguous()
        assert not _all_equal(run(cls(), same, seed=1).images)
        for seed in range(3):
            assert _all_equal(run(cls(per_batch=True), same, seed=seed).images)
    else:
        # Mixing identical images is invisible; the record shows the per-image draws.
        images = random_images(16, seed=3)
        assert len(torch.unique(run(cls(), images, seed=1).mix.lam)) > 1
        shared = run(cls(per_batch=True), images, seed=1).mix.lam
        pool_batches = getattr(cls(), "k", 1)  # CutMixPick mixes k independently drawn batches
        assert len(torch.unique(shared)) <= pool_batches


# ----------------------------------------------------------------------------- geometric DAs


def test_flip_twice_is_identity_and_matches_oracle() -> None:
    aug = create("flip")
    images = random_images(32)
    params = aug.sample(images.shape, images.device, gen(1))
    once = aug.apply(images, params).images
    assert torch.equal(aug.apply(once, params).images, images)
    for i in range(32):
        expected = images[i].flip(-1) if params.flip[i] else images[i]
        assert torch.equal(once[i], expected)
    assert 0 < int(params.flip.sum()) < 32


def _crop_oracle(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move ``image`` [C, H, W] by (dy, dx) pixels (down, right), filling with zeros."""
    c, h, w = image.shape
    out = torch.zeros_like(image)
    for y in range(h):
        for x in range(w):
            sy, sx = y - dy, x - dx
            if 0 <= sy < h and 0 <= sx < w:
                out[:, y, x] = image[:, sy, sx]
    return out


def test_crop_shifts_content_by_the_offset_with_zero_padding() -> None:
    h, w = 12, 10
    # Every pixel unique and non-zero, so zeros can only come from the padding.
    image = (torch.arange(h * w) + 1).view(1, 1, h, w).to(torch.uint8).expand(6, 3, h, w)
    aug = create("crop(padding=3)")
    params = aug.sample(image.shape, image.device, gen(2))
    out = aug.apply(image, params).images
    assert bool(((params.offset_y >= 0) & (params.offset_y <= 6)).all())
    for i in range(6):
        dy, dx = 3 - int(params.offset_y[i]), 3 - int(params.offset_x[i])
        assert torch.equal(out[i], _crop_oracle(image[i], dy, dx))
    forced = CropParams(torch.tensor([0]), torch.tensor([6]), 3)
    shifted = aug.apply(image[:1], forced).images[0, 0]
    assert (shifted[:3] == 0).all() and (shifted[:, -3:] == 0).all()  # zeros enter from padding
    assert torch.equal(shifted[3:, :-3], image[0, 0, :-3, 3:])


def test_crop_flip_is_crop_then_flip() -> None:
    images = random_images(8, 16, 12)
    aug = create("crop+flip")
    params = aug.sample(images.shape, images.device, gen(4))
    out = aug.apply(images, params).images
    cropped = create("crop").apply(images, params.crop).images
    for i in range(8):
        expected = cropped[i].flip(-1) if params.flip.flip[i] else cropped[i]
        assert torch.equal(out[i], expected)


@pytest.mark.parametrize(("size", "padding", "hole"), [(32, 4, 8), (64, 8, 16), (8, 1, 2)])
def test_default_padding_and_hole_scale_with_image_size(size: int, padding: int, hole: int) -> None:
    shape = torch.Size([2, 3, size, size])
    assert create("crop").sample(shape, torch.device("cpu"), gen()).padding == padding
    assert create("cutout").sample(shape, torch.device("cpu"), gen()).size == hole


# ------------------------------------------------------------------------------------ cutout


def test_cutout_hole_is_square_clipped_at_borders_and_zero_after_normalization() -> None:
    h = w = 32
    images = torch.full((64, 3, h, w), 200, dtype=torch.uint8)
    aug = create("cutout")
    params = aug.sample(images.shape, images.device, gen(7))
    out = aug.apply(images, params)
    zero = (out.images == 0).all(dim=1, keepdim=True)
    assert torch.equal(zero, out.erased)
    clipped = 0
    for i in range(64):
        cy, cx = int(params.center_y[i]), int(params.center_x[i])
        rows = [y for y in range(cy - 4, cy + 4) if 0 <= y < h]
        cols = [x for x in range(cx - 4, cx + 4) if 0 <= x < w]
        expected = torch.zeros(h, w, dtype=torch.bool)
        expected[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
        assert torch.equal(out.erased[i, 0], expected)
        clipped += len(rows) * len(cols) < 64
    assert 0 < clipped < 64  # both cases occur in this batch
    normalized = Normalize(MEAN, STD)(out.images, out.erased)
    assert bool((normalized.masked_select(out.erased) == 0).all())
    reference = Normalize(MEAN, STD)(images)
    assert torch.equal(normalized.masked_select(~out.erased), reference.masked_select(~out.erased))


def test_cutout_forced_hole_side() -> None:
    aug = create("cutout(size=5)")
    images = torch.full((2, 1, 20, 20), 9, dtype=torch.uint8)
    params = CutoutParams(torch.tensor([10, 0]), torch.tensor([10, 19]), 5)
    erased = aug.apply(images, params).erased[:, 0]
    assert int(erased[0].sum()) == 25 and bool(erased[0, 8:13, 8:13].all())
    assert int(erased[1].sum()) == 3 * 3 and bool(erased[1, 0:3, 17:20].all())


# -------------------------------------------------------------------------------- mixing DAs


@FAST
@given(b=st.integers(2, 12), h=st.integers(8, 24), w=st.integers(8, 24), seed=st.integers(0, 99))
@example(b=2, h=8, w=8, seed=0)
def test_cutmix_pixels_come_from_self_or_partner_and_lambda_is_the_pasted_fraction(
    b: int, h: int, w: int, seed: int
) -> None:
    images = constant_images(b, h, w)
    out = create("cutmix")(images, gen(seed))
    partner, lam = out.mix.partner, out.mix.lam
    assert not bool((partner == torch.arange(b)).any()), "partner has a fixed point"
    assert torch.equal(partner.sort().values, torch.arange(b))
    for i in range(b):
        own = (out.images[i] == images[i]).all(dim=0)
        taken = (out.images[i] == images[partner[i]]).all(dim=0)
        assert bool((own ^ taken).all())  # every pixel is exactly one of the two
        assert math.isclose(float(lam[i]), float(own.float().mean()), abs_tol=1e-6)
        if taken.any():  # the pasted region is an axis-aligned box
            rows = taken.any(dim=1).nonzero().flatten()
            cols = taken.any(dim=0).nonzero().flatten()
            box = taken[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            assert bool(box.all()) and int(box.numel()) == int(taken.sum())


@FAST
@given(n=st.integers(2, 40), seed=st.integers(0, 999))
def test_derangement_has_no_fixed_points(n: int, seed: int) -> None:
    partner = sample_derangement(n, torch.device("cpu"), gen(seed))
    assert torch.equal(partner.sort().values, torch.arange(n))
    assert not bool((partner == torch.arange(n)).any())


def test_cutmix_box_sizes_follow_beta() -> None:
    images = random_images(2048, 32, 32)
    lam = create("cutmix")(images, gen(3)).mix.lam
    # lam ~ 1 - (clipped box area); Beta(1, 1) gives a mean a bit above 1/2 after clipping.
    assert 0.5 < float(lam.mean()) < 0.75
    assert float(lam.min()) < 0.2 and float(lam.max()) == 1.0


def test_mixup_is_a_convex_combination_with_the_reported_lambda() -> None:
    images = random_images(32, 12, 9)
    out = create("mixup(alpha=0.4)")(images, gen(8))
    lam, partner = out.mix.lam[:, None, None, None], out.mix.partner
    assert torch.equal(partner.sort().values, torch.arange(32))
    expected = lam * images.float() + (1 - lam) * images[partner].float()
    assert float((out.images.float() - expected).abs().max()) <= 0.5 + 1e-4
    assert len(torch.unique(out.mix.lam)) == 32
    shared = create("mixup(per_batch=true)")(images, gen(8)).mix.lam
    assert len(torch.unique(shared)) == 1


# -------------------------------------------------------------------------------- cutmixpick


class RecordingScorer:
    """Scores = brightness; remembers the pool it saw."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.pool, self.scores = images.clone(), brightness(images)
        return self.scores


@pytest.mark.parametrize("k", [1, 2, 3])
def test_cutmixpick_keeps_the_highest_scoring_samples_of_the_pool(k: int) -> None:
    b = 10
    images = constant_images(b, 8, 8) * 5
    scorer = RecordingScorer()
    out = create(f"cutmixpick(k={k})")(images, gen(k), scorer=scorer)
    assert scorer.pool.shape == (k * b, 3, 8, 8)
    kept = brightness(out.images)
    threshold = scorer.scores.sort(descending=True).values[b - 1]
    assert bool((kept >= threshold).all())
    assert torch.equal(kept, scorer.scores.sort(descending=True).values[:b])
    for i in range(b):  # each kept image is a pool member, explained by its MixRecord
        assert any(torch.equal(out.images[i], member) for member in scorer.pool)
        src, par = int(out.mix.source[i]), int(out.mix.partner[i])
        assert src != par
        own = (out.images[i] == images[src]).all(dim=0)
        taken = (out.images[i] == images[par]).all(dim=0)
        assert bool((own ^ taken).all())
        assert math.isclose(float(out.mix.lam[i]), float(own.float().mean()), abs_tol=1e-6)


def test_cutmixpick_pool_is_cutmix_of_the_original_batch() -> None:
    images = random_images(6, 8, 8)
    aug = create("cutmixpick-s")
    params = aug.sample(images.shape, images.device, gen(0))
    scorer = RecordingScorer()
    aug.apply(images, params, scorer)
    expected = torch.cat([cutmix_pixels(images, draw) for draw in params.draws])
    assert torch.equal(scorer.pool, expected)


def test_cutmixpick_requires_a_scorer() -> None:
    aug = create("cutmixpick-t")
    assert aug.needs_scorer and aug.score == "teacher"
    assert create("cutmixpick-s").score == "student"
    with pytest.raises(ValueError, match="scorer is required"):
        aug(random_images(4))


def small_bn_net(classes: int = 5) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, classes),
        nn.BatchNorm1d(classes),
    )
    with torch.no_grad():  # make the running statistics non-trivial
        net.train()
        net(torch.randn(16, 3, 8, 8))
    return net


def _state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("kind", ["teacher", "student", "kl"])
@pytest.mark.parametrize("train_mode", [True, False])
def test_scoring_leaves_batchnorm_statistics_and_modes_unchanged(
    kind: str, train_mode: bool
) -> None:
    teacher, student = small_bn_net(), small_bn_net()
    teacher.train(train_mode)
    student.train(train_mode)
    before = {"t": _state(teacher), "s": _state(student)}
    normalize = Normalize(MEAN, STD)
    scorer = make_scorer(kind, teacher=teacher, student=student, normalize=normalize)
    out = create(f"cutmixpick(score={kind})")(random_images(8, 8, 8), gen(0), scorer=scorer)
    assert out.images.shape == (8, 3, 8, 8)
    for name, net in (("t", teacher), ("s", student)):
        assert net.training is train_mode
        after = net.state_dict()
        for key, value in before[name].items():
            assert torch.equal(after[key], value), f"{key} changed"
    assert int(teacher[1].num_batches_tracked) == 1


class FixedLogits(nn.Module):
    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[: x.shape[0]]


def test_entropy_and_kl_scores_in_nats() -> None:
    t_logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [10.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    s_logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [4.0, 3.0, 2.0, 1.0]])
    normalize = Normalize(MEAN, STD)
    images = random_images(3, 4, 4)
    entropy = entropy_scorer(FixedLogits(t_logits), normalize)(images)
    p = t_logits.softmax(1)
    assert torch.allclose(entropy, -(p * p.log()).sum(1), atol=1e-6)
    assert math.isclose(float(entropy[0]), math.log(4), rel_tol=1e-6)
    kl = kl_scorer(FixedLogits(t_logits), FixedLogits(s_logits), normalize)(images)
    q = s_logits.softmax(1)
    assert torch.allclose(kl, (p * (p.log() - q.log())).sum(1), atol=1e-5)
    assert float(kl[0]) == pytest.approx(0.0, abs=1e-7)


def test_make_scorer_errors() -> None:
    normalize = Normalize(MEAN, STD)
    with pytest.raises(ValueError, match="needs the teacher model"):
        make_scorer("teacher", student=small_bn_net(), normalize=normalize)
    with pytest.raises(ValueError, match="teacher and student"):
        make_scorer("kl", normalize=normalize)
    with pytest.raises(ValueError, match="unknown score kind 'bogus'"):
        make_scorer("bogus", teacher=small_bn_net(), normalize=normalize)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- specs


def test_parse_spec_values() -> None:
    name, kwargs = parse_spec("x( a=8, b=0.4, c=true, d=False, e=cifar10, f='q' , g=-2, h=1e-3)")
    assert name == "x"
    assert kwargs == {"a": 8, "b": 0.4, "c": True, "d": False, "e": "cifar10", "f": "q", "g": -2,
                      "h": 1e-3}
    assert type(kwargs["a"]) is int and type(kwargs["b"]) is float
    assert parse_spec("crop+flip") == ("crop+flip", {})
    assert parse_spec("cutmix()") == ("cutmix", {})


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("cutmix", "cutmix"),
        ("cutmix(beta=1.0)", "cutmix"),
        ("cutmix(beta=2)", "cutmix(beta=2.0)"),
        ("cutout(size=8)", "cutout(size=8)"),
        ("mixup(alpha=0.4, per_batch=true)", "mixup(alpha=0.4, per_batch=true)"),
        ("crop+flip(per_batch=true)", "crop+flip(per_batch=true)"),
        ("cutmixpick(score=teacher)", "cutmixpick-t"),
        ("cutmixpick", "cutmixpick-t"),
        ("cutmixpick(score=student, k=3)", "cutmixpick-s(k=3)"),
        ("cutmixpick-t(k=4)", "cutmixpick-t(k=4)"),
        ("cutmixpick(score=kl)", "cutmixpick(score=kl)"),
    ],
)
def test_create_and_canonical_spec(spec: str, canonical: str) -> None:
    aug = create(spec)
    assert spec_of(aug) == canonical == str(aug)
    assert spec_of(create(canonical)) == canonical


def test_spec_values_reach_the_augmentation() -> None:
    aug = create("mixup(alpha=0.4, per_batch=true)")
    assert aug.alpha == 0.4 and aug.per_batch is True
    assert create("cutout(size=8)").size == 8
    assert isinstance(create("cutmixpick-s"), CutMixPick)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cutmx", r"unknown augmentation 'cutmx'; known: .*identity, .*cutmix, .*cutmixpick-t"),
        ("cutout(sz=3)", r"cutout: unknown parameter 'sz'; allowed: size, per_batch"),
        ("cutout(size=-1)", r"cutout: bad value size=-1; allowed: an integer in \[1, 4096\]"),
        ("cutout(size=2.5)", r"cutout: bad value size=2.5; allowed: an integer"),
        ("mixup(alpha=0)", r"mixup: bad value alpha=0.0; allowed: a number in \(0, 10000\]"),
        ("mixup(alpha=big)", r"mixup: bad value alpha='big'; allowed: a finite number"),
        ("flip(p=1.5)", r"flip: bad value p=1.5; allowed: 0 <= p <= 1"),
        ("crop(padding=-1)", r"crop: bad value padding=-1"),
        ("cutmix(per_batch=1)", r"cutmix: bad value per_batch=1; allowed: true or false"),
        ("cutmixpick(score=bogus)", r"score='bogus'; allowed: one of teacher, student, kl"),
        ("cutmixpick(k=0)", r"cutmixpick: bad value k=0"),
        ("cutmixpick-t(score=kl)", r"'score' is fixed by the alias"),
        ("autoaugment(policy=foo)", r"autoaugment: .*'foo'"),
        ("cutmix(", r"malformed augmentation spec 'cutmix\('"),
        ("cutmix(beta)", r"malformed augmentation spec .*'beta' is not key=value"),
        ("cutmix(beta=1, beta=2)", r"'beta' given twice"),
        ("cutmix(beta=)", r"malformed"),
        ("(beta=1)", r"malformed"),
        ("", r"malformed"),
    ],
)
def test_spec_errors_are_one_line_value_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        create(spec)
    assert "\n" not in str(info.value)


def test_unknown_name_error_is_the_registry_error() -> None:
    with pytest.raises(UnknownNameError):
        create("nope")


# ------------------------------------------------------------------------ pipeline and views


def test_normalize_values_layout_and_dtype() -> None:
    images = random_images(4, 6, 5)
    out = Normalize(MEAN, STD)(images)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    assert out.dtype == torch.float32
    assert torch.allclose(out, (images.float() / 255 - mean) / std, atol=1e-5)
    cl = Normalize(MEAN, STD)(images.contiguous(memory_format=torch.channels_last))
    assert cl.is_contiguous(memory_format=torch.channels_last)
    forced = Normalize(MEAN, STD, memory_format=torch.channels_last)(images)
    assert forced.is_contiguous(memory_format=torch.channels_last)
    assert Normalize(MEAN, STD, dtype=torch.bfloat16)(images).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="3 channels"):
        Normalize(MEAN, STD)(random_images(2, c=1))


def test_view_pipeline_views_share_the_base_batch() -> None:
    images = random_images(8)
    pipeline = ViewPipeline.for_dataset(MEAN, STD, "cutout")
    assert not pipeline.needs_scorer
    views = pipeline(images, gen(3))
    # Replay the same draws by hand: base first, then the extra DA on the base output.
    g = gen(3)
    x = create("crop+flip")(images, g).images
    cut = create("cutout")(x, g)
    normalize = Normalize(MEAN, STD)
    assert torch.equal(views.original, normalize(x))
    assert torch.equal(views.augmented, normalize(cut.images, cut.erased))
    assert views.mix is None


def test_view_pipeline_variants() -> None:
    images = random_images(8)
    single = ViewPipeline.for_dataset(MEAN, STD, None)(images, gen(1))
    assert single.augmented is None and single.original.shape == (8, 3, 16, 16)
    same = ViewPipeline.for_dataset(MEAN, STD, "identity")(images, gen(1))
    assert torch.equal(same.original, same.augmented)
    plain = ViewPipeline.for_dataset(MEAN, STD, None, base_spec=None)(images)
    assert torch.equal(plain.original, Normalize(MEAN, STD)(images))
    mixed = ViewPipeline.for_dataset(MEAN, STD, "cutmix")(images, gen(1))
    assert mixed.mix is not None and mixed.augmented.shape == mixed.original.shape
    picker = ViewPipeline.for_dataset(MEAN, STD, "cutmixpick-t")
    assert picker.needs_scorer
    assert picker(images, gen(1), scorer=brightness).mix.source is not None
    with pytest.raises(ValueError, match="scorer is required"):
        picker(images, gen(1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", AUGMENTATIONS.names())
def test_cuda_matches_device_and_generator(name: str) -> None:
    images = random_images(16).cuda()
    aug = AUGMENTATIONS.get(name)()
    g = torch.Generator(device="cuda").manual_seed(0)
    kwargs = {"scorer": brightness} if aug.needs_scorer else {}
    out = aug(images, g, **kwargs)
    assert out.images.device == images.device and out.images.dtype == torch.uint8
    with pytest.raises(ValueError, match="generator lives on 'cpu'"):
        aug(images, gen(0), **kwargs)
