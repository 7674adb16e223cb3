"""``dispatch_batches``: the main process reads the data, every rank receives its batch.

For datasets that are expensive or impossible to read on every rank (a stream, a remote source),
``DataLoaderConfiguration(dispatch_batches=True)`` makes rank 0 iterate the DataLoader over the
whole dataset (shuffled in the seeded order). Each round it reads one batch per rank (or one global
batch, sliced per rank, with ``split_batches``) and broadcasts them; rank *r* keeps batch *r*, so
the assignment of batches to ranks is the same as without dispatching.

The last round may have fewer batches than ranks: with ``even_batches`` the ranks left without one
repeat a batch of that round (``gather_for_metrics`` drops them again), without it they stop early.
Batches travel as pickled objects (``broadcast_object_list``), so any collate output works.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset

from accel.data import PreparedDataLoader, _rebuild
from accel.gradient_state import GradientState
from accel.ops import apply, find_batch_size
from accel.sampling import seeded_batches

__all__ = ["DispatchedBatches", "dispatch"]


class DispatchedBatches:
    """Iterates this rank's batches of rounds read and broadcast by rank 0 (see the module docstring)."""

    def __init__(
        self, loader: DataLoader[Any], num_replicas: int, rank: int, split_batches: bool, even_batches: bool
    ) -> None:
        self.loader = loader
        self.num_replicas, self.rank = num_replicas, rank
        self.split_batches, self.even_batches = split_batches, even_batches
        self.generator: torch.Generator | None = None
        self.dataset = loader.dataset
        self.batch_sampler = loader.batch_sampler
        self.sampler = loader.sampler
        self.batch_size = loader.batch_size
        self.padding = 0

    def _round(self, source: Iterator[Any] | None) -> list[Any]:
        """Rank 0 reads the next round, every rank returns it (empty at the end)."""
        per_round = 1 if self.split_batches else self.num_replicas
        payload = [list(itertools.islice(source, per_round)) if source is not None else None]
        dist.broadcast_object_list(payload, src=0)
        return list(payload[0] or [])

    def __iter__(self) -> Iterator[Any]:
        self.padding = 0
        source = iter(self.loader) if self.rank == 0 else None
        per_round = 1 if self.split_batches else self.num_replicas
        while True:
            batches = self._round(source)
            if not batches:
                return
            mine = self._slice(batches[0]) if self.split_batches else self._pick(batches)
            if mine is not None:
                yield mine
            if len(batches) < per_round:  # the source ran out: every rank sees it in the same round
                return

    def _pick(self, batches: list[Any]) -> Any:
        if self.even_batches:  # every rank counts the repeated samples, for gather_for_metrics
            repeated = [batches[r % len(batches)] for r in range(len(batches), self.num_replicas)]
            self.padding = sum(find_batch_size(b) or 0 for b in repeated)
        if self.rank < len(batches):
            return batches[self.rank]
        return batches[self.rank % len(batches)] if self.even_batches else None

    def _slice(self, batch: Any) -> Any:
        size = find_batch_size(batch) or 0
        n = self.num_replicas
        if size < n:
            if not self.even_batches and self.rank >= size:
                return None
            self.padding = n - size if self.even_batches else 0
            index = min(self.rank, size - 1)
            return apply(lambda t: t[index : index + 1], batch)
        per, extra = divmod(size, n)
        start = self.rank * per + min(self.rank, extra)
        end = start + per + (1 if self.rank < extra else 0)
        return apply(lambda t: t[start:end], batch)

    def __len__(self) -> int:
        total = len(self.loader)
        if self.split_batches:
            return total
        rounds, rest = divmod(total, self.num_replicas)
        return rounds + (1 if rest and (self.even_batches or self.rank < rest) else 0)


def dispatch(
    loader: DataLoader[Any],
    num_replicas: int,
    rank: int,
    device: torch.device,
    state: GradientState,
    seed: int,
    split_batches: bool,
    even_batches: bool,
    non_blocking: bool,
) -> PreparedDataLoader:
    """A prepared DataLoader whose batches rank 0 reads and broadcasts."""
    shuffle = None
    whole = loader
    if not isinstance(loader.dataset, IterableDataset):
        base, shuffle = seeded_batches(loader, seed)
        whole = _rebuild(loader, base)  # type: ignore[arg-type]
        seed = shuffle.seed if shuffle is not None else seed
    batches = DispatchedBatches(whole, num_replicas, rank, split_batches, even_batches)
    return PreparedDataLoader(batches, device, state, None, shuffle, seed, non_blocking)  # type: ignore[arg-type]
