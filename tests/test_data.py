"""Sharding, seeded order and positions of prepared DataLoaders (no process group needed)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from accel.data import GradientState, shard, skip_first_batches
from accel.exceptions import ConfigError, PrepareError
from accel.sampling import SeededRandomSampler, ShardedBatchSampler


def _shards(n: int, batch: int, world: int, **kwargs: bool) -> list[list[list[int]]]:
    base = torch.utils.data.BatchSampler(range(n), batch, drop_last=False)
    return [list(ShardedBatchSampler(base, world, rank, **kwargs)) for rank in range(world)]


def test_round_robin_batches_cover_the_data_set_once() -> None:
    shards = _shards(16, 4, 2)
    assert shards[0] == [[0, 1, 2, 3], [8, 9, 10, 11]]
    assert shards[1] == [[4, 5, 6, 7], [12, 13, 14, 15]]


def test_last_round_is_shared_evenly_without_duplicates() -> None:
    shards = _shards(10, 4, 2)
    assert shards[0][-1] == [8] and shards[1][-1] == [9]
    assert sorted(i for s in shards for b in s for i in b) == list(range(10))


def test_even_batches_pads_only_when_fewer_samples_than_ranks() -> None:
    base = torch.utils.data.BatchSampler(range(9), 4, drop_last=False)
    samplers = [ShardedBatchSampler(base, 3, r) for r in range(3)]
    shards = [list(s) for s in samplers]
    assert [len(s) for s in shards] == [1, 1, 1]
    assert shards == [[[0, 1, 2]], [[3, 4, 5]], [[6, 7, 8]]]  # a short round is shared evenly
    base = torch.utils.data.BatchSampler(range(5), 2, drop_last=False)
    shards = [list(ShardedBatchSampler(base, 4, r)) for r in range(4)]
    assert shards == [[[0, 1]], [[2]], [[3]], [[4]]]
    base = torch.utils.data.BatchSampler(range(3), 2, drop_last=False)
    samplers = [ShardedBatchSampler(base, 4, r) for r in range(4)]
    shards = [list(s) for s in samplers]
    assert shards == [[[0]], [[1]], [[2]], [[0]]]
    assert samplers[0].padding == 1


def test_uneven_batches_when_requested() -> None:
    shards = _shards(12, 4, 2, even_batches=False)
    assert [len(s) for s in shards] == [2, 1]
    assert len(ShardedBatchSampler(torch.utils.data.BatchSampler(range(12), 4, False), 2, 1, even_batches=False)) == 1


def test_split_batches_slices_each_global_batch() -> None:
    shards = _shards(8, 4, 2, split_batches=True)
    assert shards[0] == [[0, 1], [4, 5]] and shards[1] == [[2, 3], [6, 7]]


def test_seeded_order_is_identical_per_epoch_and_changes_between_epochs() -> None:
    sampler = SeededRandomSampler(20, seed=5)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(sampler) == list(range(20))


def _prepared(n: int = 12, batch: int = 2, world: int = 1, rank: int = 0, shuffle: bool = True) -> object:
    loader = DataLoader(torch.arange(n), batch_size=batch, shuffle=shuffle)
    return shard(loader, num_replicas=world, rank=rank, device=torch.device("cpu"), state=GradientState(), seed=3)


def test_position_resume_and_explicit_skip_do_not_double_skip() -> None:
    loader = _prepared()
    epoch0 = [b.tolist() for b in loader]
    epoch1 = [b.tolist() for b in loader]
    assert epoch0 != epoch1
    # interrupted after 2 batches of epoch 1
    fresh = _prepared()
    list(fresh)
    it = iter(fresh)
    next(it), next(it)
    state = fresh.state_dict()
    assert state == {"epoch": 1, "position": 2, "seed": 3}
    # Accelerate's idiom: load, skip_first_batches for the rest of the epoch, then plain epochs
    resumed = _prepared()
    resumed.load_state_dict(state)
    rest = [b.tolist() for b in skip_first_batches(resumed, 2)]
    assert rest == epoch1[2:]
    following = [b.tolist() for b in resumed]
    reference = _prepared()
    list(reference), list(reference)
    assert following == [b.tolist() for b in reference]
    # without the idiom, the next plain loop resumes the epoch by itself
    auto = _prepared()
    auto.load_state_dict(state)
    assert [b.tolist() for b in auto] == epoch1[2:]


def test_dataloader_subclass_is_rejected_with_the_fix() -> None:
    class Custom(DataLoader):  # type: ignore[type-arg]
        pass

    with pytest.raises(PrepareError, match=r"plain torch\.utils\.data\.DataLoader"):
        shard(
            Custom(torch.arange(4), batch_size=2),
            num_replicas=1,
            rank=0,
            device=torch.device("cpu"),
            state=GradientState(),
            seed=0,
        )


def test_split_batches_needs_a_divisible_batch_size() -> None:
    with pytest.raises(ConfigError, match="divisible"):
        shard(
            DataLoader(torch.arange(9), batch_size=3),
            num_replicas=2,
            rank=0,
            device=torch.device("cpu"),
            state=GradientState(),
            seed=0,
            split_batches=True,
        )


def test_batches_are_moved_and_structures_kept() -> None:
    from collections import namedtuple

    pair = namedtuple("pair", "x y")
    data = [pair(torch.tensor([i]), {"k": torch.tensor(i)}) for i in range(4)]
    loader = shard(
        DataLoader(data, batch_size=2),
        num_replicas=1,
        rank=0,
        device=torch.device("cpu"),
        state=GradientState(),
        seed=0,
    )
    batch = next(iter(loader))
    assert type(batch).__name__ == "pair" and set(batch.y) == {"k"}


def test_set_epoch_gives_exactly_that_epochs_order_earlier_ones_too() -> None:
    loader = _prepared()
    orders = [[b.tolist() for b in loader] for _ in range(3)]
    assert orders[0] != orders[1] != orders[2]
    for epoch in (0, 2, 1, 0):
        loader.set_epoch(epoch)
        assert [b.tolist() for b in loader] == orders[epoch]
    assert [b.tolist() for b in loader] == orders[1]  # and plain iteration moves on from there


def test_set_epoch_keeps_a_restored_position_only_for_its_own_epoch() -> None:
    loader = _prepared()
    epoch1 = [[b.tolist() for b in loader] for _ in range(2)][1]
    resumed = _prepared()
    resumed.load_state_dict({"epoch": 1, "position": 2, "seed": 3})
    resumed.set_epoch(1)
    assert [b.tolist() for b in resumed] == epoch1[2:]
    other = _prepared()
    other.load_state_dict({"epoch": 1, "position": 2, "seed": 3})
    other.set_epoch(0)
    assert len(list(other)) == len(epoch1)
