"""Tests of augkd.metrics: T. stddev (statistic and measuring loop), evaluate, correlations."""

from __future__ import annotations

import dataclasses
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn

from augkd.metrics import (
    GroupMeans,
    correlations,
    evaluate,
    group_means,
    mark_trained,
    measure_t_stddev,
    t_stddev,
    t_stddev_from_group_means,
)
from augkd.metrics.correlation import _kendall_rows, _pearson_rows

# --------------------------------------------------------------------------------------------
# Helpers


def hand_group_means(stream: list[torch.Tensor], group_size: int) -> np.ndarray:
    """The protocol's buffer of ``group_size`` tensors, literally, in numpy."""
    arrays = [p.detach().cpu().double().numpy() for p in stream]
    return np.stack([
        np.concatenate(arrays[g * group_size:(g + 1) * group_size]).mean(axis=0)
        for g in range(len(arrays) // group_size)
    ])


def hand_t_stddev(stream: list[torch.Tensor], group_size: int) -> tuple[float, np.ndarray]:
    means = hand_group_means(stream, group_size)
    return float(means.std(axis=0, ddof=1).mean()), means


def random_stream(n: int, classes: int = 7, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 9, (n,), generator=g).tolist()  # unequal rows: mean over rows
    return [torch.randn(s, classes, generator=g).mul(2).softmax(1) for s in sizes]


class TinyNet(nn.Module):
    """Conv + BatchNorm classifier; records how it was called."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, classes)
        self.calls: list[dict] = []
        with torch.no_grad():  # non-trivial running stats so eval vs train mode differ
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(F.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))
        self.calls.append({
            "rows": x.shape[0],
            "inference": torch.is_inference_mode_enabled(),
            "grad": torch.is_grad_enabled(),
            "requires_grad": out.requires_grad,
            "training": self.training,
        })
        return out


@dataclasses.dataclass
class FakeViews:
    original: torch.Tensor
    augmented: torch.Tensor | None


class FakePipeline:
    """Random flip as base DA, additive noise as extra DA; all randomness from ``generator``."""

    needs_scorer = False

    def __init__(self, extra: bool = True) -> None:
        self.extra_da = extra
        self.scorers: list = []

    @staticmethod
    def normalize(images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255.0 - 0.5) / 0.25

    def __call__(self, images, generator=None, scorer=None) -> FakeViews:
        self.scorers.append(scorer)
        flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
        base = torch.where(flip[:, None, None, None], images.flip(-1), images)
        original = self.normalize(base)
        augmented = None
        if self.extra_da:
            augmented = original + 0.7 * torch.randn(original.shape, generator=generator,
                                                     device=original.device)
        return FakeViews(original, augmented)


def naive_stream(teacher, images, pipeline, *, epochs, batch_size, seed) -> list[torch.Tensor]:
    """The batch-by-batch loop of protocol section 3, teacher run per view at batch size."""
    g = torch.Generator().manual_seed(seed)
    teacher.eval()
    stream = []
    with torch.no_grad():
        for _ in range(epochs):
            perm = torch.randperm(images.shape[0], generator=g)
            for start in range(0, images.shape[0], batch_size):
                views = pipeline(images[perm[start:start + batch_size]], generator=g)
                stream.append(teacher(views.original).softmax(1))
                if views.augmented is not None:
                    stream.append(teacher(views.augmented).softmax(1))
    return stream


@pytest.fixture
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (100, 3, 8, 8), generator=g, dtype=torch.uint8)


# --------------------------------------------------------------------------------------------
# The statistic


def test_t_stddev_matches_hand_computation() -> None:
    stream = random_stream(47)
    want, want_means = hand_t_stddev(stream, 10)
    assert t_stddev(stream, group_size=10) == pytest.approx(want, rel=1e-12)
    got_means = group_means(stream, 10)
    assert got_means.dtype == torch.float64 and got_means.shape == (4, 7)
    np.testing.assert_allclose(got_means.numpy(), want_means, rtol=1e-12)
    assert t_stddev_from_group_means(got_means) == pytest.approx(want, rel=1e-12)


def test_group_mean_is_over_rows_not_over_tensors() -> None:
    a = torch.tensor([[1.0, 0.0]])  # 1 row
    b = torch.tensor([[0.0, 1.0]] * 3)  # 3 rows
    means = group_means([a, b, a, a], group_size=2)
    # a mean of the tensor means would give [0.5, 0.5] for the first group
    want = torch.tensor([[0.25, 0.75], [1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(means, want)


def test_constant_teacher_gives_zero() -> None:
    probs = torch.full((64, 5), 0.2)
    stream = [probs[: 64 - (i % 3)] for i in range(40)]  # the row count varies, the value not
    assert t_stddev(stream, 10) == pytest.approx(0.0, abs=1e-15)


def test_last_incomplete_group_is_dropped() -> None:
    stream = random_stream(20, seed=3)
    base = t_stddev(stream, 10)
    extreme = torch.zeros(8, 7)
    extreme[:, 0] = 1.0
    assert t_stddev(stream + [extreme] * 9, 10) == base  # 29 tensors: still 2 groups
    assert t_stddev(stream + [extreme] * 10, 10) != base  # 30 tensors: a third group


def test_groups_run_across_chunk_boundaries() -> None:
    """update_rows with arbitrary chunking equals tensor-by-tensor updates."""
    stream = random_stream(37, seed=5)
    single = GroupMeans(4)
    for p in stream:
        single.update(p)
    chunked = GroupMeans(4)
    for lo, hi in ((0, 3), (3, 4), (4, 17), (17, 18), (18, 37)):
        chunked.update_rows(torch.cat(stream[lo:hi]), [p.shape[0] for p in stream[lo:hi]])
    assert chunked.n_groups == single.n_groups == 9
    torch.testing.assert_close(chunked.means(), single.means(), rtol=1e-13, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=4, max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=6),
    group_size=st.integers(1, 5),
)
def test_chunking_never_changes_the_group_means(sizes, cuts, group_size) -> None:
    g = torch.Generator().manual_seed(len(sizes))
    stream = [torch.rand(s, 3, generator=g) for s in sizes]
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    acc = GroupMeans(group_size)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        acc.update_rows(torch.cat(stream[lo:hi]), sizes[lo:hi])
    n_groups = len(stream) // group_size
    assert acc.n_groups == n_groups and acc.n_tensors == len(stream)
    if n_groups:
        want = hand_group_means(stream, group_size)
        np.testing.assert_allclose(acc.means().numpy(), want, rtol=1e-12)


def test_too_few_groups_says_what_is_needed() -> None:
    with pytest.raises(ValueError, match=r"got 15 tensors") as err:
        t_stddev(random_stream(15), group_size=10)
    assert "20 tensors" in str(err.value)
    with pytest.raises(ValueError, match="at least 2 group means"):
        t_stddev_from_group_means(torch.zeros(1, 5))


def test_stream_shape_errors() -> None:
    acc = GroupMeans(2)
    acc.update(torch.rand(3, 4))
    with pytest.raises(ValueError, match="class count"):
        acc.update(torch.rand(3, 5))
    with pytest.raises(ValueError, match=r"\[b, C\]"):
        acc.update(torch.rand(3))
    with pytest.raises(ValueError, match="at least one row"):
        acc.update(torch.rand(0, 4))


# --------------------------------------------------------------------------------------------
# The measuring loop


@pytest.mark.parametrize("chunk_size", [70, 8192])
@pytest.mark.parametrize("extra", [True, False])
def test_measure_equals_the_batch_by_batch_loop(images, chunk_size, extra) -> None:
    torch.manual_seed(0)
    teacher = TinyNet()
    teacher.train()
    running_mean = teacher.bn.running_mean.clone()
    # 100 images, batch 16: 7 batches per epoch (the last has 4 rows), 2 epochs; with the
    # extra DA 14 tensors per epoch, group 4: 7 groups only if groups cross the epoch boundary.
    result = measure_t_stddev(
        teacher, images, FakePipeline(extra), epochs=2, batch_size=16, group_size=4,
        generator=torch.Generator().manual_seed(7), chunk_size=chunk_size, progress=False,
    )
    forwards = list(teacher.calls)
    assert teacher.training  # mode restored
    torch.testing.assert_close(teacher.bn.running_mean, running_mean)  # BN stats untouched
    stream = naive_stream(teacher, images, FakePipeline(extra), epochs=2, batch_size=16, seed=7)
    want, want_means = hand_t_stddev(stream, 4)

    assert result.n_groups == len(stream) // 4 == (7 if extra else 3)
    assert result.group_means.dtype == torch.float64 and result.group_means.device.type == "cpu"
    np.testing.assert_allclose(result.group_means.numpy(), want_means, rtol=1e-5, atol=1e-7)
    assert result.value == pytest.approx(want, rel=1e-4)
    assert (result.epochs, result.batch_size, result.group_size) == (2, 16, 4)
    assert result.seconds >= 0
    # chunked: few big forwards, never above chunk_size rows
    assert sum(c["rows"] for c in forwards) == 2 * 100 * (2 if extra else 1)
    assert max(c["rows"] for c in forwards) <= chunk_size
    if chunk_size == 8192:
        assert len(forwards) == 1
    # frozen teacher: eval mode inside, inference mode, no graph
    assert all(c["inference"] and not c["grad"] and not c["requires_grad"] for c in forwards)
    assert not any(c["training"] for c in forwards)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_measure_from_host_memory_equals_the_device_path(images) -> None:
    """A training set too large for the device stays in host memory: each batch is gathered
    there and copied, and the teacher sees the same rows in the same order."""
    teacher = TinyNet().cuda()

    def run(data: torch.Tensor) -> torch.Tensor:
        return measure_t_stddev(teacher, data, FakePipeline(True), epochs=2, batch_size=16,
                                group_size=4, generator=torch.Generator("cuda").manual_seed(3),
                                progress=False, device="cuda").group_means

    torch.testing.assert_close(run(images), run(images.cuda()), rtol=0, atol=0)


def test_measure_keeps_the_last_partial_batch(images) -> None:
    teacher = TinyNet()
    result = measure_t_stddev(teacher, images[:30], FakePipeline(), epochs=3, batch_size=8,
                              group_size=2, generator=torch.Generator().manual_seed(0),
                              progress=False)
    # 30 images at batch 8: 4 batches (8, 8, 8, 6) per epoch, 2 views: 24 tensors, 12 groups
    assert result.n_groups == 12
    assert sum(c["rows"] for c in teacher.calls) == 3 * 30 * 2


def test_measure_recomputes_from_group_means(images) -> None:
    result = measure_t_stddev(TinyNet(), images, FakePipeline(), epochs=1, batch_size=10,
                              group_size=4, generator=torch.Generator().manual_seed(2),
                              progress=False)
    assert t_stddev_from_group_means(result.group_means) == pytest.approx(result.value, rel=1e-12)


def test_measure_too_short_stream_raises(images) -> None:
    with pytest.raises(ValueError, match="got 8 tensors"):
        measure_t_stddev(TinyNet(), images[:64], FakePipeline(), epochs=1, batch_size=16,
                         group_size=10, progress=False)


class PickPipeline(FakePipeline):
    needs_scorer = True

    def __init__(self, score: str) -> None:
        super().__init__(extra=True)
        self.extra = types.SimpleNamespace(score=score)


@pytest.fixture
def fake_pick(monkeypatch):
    made: list[dict] = []
    module = types.ModuleType("augkd.augment.pick")

    def make_scorer(kind, *, teacher, student, normalize):
        made.append({"kind": kind, "teacher": teacher, "student": student, "normalize": normalize})
        return ("scorer", kind)

    module.make_scorer = make_scorer
    monkeypatch.setitem(sys.modules, "augkd.augment.pick", module)
    return made


def test_measure_builds_the_cutmixpick_scorer(images, fake_pick) -> None:
    teacher, student = TinyNet(), mark_trained(TinyNet(), 1)
    student.train()
    pipeline = PickPipeline("kl")
    measure_t_stddev(teacher, images[:40], pipeline, epochs=1, batch_size=4, group_size=4,
                     student=student, progress=False)
    assert len(fake_pick) == 1
    made = fake_pick[0]
    assert made["kind"] == "kl" and made["teacher"] is teacher and made["student"] is student
    assert made["normalize"] is pipeline.normalize
    assert set(pipeline.scorers) == {("scorer", "kl")}
    assert student.training  # frozen during the measurement, mode restored afterwards


@pytest.mark.parametrize("score", ["student", "kl"])
def test_student_scored_pipeline_needs_the_student(images, fake_pick, score) -> None:
    with pytest.raises(ValueError, match="student"):
        measure_t_stddev(TinyNet(), images, PickPipeline(score), epochs=1, progress=False)
    assert not fake_pick


def test_teacher_scored_pipeline_needs_no_student(images, fake_pick) -> None:
    measure_t_stddev(TinyNet(), images[:40], PickPipeline("teacher"), epochs=1, batch_size=4,
                     group_size=4, progress=False)
    assert fake_pick[0]["student"] is None


# --------------------------------------------------------------------------------------------
# evaluate


@pytest.mark.parametrize("start_training", [True, False])
def test_evaluate_matches_a_hand_loop(images, start_training) -> None:
    torch.manual_seed(3)
    model = TinyNet(classes=10)
    model.train(start_training)
    labels = torch.randint(0, 10, (images.shape[0],), generator=torch.Generator().manual_seed(4))
    running_mean = model.bn.running_mean.clone()
    result = evaluate(model, images, labels, FakePipeline.normalize, batch_size=7)

    model.eval()
    with torch.no_grad():
        logits = model(FakePipeline.normalize(images)).double()
    loss = F.cross_entropy(logits, labels).item()
    ranked = logits.argsort(dim=1, descending=True)
    top1 = (ranked[:, 0] == labels).double().mean().item() * 100
    top5 = (ranked[:, :5] == labels[:, None]).any(1).double().mean().item() * 100

    assert result.n == 100
    assert result.loss == pytest.approx(loss, rel=1e-5)
    assert result.top1 == pytest.approx(top1)
    assert result.top5 == pytest.approx(top5)
    assert 0 <= result.top1 <= result.top5 <= 100
    torch.testing.assert_close(model.bn.running_mean, running_mean)
    model.calls.clear()
    evaluate(model.train(start_training), images, labels, FakePipeline.normalize)
    assert model.training == start_training
    assert all(c["inference"] and not c["training"] for c in model.calls)


def test_evaluate_rejects_mismatched_labels(images) -> None:
    with pytest.raises(ValueError, match="labels"):
        evaluate(TinyNet(), images, torch.zeros(99, dtype=torch.long), FakePipeline.normalize)


# --------------------------------------------------------------------------------------------
# correlations

X = np.array([5.47, 5.45, 5.30, 5.10, 4.95, 4.85, 4.72, 4.30, 4.15, 4.60, 5.02, 4.41]) * 1e-3
Y = np.array([1.098, 1.080, 1.102, 1.050, 1.062, 1.030, 1.041, 0.992, 0.975, 1.035, 1.020, 1.0])


def test_correlations_match_scipy_and_cis_bracket_r() -> None:
    out = correlations(X, Y, n_boot=500, seed=1)
    for name, fn in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr),
                     ("kendall", stats.kendalltau)):
        ref = fn(X, Y)
        assert out[name]["r"] == pytest.approx(ref[0], rel=1e-12)
        assert out[name]["p"] == pytest.approx(ref[1], rel=1e-9)
        assert out[name]["ci_low"] <= out[name]["r"] <= out[name]["ci_high"]
        assert out[name]["ci_low"] < out[name]["ci_high"] <= 1.0
        assert out[name]["n"] == 12 and 0 < out[name]["n_boot"] <= 500
    assert correlations(X, Y, n_boot=500, seed=1) == out  # reproducible
    assert correlations(X, Y, n_boot=500, seed=2)["pearson"]["ci_low"] != out["pearson"]["ci_low"]
    narrow = correlations(X, Y, n_boot=500, seed=1, ci=0.5)["pearson"]
    wide = out["pearson"]
    assert wide["ci_low"] <= narrow["ci_low"] <= narrow["ci_high"] <= wide["ci_high"]


def test_bootstrap_coefficients_match_scipy_on_tied_resamples() -> None:
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(X), size=(30, len(X)))  # resamples with replacement: many ties
    bx, by = X[idx], Y[idx]
    pairs = list(zip(bx, by, strict=True))
    np.testing.assert_allclose(_kendall_rows(bx, by), [stats.kendalltau(a, b)[0] for a, b in pairs])
    spear = _pearson_rows(stats.rankdata(bx, axis=1), stats.rankdata(by, axis=1))
    np.testing.assert_allclose(spear, [stats.spearmanr(a, b)[0] for a, b in pairs])
    np.testing.assert_allclose(_pearson_rows(bx, by), [stats.pearsonr(a, b)[0] for a, b in pairs])


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([1, 2, 3], [1, 2], "same length"),
        ([1, 2], [1, 2], "at least 3"),
        ([1, np.nan, 3], [1, 2, 3], "non-finite"),
        ([1, 2, 3], [1, np.inf, 3], "non-finite"),
        ([2, 2, 2], [1, 2, 3], "constant"),
    ],
)
def test_correlations_validate_input(x, y, message) -> None:
    with pytest.raises(ValueError, match=message):
        correlations(x, y)


def test_measure_with_the_real_view_pipeline() -> None:
    """Integration with augkd.augment's ViewPipeline (CutMix extra DA): chunked == naive."""
    pipeline_mod = pytest.importorskip("augkd.augment.pipeline")
    from augkd.augment import create

    def make():
        return pipeline_mod.ViewPipeline(
            create("crop+flip"), create("cutmix"), pipeline_mod.Normalize((0.5,) * 3, (0.25,) * 3)
        )

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 16, 16), generator=g, dtype=torch.uint8)
    teacher = TinyNet()
    result = measure_t_stddev(teacher, images, make(), epochs=1, batch_size=8, group_size=2,
                              generator=torch.Generator().manual_seed(3), progress=False)
    stream = naive_stream(teacher, images, make(), epochs=1, batch_size=8, seed=3)
    want, want_means = hand_t_stddev(stream, 2)
    assert result.n_groups == 5
    np.testing.assert_allclose(result.group_means.numpy(), want_means, rtol=1e-5, atol=1e-7)
    assert result.value == pytest.approx(want, rel=1e-4)
