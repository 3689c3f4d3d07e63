"""pick(SPEC, by=..., pool=...): keep the best-scored half (or 1/pool) of a pool of any DA.

The first block pins CutMixPick's output as it was before pick() existed (checksums recorded
from that code, and an oracle that re-implements it from CutMix's primitives), so the aliases
cutmixpick-t / cutmixpick-s give bit-identical views for the same seed.
"""

from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

from augkd.augment import Normalize, create, make_scorer
from augkd.augment.base import AugmentOutput
from augkd.augment.mixing import CutMix, cutmix_pixels


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


@pytest.mark.parametrize("spec", ["cutmixpick-t", "cutmixpick-s"])
@pytest.mark.parametrize("per_batch", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aliases_and_pick_of_cutmix_match_the_old_cutmixpick(spec, per_batch, seed) -> None:
    batch, scorer = images(16, seed), net_scorer()
    out = create(spec, per_batch=per_batch)(batch, gen(seed), scorer=scorer)
    pixels, partner, lam, source = old_cutmixpick(batch, gen(seed), scorer, per_batch=per_batch)
    assert torch.equal(out.images, pixels)
    assert torch.equal(out.mix.partner, partner) and torch.equal(out.mix.source, source)
    assert torch.equal(out.mix.lam, lam)
