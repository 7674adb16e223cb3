"""``accel.data_loader``: prepare a DataLoader without an ``Accelerator`` (Accelerate's module path).

:func:`prepare_data_loader` takes Accelerate's arguments and returns the same prepared DataLoader as
``accelerator.prepare(loader)``: this rank's shard in a seeded, resumable order, keeping ``dataset``,
``batch_size``, ``sampler`` and ``batch_sampler``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, RandomSampler

from accel import env
from accel.data import PreparedDataLoader, shard, skip_first_batches
from accel.exceptions import ConfigError
from accel.gradient_state import GradientState
from accel.rng import check_rng_types
from accel.sampling import SeedableRandomSampler
from accel.world import discover

__all__ = ["PreparedDataLoader", "SeedableRandomSampler", "prepare_data_loader", "skip_first_batches"]


def _coordinates(num_processes: int | None, process_index: int | None) -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        world, rank = dist.get_world_size(), dist.get_rank()
    else:
        found = discover(env.snapshot())
        world, rank = found.world_size, found.rank
    world = world if num_processes is None else num_processes
    rank = rank if process_index is None else process_index
    if not 0 <= rank < world:
        raise ConfigError(f"prepare_data_loader(process_index={rank}): expected 0 <= process_index < {world}")
    return world, rank


def _seed(dataloader: DataLoader[Any], data_seed: int | None, world: int) -> int:
    if data_seed is not None:
        return int(data_seed)
    drawn = torch.randint(0, 2**31 - 1, (1,), dtype=torch.int64)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        if dist.get_backend() == "nccl":
            drawn = drawn.cuda()
        dist.broadcast(drawn, src=0)  # the same shuffled order on every rank
    elif world > 1 and type(dataloader.sampler) is RandomSampler:
        raise ConfigError(
            f"prepare_data_loader(num_processes={world}) on a shuffling DataLoader without a process group: "
            "pass data_seed=<int> so that every rank draws the same order"
        )
    return int(drawn.item())


def prepare_data_loader(
    dataloader: DataLoader[Any],
    device: torch.device | str | None = None,
    num_processes: int | None = None,
    process_index: int | None = None,
    split_batches: bool = False,
    put_on_device: bool = False,
    rng_types: list[str] | None = None,
    dispatch_batches: bool | None = None,
    even_batches: bool = True,
    slice_fn_for_dispatch: Callable[..., Any] | None = None,
    use_seedable_sampler: bool = True,
    data_seed: int | None = None,
    non_blocking: bool = False,
    use_stateful_dataloader: bool = False,
    torch_device_mesh: Any = None,
) -> PreparedDataLoader:
    """This rank's shard of ``dataloader`` (the world comes from the process group unless given).

    Args:
        device: where batches go when ``put_on_device`` (default: they stay where the collate put them).
        num_processes / process_index: the world to shard for (default: the process group's).
        split_batches: each rank takes a slice of every batch instead of whole batches.
        rng_types: generators synchronised from rank 0 when each iteration starts (``"generator"``: nothing
            to do, the order is always seeded).
        dispatch_batches: the main process reads, batches are broadcast (needs a process group).
        even_batches: pad the last round so every rank gets as many batches.
        use_seedable_sampler: the order is always seeded (``data_seed``, else drawn on rank 0); ``False`` is
            refused, as in :class:`~accel.plugins.DataLoaderConfiguration`.
        data_seed: seed of the shuffled order.
        non_blocking: non-blocking host-to-device copies.

    ``slice_fn_for_dispatch``, ``use_stateful_dataloader`` and ``torch_device_mesh`` are refused: prepared
    DataLoaders have ``state_dict()`` built in, and dispatched batches are sliced along the first dimension.
    """
    refused = {
        "slice_fn_for_dispatch": (slice_fn_for_dispatch is not None, "dispatched batches are sliced on dim 0"),
        "use_stateful_dataloader": (use_stateful_dataloader, "prepared DataLoaders have state_dict() built in"),
        "torch_device_mesh": (torch_device_mesh is not None, "accel shards over the whole world"),
        "use_seedable_sampler": (
            use_seedable_sampler is not True,
            "the shuffled order always comes from a seed and the epoch (set data_seed to choose it); drop the argument",
        ),
    }
    for name, (given, why) in refused.items():
        if given:
            raise ConfigError(f"prepare_data_loader({name}=...) is not supported: {why}")
    names = check_rng_types(rng_types, "prepare_data_loader")
    world, rank = _coordinates(num_processes, process_index)
    if dispatch_batches and world > 1 and not (dist.is_available() and dist.is_initialized()):
        raise ConfigError("prepare_data_loader(dispatch_batches=True) needs a process group (create PartialState())")
    target = torch.device(device) if put_on_device and device is not None else torch.device("cpu")
    prepared = shard(
        dataloader,
        num_replicas=world,
        rank=rank,
        device=target,
        state=GradientState(),
        seed=_seed(dataloader, data_seed, world),
        split_batches=split_batches,
        even_batches=even_batches,
        non_blocking=non_blocking,
        dispatch_batches=dispatch_batches,
    )
    prepared.rng_types = names
    return prepared
