"""pick(SPEC, by=..., pool=...): keep the best-scored half (or 1/pool) of a pool of any DA.

The first block pins CutMixPick's output as it was before pick() existed (checksums recorded
from that code, and an oracle that re-implements it from CutMix's primitives), so the aliases
cutmixpick-t / cutmixpick-s give bit-identical views for the same seed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json

import pandas as pd
import pytest
import torch
from torch import nn

from augkd.augment import Normalize, ViewPipeline, create, make_scorer, spec_of
from augkd.augment.base import AugmentOutput
from augkd.augment.mixing import CutMix, cutmix_pixels
from augkd.augment.pick import Pick


def images(b: int = 12, seed: int = 0, size: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, size, size), generator=g, dtype=torch.uint8)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def net_scorer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 5)).eval()
    return make_scorer("teacher", teacher=net, normalize=Normalize((0.5,) * 3, (0.25,) * 3))


def brightness(batch: torch.Tensor) -> torch.Tensor:
    return batch.float().mean(dim=(1, 2, 3))


def digest(out: AugmentOutput) -> str:
    h = hashlib.sha256()
    for t in (out.images, out.mix.partner, out.mix.lam, out.mix.source):
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------- cutmixpick, as it was before

#: sha256 (first 16 hex digits) of images, partner, lam and source of the pre-pick() CutMixPick
#: on ``images()`` with generator seed 7 and :func:`net_scorer`.
PINNED = {
    ("cutmixpick-t", False): "cc1a1efa7a4208bf",
    ("cutmixpick-t", True): "fc875fa50e5125f2",
    ("cutmixpick-s", False): "cc1a1efa7a4208bf",  # the scorer passed in decides, not the name
    ("cutmixpick-s", True): "fc875fa50e5125f2",
    ("cutmixpick-t(k=3)", False): "d8f3f53e9a27e050",
    ("cutmixpick-t(k=3)", True): "880daf4fc5eeffd2",
}


@pytest.mark.parametrize(("spec", "per_batch"), list(PINNED))
def test_cutmixpick_output_is_pinned(spec: str, per_batch: bool) -> None:
    out = create(spec, per_batch=per_batch)(images(), gen(7), scorer=net_scorer())
    assert digest(out) == PINNED[spec, per_batch]


def old_cutmixpick(batch, generator, scorer, *, k=2, per_batch=False):
    """The pre-pick() algorithm: k CutMix draws in a row, one pool, top-B by score."""
    cutmix = CutMix(per_batch=per_batch)
    draws = [cutmix.sample(batch.shape, batch.device, generator) for _ in range(k)]
    b, _, h, w = batch.shape
    pool = torch.cat([cutmix_pixels(batch, d) for d in draws])
    partner = torch.cat([d.partner for d in draws])
    lam = torch.cat([d.kept_fraction(h, w) for d in draws])
    source = torch.arange(b).repeat(k)
    keep = scorer(pool).topk(b, sorted=True).indices
    return pool[keep], partner[keep], lam[keep], source[keep]


@pytest.mark.parametrize("spec", ["cutmixpick-t", "cutmixpick-s", "pick(cutmix, by=teacher)",
                                  "pick(cutmix, by=student)", "pick"])
@pytest.mark.parametrize("per_batch", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aliases_and_pick_of_cutmix_match_the_old_cutmixpick(spec, per_batch, seed) -> None:
    batch, scorer = images(16, seed), net_scorer()
    out = create(spec, per_batch=per_batch)(batch, gen(seed), scorer=scorer)
    pixels, partner, lam, source = old_cutmixpick(batch, gen(seed), scorer, per_batch=per_batch)
    assert torch.equal(out.images, pixels)
    assert torch.equal(out.mix.partner, partner) and torch.equal(out.mix.source, source)
    assert torch.equal(out.mix.lam, lam)


# ------------------------------------------------------------------------ pick of any DA

HAS_KORNIA = importlib.util.find_spec("kornia") is not None
HAS_ALBUMENTATIONS = importlib.util.find_spec("albumentations") is not None
KORNIA = "kornia:RandomPerspective(distortion_scale=0.5, p=1.0)"
ALBUMENTATIONS = "albumentations:GridDistortion(p=1.0)"
ANY_DA = [
    "autoaugment", "mixup", "mixup(alpha=0.4)", "cutout(size=4)", "flip", "crop+flip", "identity",
    pytest.param(KORNIA, marks=pytest.mark.skipif(not HAS_KORNIA, reason="needs kornia")),
    pytest.param(ALBUMENTATIONS,
                 marks=pytest.mark.skipif(not HAS_ALBUMENTATIONS, reason="needs albumentations")),
]


class RecordingScorer:
    """Scores = brightness; remembers the pool (and erased mask) it saw."""

    def __call__(self, pool: torch.Tensor, erased: torch.Tensor | None = None) -> torch.Tensor:
        self.pool, self.erased, self.scores = pool.clone(), erased, brightness(pool)
        return self.scores


@pytest.mark.parametrize("spec", ANY_DA)
@pytest.mark.parametrize("pool", [1, 2, 3])
def test_pick_keeps_the_best_scored_of_pool_independent_draws_of_the_da(spec, pool) -> None:
    batch, b = images(10, seed=3), 10
    aug = create(f"pick({spec}, by=teacher, pool={pool})")
    assert isinstance(aug, Pick) and aug.needs_scorer and aug.score == "teacher"
    scorer = RecordingScorer()
    out = aug(batch, gen(4), scorer=scorer)
    # the pool is the DA's own output for `pool` draws in a row from the same generator
    inner, g = create(spec), gen(4)
    draws = [inner.apply(batch, inner.sample(batch.shape, batch.device, g)) for _ in range(pool)]
    assert torch.equal(scorer.pool, torch.cat([d.images for d in draws]))
    keep = scorer.scores.topk(b, sorted=True).indices
    assert torch.equal(out.images, scorer.pool[keep])
    assert torch.equal(brightness(out.images), scorer.scores.sort(descending=True).values[:b])
    assert out.images.shape == batch.shape and out.images.dtype == torch.uint8


@pytest.mark.parametrize("spec", ["autoaugment", "flip", "crop+flip"])
def test_a_kept_sample_of_a_non_mixing_da_names_its_source(spec) -> None:
    batch = images(8, seed=5)
    aug = create(f"pick({spec}, pool=3)")
    params = aug.sample(batch.shape, batch.device, gen(1))
    out = aug.apply(batch, params, RecordingScorer())
    mix = out.mix
    assert torch.equal(mix.partner, mix.source) and bool((mix.lam == 1).all())
    per_draw = torch.cat([aug.aug.apply(batch, p).images for p in params.draws])
    # output i came from input source[i]: it is one of that input's `pool` augmented copies
    for i in range(8):
        src = int(mix.source[i])
        copies = per_draw[src::8]
        assert any(torch.equal(out.images[i], c) for c in copies)


def test_a_kept_sample_of_mixup_keeps_its_partner_and_lambda() -> None:
    batch = images(8, seed=6)
    aug = create("pick(mixup, by=student)")
    params = aug.sample(batch.shape, batch.device, gen(2))
    scorer = RecordingScorer()
    out = aug.apply(batch, params, scorer)
    keep = scorer.scores.topk(8, sorted=True).indices
    partners = torch.cat([p.partner for p in params.draws])
    lams = torch.cat([p.lam for p in params.draws])
    assert torch.equal(out.mix.partner, partners[keep]) and torch.equal(out.mix.lam, lams[keep])
    assert torch.equal(out.mix.source, torch.arange(8).repeat(2)[keep])


def test_an_erasing_da_gives_the_scorer_and_the_view_its_holes() -> None:
    batch = images(6, seed=7)
    scorer = RecordingScorer()
    out = create("pick(cutout(size=4))")(batch, gen(0), scorer=scorer)
    assert scorer.erased is not None and scorer.erased.shape == (12, 1, 8, 8)
    keep = scorer.scores.topk(6, sorted=True).indices
    assert torch.equal(out.erased, scorer.erased[keep])
    # the built-in scorers normalize the holes to 0, as the trainer's views do
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5)).eval()
    normalize = Normalize((0.5,) * 3, (0.25,) * 3)
    real = make_scorer("teacher", teacher=net, normalize=normalize)
    filled = scorer.pool.clone()
    filled[scorer.erased.expand_as(filled)] = 7  # pixel values under a hole do not matter
    assert torch.allclose(real(scorer.pool, erased=scorer.erased),
                          real(filled, erased=scorer.erased))


@pytest.mark.parametrize("spec", ["autoaugment", "mixup", "crop+flip"])
def test_pick_repeats_with_the_seed_and_takes_the_da_mode(spec) -> None:
    batch = images(8, seed=8)
    first = create(f"pick({spec})")(batch, gen(3), scorer=brightness)
    again = create(f"pick({spec})")(batch, gen(3), scorer=brightness)
    assert torch.equal(first.images, again.images)
    per_batch = create(f"pick({spec})", per_batch=True)
    assert per_batch.per_batch and per_batch.aug.per_batch
    assert create(f"pick({spec}(per_batch=true))").per_batch
    assert spec_of(per_batch) == f"pick({spec}(per_batch=true))"


@pytest.mark.skipif(not HAS_KORNIA, reason="needs kornia")
def test_pick_of_kornia_per_batch_sets_same_on_batch() -> None:
    aug = create(f"pick({KORNIA}, by=student)", per_batch=True)
    assert "same_on_batch=true" in spec_of(aug) and aug.score == "student"
    out = aug(images(4), gen(0), scorer=brightness)
    assert out.images.shape == (4, 3, 8, 8)


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("pick(autoaugment, by=teacher)", "pick(autoaugment)"),
        ("pick(autoaugment, by=student, pool=3)", "pick(autoaugment, by=student, pool=3)"),
        ("pick( mixup(alpha=0.4) , by=kl)", "pick(mixup(alpha=0.4), by=kl)"),
        ("pick(by=student)", "pick(cutmix, by=student)"),
        ("pick", "pick(cutmix)"),
        (f"pick({KORNIA}, by=student)", f"pick({KORNIA}, by=student)"),
        ("pick(kornia:RandomAffine(degrees=15, translate=(0.1, 0.1), p=1.0) | RandomPerspective"
         "(p=1.0), pool=4)", "pick(kornia:RandomAffine(degrees=15, translate=(0.1, 0.1), p=1.0) "
         "| RandomPerspective(p=1.0), pool=4)"),
        ("cutmixpick-t", "cutmixpick-t"),
        ("cutmixpick-s(k=3)", "cutmixpick-s(k=3)"),
    ],
)
def test_pick_specs_round_trip(spec, canonical) -> None:
    if "kornia" in spec and not HAS_KORNIA:
        pytest.skip("needs kornia")
    assert spec_of(create(spec)) == canonical
    assert spec_of(create(canonical)) == canonical


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("pick(autoaugmnt)", r"pick: unknown augmentation 'autoaugmnt'; known: .*autoaugment"),
        ("pick(cutmixpick-t)", r"ranks samples with a scorer itself"),
        ("pick(pick(mixup))", r"pick\(\.\.\.\) as its DA ranks samples itself"),
        ("pick(" * 300 + "mixup" + ")" * 300, r"ranks samples itself"),  # no deep recursion
        ("pick(autoaugment, by=foo)", r"pick: bad value by='foo'; allowed: one of teacher"),
        ("pick(autoaugment, pool=0)", r"pick: bad value pool=0; allowed: an integer in \[1, 64\]"),
        ("pick(autoaugment, k=2)", r"pick: unknown parameter 'k'; allowed: by, pool, per_batch"),
        ("pick(autoaugment, autoaugment)", r"after its DA spec, pick takes key=value only"),
        ("pick(, by=teacher)", r"malformed"),
        ("pick(mixup(alpha=0))", r"mixup: bad value alpha"),
    ],
)
def test_bad_pick_specs_fail_by_name(spec, message) -> None:
    with pytest.raises(ValueError, match=message):
        create(spec)


def test_pick_needs_a_scorer_and_keeps_models_untouched() -> None:
    with pytest.raises(ValueError, match="scorer is required"):
        create("pick(autoaugment)")(images(4))
    with pytest.raises(TypeError, match="expected a DA spec"):
        Pick(3)
    with pytest.raises(ValueError, match="contradicts"):
        Pick(create("mixup"), per_batch=True)


def test_pick_runs_in_the_view_pipeline() -> None:
    pipeline = ViewPipeline.for_dataset((0.5,) * 3, (0.25,) * 3, "pick(cutout(size=4))")
    assert pipeline.needs_scorer
    views = pipeline(images(6), gen(0), scorer=net_scorer())
    assert views.augmented.shape == (6, 3, 8, 8) and views.mix.source is not None
    assert bool((views.augmented == 0).any())  # the kept holes are normalized to 0


def test_rank_measures_pick_of_any_da_from_the_cli(tmp_path) -> None:
    from augkd.rank import main

    out = tmp_path / "pick"
    argv = ["--teacher-epochs", "3", "--epochs", "1", "--scorer-epochs", "1", "--no-progress",
            "--out", str(out), "--augs", "pick(autoaugment, by=teacher)", "pick(mixup, by=student)"]
    assert main(argv) == 0
    table = pd.read_csv(out / "results.csv")
    assert set(table["aug"]) == {"pick(autoaugment, by=teacher)", "pick(mixup, by=student)"}
    assert (table["t_stddev"] > 0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"]["cutmixpick_s_scorer"]  # by=student got the trained scorer
