"""Samplers behind prepared DataLoaders: a seeded permutation, and this rank's batches of a batch sampler.

Rank *r* of *n* takes batch *r* of every round of *n* batches (per-rank batch size) or slice *r* of
every batch (``split_batches``). The last round's samples are shared evenly over the ranks; with
``even_batches`` they are padded from the start of the epoch only when there are fewer samples than
ranks, and :attr:`ShardedBatchSampler.padding` says how many were added.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sized
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler

from accel.exceptions import PrepareError


class SeedableRandomSampler(RandomSampler):
    """A ``RandomSampler`` whose order is drawn from ``seed + epoch``: the same on every rank, reproducible on resume.

    Takes ``RandomSampler``'s arguments (``data_source``, ``replacement``, ``num_samples``, ``generator``)
    and Accelerate's ``data_seed``. The seed is ``data_seed``, else the generator's initial seed, else
    torch's (so ``set_seed`` controls it). ``set_epoch(e)`` chooses the permutation.
    """

    def __init__(
        self,
        data_source: Sized,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: torch.Generator | None = None,
        data_seed: int | None = None,
    ) -> None:
        super().__init__(data_source, replacement=replacement, num_samples=num_samples, generator=generator)
        if data_seed is not None:
            self.seed = int(data_seed)
        else:
            self.seed = int(generator.initial_seed() if generator is not None else torch.initial_seed())
        self.epoch = 0
        self._own = generator if generator is not None else torch.Generator()

    @property
    def initial_seed(self) -> int:
        """The seed the order is drawn from (Accelerate's name)."""
        return self.seed

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        self._own.manual_seed(self.seed + self.epoch)
        self.generator = self._own
        yield from super().__iter__()


class SeededRandomSampler(SeedableRandomSampler):
    """A seeded permutation of ``range(length)`` (the shuffled order of a prepared DataLoader)."""

    def __init__(self, length: int, seed: int) -> None:
        super().__init__(range(length), data_seed=seed)
        self.length = length


def _chunk(indices: list[int], parts: int, index: int) -> list[int]:
    per, extra = divmod(len(indices), parts)
    start = index * per + min(index, extra)
    return indices[start : start + per + (1 if index < extra else 0)]


class ShardedBatchSampler(Sampler[list[int]]):
    """This rank's batches from a batch sampler of the whole dataset (see the module docstring)."""

    def __init__(
        self,
        base: Iterable[list[int]],
        num_replicas: int,
        rank: int,
        split_batches: bool = False,
        even_batches: bool = True,
    ) -> None:
        self.base = base
        self.num_replicas = num_replicas
        self.rank = rank
        self.split_batches = split_batches
        self.even_batches = even_batches
        self.skip = 0
        self.padding = 0

    @property
    def batch_sampler(self) -> Iterable[list[int]]:
        """The batch sampler over the whole dataset (a custom one as given), as Accelerate exposes it."""
        return self.base

    @property
    def sampler(self) -> object:
        """The index sampler behind :attr:`batch_sampler` (None for a custom batch sampler without one)."""
        return getattr(self.base, "sampler", None)

    def __len__(self) -> int:
        total = len(self.base)  # type: ignore[arg-type]
        if self.split_batches:
            return total
        rounds, rest = divmod(total, self.num_replicas)
        if self.even_batches:
            return rounds + (1 if rest else 0)
        return rounds + (1 if self.rank < rest else 0)

    def __iter__(self) -> Iterator[list[int]]:
        self.padding = 0
        batches = self._split() if self.split_batches else self._rounds()
        skip, self.skip = self.skip, 0
        return itertools.islice(batches, skip, None)

    def _balance(self, flat: list[int], first: list[int]) -> list[int]:
        if self.even_batches and len(flat) < self.num_replicas:
            self.padding = self.num_replicas - len(flat)
            flat = flat + list(itertools.islice(itertools.cycle(first or flat), self.padding))
        return _chunk(flat, self.num_replicas, self.rank)

    def _split(self) -> Iterator[list[int]]:
        first: list[int] = []
        for batch in self.base:
            batch = list(batch)
            if not first:
                first = batch
            part = self._balance(batch, first)
            if part:
                yield part

    def _rounds(self) -> Iterator[list[int]]:
        n = self.num_replicas
        first: list[int] = []
        pending: list[list[int]] = []
        for batch in self.base:
            if len(first) < n:
                first.extend(batch)
            pending.append(list(batch))
            if len(pending) == n:
                if len(pending[-1]) == len(pending[0]):
                    yield pending[self.rank]
                else:  # a short last batch: share the round's samples evenly
                    yield self._balance([i for b in pending for i in b], first)
                pending = []
        if pending:
            if self.even_batches:
                part = self._balance([i for b in pending for i in b], first)
                if part:
                    yield part
            elif self.rank < len(pending):
                yield pending[self.rank]


def seeded_batches(
    loader: DataLoader[Any], seed: int
) -> tuple[Sampler[list[int]] | Iterable[list[int]], SeedableRandomSampler | None]:
    """The loader's batch sampler over the whole dataset, its shuffle replaced by a seeded one (and that sampler).

    A ``SeedableRandomSampler`` the user passed is kept with its own seed; a plain ``RandomSampler``
    (without replacement) becomes one seeded with ``seed``.
    """
    base = loader.batch_sampler
    if base is None:
        raise PrepareError("prepare() needs a DataLoader with a batch size (batch_size=None disables batching)")
    sampler = loader.sampler
    if isinstance(sampler, SeedableRandomSampler):
        return base, sampler
    if type(sampler) is RandomSampler and not sampler.replacement and isinstance(base, BatchSampler):
        shuffle = SeedableRandomSampler(sampler.data_source, num_samples=sampler.num_samples, data_seed=seed)
        return BatchSampler(shuffle, base.batch_size, base.drop_last), shuffle
    return base, None
