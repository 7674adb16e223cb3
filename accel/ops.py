"""Collective operations on nested structures of tensors.

Every function works on tensors, or on lists / tuples / namedtuples / dicts of them, uses the
default process group, and is the identity (or a local equivalent) for a single process. Tensors
whose first dimension differs between ranks are gathered correctly (sizes are exchanged first).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.distributed as dist

from accel.exceptions import PrepareError

REDUCTIONS = ("sum", "mean", "max", "none")


def apply(fn: Callable[[torch.Tensor], Any], data: Any) -> Any:
    """Apply ``fn`` to every tensor in a nested structure, keeping the structure's types."""
    if isinstance(data, torch.Tensor):
        return fn(data)
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(apply(fn, v) for v in data))
    if isinstance(data, (list, tuple)):
        return type(data)(apply(fn, v) for v in data)
    if isinstance(data, Mapping):
        try:
            return type(data)({k: apply(fn, v) for k, v in data.items()})  # type: ignore[call-arg]
        except TypeError:
            return {k: apply(fn, v) for k, v in data.items()}
    return data


def has_tensor(data: Any) -> bool:
    """True when ``data`` (a tensor or a nested list/tuple/dict) holds at least one tensor."""
    if isinstance(data, torch.Tensor):
        return True
    if isinstance(data, (list, tuple)):
        return any(has_tensor(v) for v in data)
    if isinstance(data, Mapping):
        return any(has_tensor(v) for v in data.values())
    return False


def send_to_device(data: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """Move every tensor (or object with ``.to``) in ``data`` to ``device``."""
    if isinstance(data, torch.Tensor):
        return data.to(device, non_blocking=non_blocking)
    if isinstance(data, (list, tuple, Mapping)):
        return apply(lambda t: t.to(device, non_blocking=non_blocking), data)
    to = getattr(data, "to", None)
    return to(device) if callable(to) else data


def _check(operation: str, data: Any, dim: int = 0) -> None:
    """In debug mode (``ACCEL_DEBUG_MODE``), compare shapes across ranks first (see :mod:`accel.debug`)."""
    if _world() > 1:
        from accel import debug

        if debug.enabled():
            debug.check_shapes(operation, data, dim)


def _all_gather_single(out: torch.Tensor, tensor: torch.Tensor) -> None:
    """Every rank's ``tensor`` into ``out``, rank after rank (``all_gather_into_tensor`` before torch 2.13)."""
    (getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor)(out, tensor)


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _gather_one(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.ndim == 0:
        tensor = tensor.reshape(1)
    world = _world()
    if world == 1:
        return tensor
    tensor = tensor.contiguous()
    size = torch.tensor([tensor.shape[0]], device=tensor.device, dtype=torch.int64)
    sizes = [torch.empty_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    lengths = [int(s.item()) for s in sizes]
    longest = max(lengths)
    padded = _pad(tensor, longest, dim=0, value=0, first=False) if tensor.shape[0] < longest else tensor
    # one collective straight into the result: no list of parts, no concatenation when lengths agree
    out = torch.empty((world * longest, *padded.shape[1:]), dtype=padded.dtype, device=padded.device)
    _all_gather_single(out, padded)
    if all(n == longest for n in lengths):
        return out
    return torch.cat([out[r * longest : r * longest + n] for r, n in enumerate(lengths)], dim=0)


def gather(data: Any) -> Any:
    """Concatenate ``data`` from every rank along the first dimension (0-d tensors become 1-d)."""
    _check("gather", data)
    return apply(_gather_one, data)


def gather_object(obj: Any) -> list[Any]:
    """Gather any picklable object from every rank; lists are concatenated, other objects collected."""
    world = _world()
    if world == 1:
        return list(obj) if isinstance(obj, list) else [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    if all(isinstance(o, list) for o in out):
        return [item for part in out for item in part]
    return out


def reduce(data: Any, reduction: str = "mean", scale: float = 1.0) -> Any:
    """All-reduce tensors by ``mean`` (the default, as ``accelerate.utils.reduce``), ``sum`` or ``max``.

    ``none`` returns them as they are; the result is multiplied by ``scale``. ``Accelerator.reduce``
    defaults to ``sum``, as Accelerate's does.
    """
    if reduction not in REDUCTIONS:
        raise PrepareError(f"reduce(reduction={reduction!r}): expected one of {', '.join(REDUCTIONS)}")
    world = _world()
    if reduction != "none":
        _check("reduce", data)
    op = dist.ReduceOp.MAX if reduction == "max" else dist.ReduceOp.SUM

    def one(tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        if world > 1 and reduction != "none":
            dist.all_reduce(out, op=op)
        if reduction == "mean":
            out = out / world
        return out * scale if scale != 1.0 else out

    return apply(one, data)


def broadcast(data: Any, from_process: int = 0) -> Any:
    """Send tensors from ``from_process`` to every rank (in place on the receivers)."""
    if _world() == 1:
        return data
    _check("broadcast", data)

    def one(tensor: torch.Tensor) -> torch.Tensor:
        dist.broadcast(tensor, src=from_process)
        return tensor

    return apply(one, data)


def broadcast_object_list(objects: list[Any], from_process: int = 0) -> list[Any]:
    """Broadcast a list of picklable objects in place from ``from_process``."""
    if _world() > 1:
        dist.broadcast_object_list(objects, src=from_process)
    return objects


def _pad(tensor: torch.Tensor, size: int, dim: int, value: float, first: bool) -> torch.Tensor:
    shape = list(tensor.shape)
    shape[dim] = size - tensor.shape[dim]
    filler = torch.full(shape, value, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([filler, tensor] if first else [tensor, filler], dim=dim)


def pad_across_processes(data: Any, dim: int = 0, pad_index: int = 0, pad_first: bool = False) -> Any:
    """Pad tensors along ``dim`` to the largest size any rank has, so that they can be gathered."""
    world = _world()
    if world > 1:
        _check("pad_across_processes", data, dim)

    def one(tensor: torch.Tensor) -> torch.Tensor:
        if world == 1 or tensor.ndim == 0 or dim >= tensor.ndim:
            return tensor
        size = torch.tensor([tensor.shape[dim]], device=tensor.device, dtype=torch.int64)
        dist.all_reduce(size, op=dist.ReduceOp.MAX)
        longest = int(size.item())
        return tensor if tensor.shape[dim] == longest else _pad(tensor, longest, dim, pad_index, pad_first)

    return apply(one, data)


def find_batch_size(data: Any) -> int | None:
    """First dimension of the first tensor found in ``data`` (None when there is none)."""
    if isinstance(data, torch.Tensor):
        return int(data.shape[0]) if data.ndim else None
    values = data.values() if isinstance(data, Mapping) else data if isinstance(data, (list, tuple)) else ()
    for value in values:
        found = find_batch_size(value)
        if found is not None:
            return found
    return None
