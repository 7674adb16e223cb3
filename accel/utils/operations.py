"""``accel.utils.operations``: the collectives, at the path Accelerate scripts import them from."""

from __future__ import annotations

from accel.exceptions import DistributedOperationException
from accel.ops import (
    apply,
    broadcast,
    broadcast_object_list,
    find_batch_size,
    gather,
    gather_object,
    has_tensor,
    pad_across_processes,
    reduce,
    send_to_device,
)

__all__ = [
    "DistributedOperationException",
    "apply",
    "broadcast",
    "broadcast_object_list",
    "find_batch_size",
    "gather",
    "gather_object",
    "has_tensor",
    "pad_across_processes",
    "reduce",
    "send_to_device",
]
