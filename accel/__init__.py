"""accel: run PyTorch training on any distributed setup.

``from accel import Accelerator`` is all a training script needs; ``accel launch`` starts it on
one process, N CPU/GPU processes or several machines through torch's elastic launcher.

Names are loaded on first use so that ``accel --help`` and ``accel config`` never import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from accel.version import __version__

_EXPORTS = {
    "Accelerator": "accel.accelerator",
    "PartialState": "accel.state",
    "AcceleratorState": "accel.accelerator_state",
    "synchronize_rng_states": "accel.rng",
    "DistributedType": "accel.state",
    "notebook_launcher": "accel.launch.notebook",
    "skip_first_batches": "accel.data",
    "prepare_data_loader": "accel.data_loader",
    "find_executable_batch_size": "accel.memory",
    "DataLoaderConfiguration": "accel.plugins",
    "GradientAccumulationPlugin": "accel.plugins",
    "ProjectConfiguration": "accel.plugins",
    "DistributedDataParallelKwargs": "accel.plugins",
    "InitProcessGroupKwargs": "accel.plugins",
    "GradScalerKwargs": "accel.plugins",
    "FullyShardedDataParallelPlugin": "accel.plugins",
}

__all__ = [*sorted(_EXPORTS), "__version__"]

if TYPE_CHECKING:
    from accel.accelerator import Accelerator
    from accel.accelerator_state import AcceleratorState
    from accel.data import skip_first_batches
    from accel.data_loader import prepare_data_loader
    from accel.launch.notebook import notebook_launcher
    from accel.memory import find_executable_batch_size
    from accel.plugins import (
        DataLoaderConfiguration,
        DistributedDataParallelKwargs,
        FullyShardedDataParallelPlugin,
        GradientAccumulationPlugin,
        GradScalerKwargs,
        InitProcessGroupKwargs,
        ProjectConfiguration,
    )
    from accel.rng import synchronize_rng_states
    from accel.state import DistributedType, PartialState


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'accel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
