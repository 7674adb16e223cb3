"""``find_executable_batch_size``: retry a function with a smaller batch size after running out of memory."""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from accel.exceptions import ConfigError

T = TypeVar("T")
_OOM_MARKERS = ("out of memory", "CUDA error: out of memory", "DefaultCPUAllocator: can't allocate memory")


def is_out_of_memory(error: BaseException) -> bool:
    """True for the errors torch raises when an allocation fails."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(marker in str(error) for marker in _OOM_MARKERS)


def find_executable_batch_size(
    function: Callable[..., T] | None = None,
    starting_batch_size: int = 128,
    reduce_batch_size_fn: Callable[[int], int] | None = None,
) -> Any:
    """Decorate ``function(batch_size, *args)``: on out-of-memory, halve the batch size and try again."""
    if function is None:
        return functools.partial(
            find_executable_batch_size,
            starting_batch_size=starting_batch_size,
            reduce_batch_size_fn=reduce_batch_size_fn,
        )
    if starting_batch_size < 1:
        raise ConfigError(f"find_executable_batch_size(starting_batch_size={starting_batch_size}): expected >= 1")
    shrink = reduce_batch_size_fn or (lambda size: size // 2)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        batch_size = starting_batch_size
        while True:
            if batch_size == 0:
                raise RuntimeError("find_executable_batch_size: out of memory even with batch size 1")
            try:
                return function(batch_size, *args, **kwargs)
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                batch_size = shrink(batch_size)

    return wrapper
