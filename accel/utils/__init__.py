"""``accel.utils``: the helper names Accelerate scripts import, re-exported from where they live.

Names load on first use, so ``from accel.utils import write_basic_config`` or an ``is_*_available``
check does not import torch until it needs to. Submodules mirror Accelerate's paths:
``accel.utils.operations`` (collectives), ``accel.utils.dataclasses`` (option objects and enums),
``accel.utils.imports`` (``is_*_available``), ``accel.utils.random`` (seeds).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from accel.utils import imports as _imports

_EXPORTS: dict[str, str] = {
    "skip_first_batches": "accel.data",
    "find_executable_batch_size": "accel.memory",
    "DataLoaderConfiguration": "accel.plugins",
    "DistributedDataParallelKwargs": "accel.plugins",
    "FullyShardedDataParallelPlugin": "accel.plugins",
    "GradientAccumulationPlugin": "accel.plugins",
    "GradScalerKwargs": "accel.plugins",
    "InitProcessGroupKwargs": "accel.plugins",
    "KwargsHandler": "accel.plugins",
    "ProjectConfiguration": "accel.plugins",
    "DistributedType": "accel.state",
    "RNGType": "accel.rng",
    "set_seed": "accel.rng",
    "synchronize_rng_states": "accel.rng",
    "broadcast": "accel.ops",
    "broadcast_object_list": "accel.ops",
    "find_batch_size": "accel.ops",
    "gather": "accel.ops",
    "gather_object": "accel.ops",
    "pad_across_processes": "accel.ops",
    "reduce": "accel.ops",
    "send_to_device": "accel.ops",
    "DistributedOperationException": "accel.exceptions",
    "write_basic_config": "accel.utils.basic_config",
    **dict.fromkeys(_imports.__all__, "accel.utils.imports"),
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from accel.data import skip_first_batches
    from accel.exceptions import DistributedOperationException
    from accel.memory import find_executable_batch_size
    from accel.ops import (
        broadcast,
        broadcast_object_list,
        find_batch_size,
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
        KwargsHandler,
        ProjectConfiguration,
    )
    from accel.rng import RNGType, set_seed, synchronize_rng_states
    from accel.state import DistributedType
    from accel.utils.basic_config import write_basic_config
    from accel.utils.imports import *  # noqa: F403


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'accel.utils' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*__all__, "dataclasses", "imports", "operations", "random"]
