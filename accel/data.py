"""DataLoader sharding by wrapping the sampler, with a seedable, resumable order.

``prepare(dataloader)`` keeps the user's dataset, collate function and worker settings, and builds
a DataLoader over a :class:`ShardedBatchSampler`: rank *r* of *n* takes batch *r* of every round of
*n* batches (``split_batches=False``, per-rank batch size) or slice *r* of every batch
(``split_batches=True``, global batch size). A shuffled order comes from ``seed + epoch`` and is
identical on every rank, so sharding is disjoint and a resumed run sees the same permutation.

The last round is balanced: its samples are split evenly over the ranks, and with
``even_batches=True`` padded with samples from the start of the epoch only when there are fewer
samples than ranks; :meth:`PreparedDataLoader.padding` tells ``gather_for_metrics`` how many to drop.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, IterableDataset, Sampler

from accel.exceptions import ConfigError, PrepareError
from accel.gradient_state import GradientState as GradientState
from accel.ops import send_to_device
from accel.sampling import SeedableRandomSampler, ShardedBatchSampler, seeded_batches


class PreparedDataLoader:
    """Iterates this rank's shard, moves batches to the device, and remembers its position.

    The epoch counts iterations started; ``state_dict()`` records the epoch in progress, the batches
    already yielded in it and the seed, so a resumed run continues mid-epoch on the same permutation.
    """

    def __init__(
        self,
        loader: DataLoader[Any],
        device: torch.device,
        state: GradientState,
        sharded: ShardedBatchSampler | None = None,
        sampler: SeedableRandomSampler | None = None,
        seed: int = 0,
        non_blocking: bool = False,
    ) -> None:
        self.loader = loader
        self.base_dataloader = loader
        self.device = device
        self.gradient_state = state
        self.sharded = sharded
        self.sampler_shuffle = sampler
        self.seed = seed
        self.non_blocking = non_blocking
        self.epochs_started = 0
        self.position = 0
        self._in_progress = False
        self._resume = 0
        self.rng_types: list[str] = []  # generators synchronised from rank 0 when each iteration starts

    # ----------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[Any]:
        skip, self._resume = self._resume, 0
        return self._iterate(skip)

    def skip_first_batches(self, num_batches: int) -> Iterator[Any]:
        """Iterate the next epoch from batch ``num_batches`` (replaces a pending resume position)."""
        self._resume = 0
        return self._iterate(num_batches)

    def _iterate(self, skip: int) -> Iterator[Any]:
        epoch = self.epochs_started
        self.epochs_started += 1
        self._order_for(epoch)
        synced = [t for t in self.rng_types if str(t) != "generator"]  # the order itself is already seeded
        if synced:
            from accel.rng import synchronize_rng_states

            synchronize_rng_states(synced)
        if self.sharded is not None:
            self.sharded.skip = skip
        generator = self.loader.generator
        if generator is not None:
            generator.manual_seed(self.seed + 7919 * (epoch + 1))
        self.position, self._in_progress = skip, True
        try:
            yield from self._batches(iter(self.loader) if self.sharded else itertools.islice(self.loader, skip, None))
            self._in_progress = False
        finally:
            if self.gradient_state.active is self:
                self.gradient_state.active = None
                self.gradient_state.end_of_dataloader = False

    def _batches(self, batches: Iterator[Any]) -> Iterator[Any]:
        state = self.gradient_state
        state.active, state.end_of_dataloader = self, False
        total = self._length()
        on_cpu = self.device.type == "cpu"
        done = object()
        current = next(batches, done)
        while current is not done:
            if state.on_batch is not None:
                state.on_batch(self)
            upcoming = next(batches, done)
            last = upcoming is done
            self.position += 1
            state.active = self
            state.end_of_dataloader = last
            state.batches_left = None if total is None else total - self.position + 1
            yield current if on_cpu else send_to_device(current, self.device, self.non_blocking)
            current = upcoming

    # ----------------------------------------------------------------- accessors
    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch``, with exactly that epoch's order (earlier ones too).

        Iterating without calling it moves on by one epoch each time. A position restored by
        ``load_state`` is kept for its own epoch and dropped when another epoch is chosen.
        """
        if epoch != self.epochs_started:
            self._resume = 0
        self.epochs_started = epoch
        self._order_for(epoch)

    def _order_for(self, epoch: int) -> None:
        if self.sampler_shuffle is not None:
            self.sampler_shuffle.set_epoch(epoch)
        set_inner = getattr(getattr(self.loader, "sampler", None), "set_epoch", None)
        if self.sampler_shuffle is None and callable(set_inner):
            set_inner(epoch)

    def _length(self) -> int | None:
        try:
            return len(self)
        except TypeError:
            return None

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def padding(self) -> int:
        """Samples duplicated in the last round to keep ranks even."""
        return self.sharded.padding if self.sharded is not None else int(getattr(self.loader, "padding", 0))

    @property
    def dataset(self) -> Any:
        """The user's dataset."""
        return self.loader.dataset

    @property
    def batch_size(self) -> int | None:
        """Per-rank batch size (None when a custom batch sampler has none)."""
        if self.sharded is None:
            return self.loader.batch_size
        base = getattr(self.sharded.base, "batch_size", None)
        if base is None:
            return None
        return int(base) // self.sharded.num_replicas if self.sharded.split_batches else int(base)

    @property
    def batch_sampler(self) -> Any:
        """This rank's batch sampler; its ``batch_sampler`` is the whole dataset's (a custom one as given)."""
        return self.loader.batch_sampler

    @property
    def sampler(self) -> Any:
        """The index sampler that orders the dataset (the seeded one when the DataLoader shuffles)."""
        if self.sampler_shuffle is not None:
            return self.sampler_shuffle
        inner = getattr(self.loader.batch_sampler, "sampler", None)
        return inner if inner is not None else getattr(self.loader, "sampler", None)

    @property
    def total_batch_size(self) -> int | None:
        """Samples per step across all ranks."""
        if self.sharded is None or self.loader.batch_sampler is None:
            return self.batch_size
        base = getattr(self.sharded.base, "batch_size", None)
        if base is None:
            return None
        return int(base) if self.sharded.split_batches else int(base) * self.sharded.num_replicas

    # ----------------------------------------------------------------- checkpoint
    def state_dict(self) -> dict[str, int]:
        """Epoch, position in it, and seed."""
        epoch = self.epochs_started - 1 if self._in_progress else self.epochs_started
        return {"epoch": epoch, "position": self.position if self._in_progress else 0, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a recorded position: the next iteration resumes it (unless skipped explicitly)."""
        self.epochs_started = int(state["epoch"])
        self._resume = int(state["position"])
        self.seed = int(state["seed"])
        if self.sampler_shuffle is not None:
            self.sampler_shuffle.seed = self.seed
        self.position, self._in_progress = 0, False


_COPIED = ("num_workers", "collate_fn", "pin_memory", "timeout", "worker_init_fn", "persistent_workers")


def _rebuild(loader: DataLoader[Any], batch_sampler: Sampler[list[int]]) -> DataLoader[Any]:
    kwargs: dict[str, Any] = {name: getattr(loader, name) for name in _COPIED}
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
        kwargs["multiprocessing_context"] = loader.multiprocessing_context
    kwargs["pin_memory_device"] = getattr(loader, "pin_memory_device", "")
    return DataLoader(loader.dataset, batch_sampler=batch_sampler, generator=torch.Generator(), **kwargs)


def shard(
    loader: DataLoader[Any],
    *,
    num_replicas: int,
    rank: int,
    device: torch.device,
    state: GradientState,
    seed: int,
    split_batches: bool = False,
    even_batches: bool = True,
    non_blocking: bool = False,
    dispatch_batches: bool | None = None,
) -> PreparedDataLoader:
    """Wrap ``loader`` so that this rank iterates its shard (see the module docstring).

    With ``dispatch_batches`` only the main process reads the data (see :mod:`accel.dispatch`).
    """
    if type(loader) is not DataLoader:
        raise PrepareError(
            f"prepare() got a {type(loader).__name__}, a DataLoader subclass whose constructor accel cannot "
            "reproduce; pass a plain torch.utils.data.DataLoader (put custom logic in the dataset or collate_fn)"
        )
    if dispatch_batches and num_replicas > 1:
        from accel.dispatch import dispatch

        return dispatch(loader, num_replicas, rank, device, state, seed, split_batches, even_batches, non_blocking)
    if isinstance(loader.dataset, IterableDataset):
        return PreparedDataLoader(_IterableShard(loader, num_replicas, rank), device, state, seed=seed)  # type: ignore[arg-type]
    base, shuffle = seeded_batches(loader, seed)
    if isinstance(shuffle, SeedableRandomSampler):
        seed = shuffle.seed
    if split_batches and isinstance(base, BatchSampler) and base.batch_size % num_replicas:
        raise ConfigError(
            f"split_batches=True needs a batch size divisible by the {num_replicas} processes; "
            f"got batch_size={base.batch_size}"
        )
    sharded = ShardedBatchSampler(base, num_replicas, rank, split_batches, even_batches)
    return PreparedDataLoader(_rebuild(loader, sharded), device, state, sharded, shuffle, seed, non_blocking)


class _IterableShard:
    """Every ``num_replicas``-th batch of an iterable-dataset DataLoader (each rank reads the stream)."""

    def __init__(self, loader: DataLoader[Any], num_replicas: int, rank: int) -> None:
        self.loader, self.num_replicas, self.rank = loader, num_replicas, rank
        self.generator: torch.Generator | None = None
        self.dataset, self.batch_size = loader.dataset, loader.batch_size
        self.batch_sampler = None

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.loader), self.rank, None, self.num_replicas)

    def __len__(self) -> int:
        return len(self.loader) // self.num_replicas


class _Skipped:
    def __init__(self, loader: Iterable[Any], num_batches: int) -> None:
        self.loader, self.num_batches = loader, num_batches

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.loader), self.num_batches, None)

    def __len__(self) -> int:
        return max(len(self.loader) - self.num_batches, 0)  # type: ignore[arg-type]


def skip_first_batches(dataloader: Iterable[Any], num_batches: int = 0) -> Iterable[Any]:
    """The rest of an epoch after ``num_batches`` batches (for resuming mid-epoch)."""
    if isinstance(dataloader, PreparedDataLoader):
        return _PreparedSkip(dataloader, num_batches)
    return _Skipped(dataloader, num_batches)


class _PreparedSkip:
    def __init__(self, loader: PreparedDataLoader, num_batches: int) -> None:
        self.loader, self.num_batches = loader, num_batches

    def __iter__(self) -> Iterator[Any]:
        return self.loader.skip_first_batches(self.num_batches)

    def __len__(self) -> int:
        return max(len(self.loader) - self.num_batches, 0)
