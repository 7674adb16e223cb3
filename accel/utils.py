"""``accel.utils``: the helper names Accelerate scripts import, re-exported from where they live."""

from __future__ import annotations

from typing import Any

from accel.data import skip_first_batches
from accel.memory import find_executable_batch_size
from accel.ops import (
    broadcast,
    broadcast_object_list,
    gather,
    gather_object,
    pad_across_processes,
    reduce,
    send_to_device,
)
from accel.plugins import (
    DataLoaderConfiguration,
    DistributedDataParallelKwargs,
    FullyShardedDataParallelPlugin,
    GradientAccumulationPlugin,
    GradScalerKwargs,
    InitProcessGroupKwargs,
    ProjectConfiguration,
)
from accel.rng import set_seed, synchronize_rng_states
from accel.state import DistributedType


def write_basic_config(mixed_precision: str = "no", save_location: str | None = None, **settings: Any) -> Any:
    """Write a default config file (see ``accel config default``); returns its path."""
    from accel import config

    return config.write_basic_config(mixed_precision=mixed_precision, save_location=save_location, **settings)


__all__ = [
    "DataLoaderConfiguration",
    "DistributedDataParallelKwargs",
    "DistributedType",
    "FullyShardedDataParallelPlugin",
    "GradScalerKwargs",
    "GradientAccumulationPlugin",
    "InitProcessGroupKwargs",
    "ProjectConfiguration",
    "broadcast",
    "broadcast_object_list",
    "find_executable_batch_size",
    "gather",
    "gather_object",
    "pad_across_processes",
    "reduce",
    "send_to_device",
    "set_seed",
    "skip_first_batches",
    "synchronize_rng_states",
    "write_basic_config",
]
