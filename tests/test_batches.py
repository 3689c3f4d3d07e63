"""The one batch order: the slices of one permutation, pinned against the loops it replaced."""

from __future__ import annotations

import math

import pytest
import torch

from augkd.training.batches import shuffled_batches


def _old_slices(n, batch_size, seed, world=1):
    """The loop of train_epoch, pretrain_distiller and measure_t_stddev before the iterator."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, device="cpu", generator=generator)
    n_steps = math.ceil(n / batch_size)
    if 0 < n % batch_size < world:
        n_steps -= 1
    after = torch.rand(3, generator=generator)  # the augmentations' next draws
    return [order[s * batch_size:(s + 1) * batch_size] for s in range(n_steps)], after


@pytest.mark.parametrize("n, batch_size, world", [(1437, 64, 1), (1437, 64, 2), (1437, 64, 30),
                                                  (128, 64, 2), (5, 64, 1), (65, 64, 2)])
def test_batches_are_the_old_slices_and_leave_the_generator_where_it_was(n, batch_size, world):
    expected, after = _old_slices(n, batch_size, seed=7, world=world)
    generator = torch.Generator().manual_seed(7)
    batches = shuffled_batches(n, batch_size, generator, "cpu", min_last=world)
    got = list(batches)
    assert len(batches) == len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == torch.int64 and torch.equal(a, b)
    assert torch.equal(torch.rand(3, generator=generator), after)


def test_every_sample_once_and_the_last_partial_batch_kept():
    batches = shuffled_batches(10, 4, torch.Generator().manual_seed(0), "cpu")
    sizes = [len(index) for index in batches]
    assert sizes == [4, 4, 2]
    assert sorted(torch.cat(list(batches)).tolist()) == list(range(10))


def test_a_last_batch_smaller_than_min_last_is_dropped():
    assert [len(i) for i in shuffled_batches(9, 4, torch.Generator(), "cpu", min_last=2)] == [4, 4]
    assert [len(i) for i in shuffled_batches(10, 4, torch.Generator(), "cpu", min_last=2)] \
        == [4, 4, 2]


@pytest.mark.parametrize("n, batch_size", [(0, 4), (4, 0)])
def test_empty_input_is_refused(n, batch_size):
    with pytest.raises(ValueError, match="shuffled_batches"):
        shuffled_batches(n, batch_size, None, "cpu")
