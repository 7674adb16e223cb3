"""Samplers behind prepared DataLoaders: a seeded permutation, and this rank's batches of a batch sampler.

Rank *r* of *n* takes batch *r* of every round of *n* batches (per-rank batch size) or slice *r* of
every batch (``split_batches``). The last round's samples are shared evenly over the ranks; with
``even_batches`` they are padded from the start of the epoch only when there are fewer samples than
ranks, and :attr:`ShardedBatchSampler.padding` says how many were added.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import torch
from torch.utils.data import Sampler


class SeededRandomSampler(Sampler[int]):
    """A random permutation drawn from ``seed + epoch``: the same on every rank, reproducible on resume."""

    def __init__(self, length: int, seed: int) -> None:
        self.length = length
        self.seed = seed
        self.epoch = 0
        self._generator = torch.Generator()

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        self._generator.manual_seed(self.seed + self.epoch)
        yield from torch.randperm(self.length, generator=self._generator).tolist()

    def __len__(self) -> int:
        return self.length


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
