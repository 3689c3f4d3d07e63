"""The base DA of the ImageNet-style datasets (RandomResizedCrop + flip), evaluation's centre
crop, and the nine built-in DAs at 64 px."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from augkd.augment import PAPER_DAS, BoxParams, CenterCrop, create
from augkd.augment.resized_crop import resized_crop, sample_boxes

# torchvision rounds its float result to uint8 as we do; the two grid computations differ by
# float32 rounding only, which can move a value that lies on .5 by one grey level.
ORACLE_TOLERANCE = 1


def _images(b: int = 6, c: int = 3, h: int = 24, w: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=g)


def test_resized_crop_matches_torchvision_for_the_same_boxes() -> None:
    images = _images()
    boxes = [(0, 0, 24, 20), (3, 2, 10, 7), (10, 5, 14, 15), (1, 1, 1, 1), (20, 0, 4, 20),
             (5, 9, 13, 11)]
    top, left, bh, bw = (torch.tensor(col) for col in zip(*boxes, strict=True))
    for size in ((24, 20), (32, 32)):
        ours = resized_crop(images, BoxParams(top, left, bh, bw, None, size))
        for k, (t, l_, h, w) in enumerate(boxes):
            ref = TF.resized_crop(images[k], t, l_, h, w, list(size), antialias=True)
            diff = (ours[k].int() - ref.int()).abs().max().item()
            assert diff <= ORACLE_TOLERANCE, (boxes[k], size, diff)


def test_flip_mirrors_the_resampled_box() -> None:
    images = _images(b=3)
    top, left = torch.tensor([0, 2, 4]), torch.tensor([1, 0, 3])
    bh, bw = torch.tensor([20, 9, 12]), torch.tensor([15, 11, 17])
    plain = resized_crop(images, BoxParams(top, left, bh, bw, None, (24, 20)))
    flip = torch.tensor([True, False, True])
    mirrored = resized_crop(images, BoxParams(top, left, bh, bw, flip, (24, 20)))
    assert torch.equal(mirrored[0], plain[0].flip(-1))
    assert torch.equal(mirrored[1], plain[1])
    assert torch.equal(mirrored[2], plain[2].flip(-1))


def test_boxes_follow_torchvision_rules() -> None:
    g = torch.Generator().manual_seed(3)
    h, w = 64, 48
    top, left, bh, bw = sample_boxes(4000, h, w, (0.08, 1.0), (3 / 4, 4 / 3), torch.device("cpu"),
                                     g)
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + bh <= h).all() and (left + bw <= w).all()
    assert (bh >= 1).all() and (bw >= 1).all()
    area = (bh * bw).double() / (h * w)
    # the rounded box may pass the drawn share by a little; on average it is near the mean of
    # U(0.08, 1) over the boxes that fit
    assert area.min() >= 0.07 and area.max() <= 1.0
    ratio = bw.double() / bh.double()
    fits = (area > 0.2)  # small boxes' ratios are coarse after rounding
    assert ratio[fits].min() >= 3 / 4 * 0.9 and ratio[fits].max() <= 4 / 3 * 1.1
    assert 0.35 < area.mean().item() < 0.6
    # positions spread over the free range
    assert top.max() > 0 and left.max() > 0


def test_fallback_box_is_the_ratio_clamped_centre() -> None:
    # scale 1 and ratio 2..3 never fit a square image: the fallback is a centre crop of ratio 2
    top, left, bh, bw = sample_boxes(5, 30, 30, (1.0, 1.0), (2.0, 3.0), torch.device("cpu"),
                                     torch.Generator().manual_seed(0))
    assert bw.tolist() == [30] * 5 and bh.tolist() == [15] * 5
    assert top.tolist() == [7] * 5 and left.tolist() == [0] * 5


@pytest.mark.parametrize("spec", ["resized-crop", "resized-crop+flip"])
def test_resized_crop_da_shapes_modes_and_determinism(spec: str) -> None:
    images = _images(b=8, h=32, w=32)
    aug = create(spec)
    out = aug(images, torch.Generator().manual_seed(1)).images
    again = aug(images, torch.Generator().manual_seed(1)).images
    assert out.shape == images.shape and out.dtype == torch.uint8 and torch.equal(out, again)
    assert not torch.equal(out, images)
    smaller = create(f"{spec}(size=16)")(images, torch.Generator().manual_seed(1)).images
    assert smaller.shape == (8, 3, 16, 16)
    shared = create(f"{spec}(per_batch=true)").sample(images.shape, images.device,
                                                     torch.Generator().manual_seed(2))
    assert shared.top.unique().numel() == 1 and shared.height.unique().numel() == 1
    with pytest.raises(ValueError, match="scale_min"):
        create(f"{spec}(scale_min=0)")


def test_resized_crop_is_the_recorded_boxes() -> None:
    """The batched DA applies exactly the boxes it drew (checked against torchvision)."""
    images = _images(b=5, h=40, w=40, seed=4)
    aug = create("resized-crop+flip")
    params = aug.sample(images.shape, images.device, torch.Generator().manual_seed(5))
    out = aug.apply(images, params).images
    for k in range(5):
        ref = TF.resized_crop(images[k], int(params.top[k]), int(params.left[k]),
                              int(params.height[k]), int(params.width[k]), [40, 40],
                              antialias=True)
        if params.flip[k]:
            ref = ref.flip(-1)
        assert (out[k].int() - ref.int()).abs().max() <= ORACLE_TOLERANCE


def test_centre_crop_matches_torchvision_centre_crop_and_resize() -> None:
    images = _images(b=2, h=64, w=64)
    out = CenterCrop(0.875)(images)
    assert out.shape == images.shape
    ref = TF.resize(TF.center_crop(images, [56, 56]), [64, 64], antialias=True)
    assert (out.int() - ref.int()).abs().max() <= ORACLE_TOLERANCE
    assert CenterCrop(1.0)(images) is images
    with pytest.raises(ValueError, match="fraction"):
        CenterCrop(0.0)


@pytest.mark.parametrize("spec", PAPER_DAS)
def test_the_nine_das_run_at_64_px(spec: str) -> None:
    images = _images(b=8, h=64, w=64, seed=6)
    aug = create(spec)
    kwargs = {}
    if aug.needs_scorer:
        kwargs["scorer"] = lambda x: x.float().mean(dim=(1, 2, 3))
    out = aug(images, torch.Generator().manual_seed(7), **kwargs)
    assert out.images.shape == images.shape and out.images.dtype == torch.uint8
    if spec == "cutout":  # docs/protocol.md §2: side 16 at 64 px
        assert aug.resolve_size(images.shape) == 16
        sides = out.erased[:, 0].sum(dim=(1, 2))
        assert sides.max().item() == 16 * 16
    if spec == "crop+flip":  # pad 8 at 64 px
        assert aug.resolve_padding(images.shape) == 8


def test_base_da_at_64_px_then_extra_da() -> None:
    """The ImageNet recipe's view pipeline at 64 px: resized-crop+flip base, cutmix on top."""
    from augkd.augment import ViewPipeline

    pipeline = ViewPipeline.for_dataset((0.5,) * 3, (0.25,) * 3, "cutmix",
                                        base_spec="resized-crop+flip")
    views = pipeline(_images(b=8, h=64, w=64), torch.Generator().manual_seed(0))
    assert views.original.shape == views.augmented.shape == (8, 3, 64, 64)
    assert math.isfinite(views.augmented.sum().item())


def test_a_run_takes_the_dataset_base_da_and_eval_crop(tmp_path, monkeypatch) -> None:
    """Dataset.base_aug and Dataset.eval_crop reach the trainer: its base DA and evaluation."""
    import augkd.training.api as api
    from augkd.augment import ResizedCropFlip
    from augkd.training import TrainConfig, train
    from tests.helpers import FAST

    made = []

    class Recording(api.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(api, "Trainer", Recording)
    cfg = TrainConfig.from_dict({**FAST, "role": "teacher", "model": "resnet8", "epochs": 1,
                                 "dataset_options": {"train_subset": 128,
                                                     "base_aug": "resized-crop+flip",
                                                     "eval_crop": 0.875}})
    train(cfg, tmp_path / "run", log=lambda line: None)
    (trainer,) = made
    assert isinstance(trainer.pipeline.base, ResizedCropFlip)
    assert trainer.eval_view.fraction == 0.875
