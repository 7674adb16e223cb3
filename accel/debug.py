"""Debug mode for collectives: compare shapes across ranks first, and fail with every rank's shape.

With ``ACCEL_DEBUG_MODE=1`` (Accelerate's ``ACCELERATE_DEBUG_MODE``), ``gather``, ``reduce``,
``broadcast`` and ``pad_across_processes`` first exchange the shapes of their tensors. When they
cannot work together, every rank raises :class:`~accel.exceptions.DistributedOperationException`
naming each rank's shapes, instead of hanging or failing inside the backend. It costs one extra
small collective per call, so it is off by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.distributed as dist

from accel import env
from accel.exceptions import DistributedOperationException

__all__ = ["check_shapes", "enabled"]

Shape = tuple[int, ...]


def enabled() -> bool:
    """True when ``ACCEL_DEBUG_MODE`` is on."""
    return bool(env.get_bool(env.DEBUG_MODE))


def _shapes(data: Any) -> list[Shape]:
    if isinstance(data, torch.Tensor):
        return [tuple(data.shape)]
    if isinstance(data, Mapping):
        return [s for value in data.values() for s in _shapes(value)]
    if isinstance(data, (list, tuple)):
        return [s for value in data for s in _shapes(value)]
    return []


def _compatible(operation: str, every: list[list[Shape]], dim: int) -> bool:
    first = every[0]
    if any(len(shapes) != len(first) for shapes in every):
        return False
    for index, shape in enumerate(first):
        others = [shapes[index] for shapes in every]
        if any(len(other) != len(shape) for other in others):
            return False
        if operation in ("reduce", "broadcast"):
            if any(other != shape for other in others):
                return False
            continue
        free = 0 if operation == "gather" else dim  # the dimension that may differ between ranks
        if any(o[:free] + o[free + 1 :] != shape[:free] + shape[free + 1 :] for o in others):
            return False
    return True


def check_shapes(operation: str, data: Any, dim: int = 0) -> None:
    """Raise DistributedOperationException on every rank when ``data``'s shapes do not fit ``operation``.

    ``gather`` allows the first dimension to differ (accel pads it), ``pad_across_processes`` the
    padded dimension ``dim``; ``reduce`` and ``broadcast`` need identical shapes.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    every: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(every, _shapes(data))
    if _compatible(operation, every, dim):
        return
    ranks = "; ".join(
        f"rank {r}: {', '.join(str(list(s)) for s in shapes) or 'no tensors'}" for r, shapes in enumerate(every)
    )
    need = {
        "reduce": "identical shapes",
        "broadcast": "identical shapes",
        "gather": "shapes equal beyond the first dimension",
    }.get(operation, f"shapes equal except in dimension {dim}")
    raise DistributedOperationException(
        f"accel.utils.{operation}: the tensors do not match across ranks ({ranks}); it needs {need} on every rank"
    )
