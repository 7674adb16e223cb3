"""The process world as the user sees it: :class:`PartialState` (rank, device, barriers, helpers).

Coordinates come from :mod:`accel.world`, the process group from :mod:`accel.group`. There is no
singleton: every :class:`PartialState` describes the same world, read from the process group once it
exists. A weak registry of live states lets ``notebook_launcher`` refuse to start when one was
created in the parent process.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import socket
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.distributed as dist

from accel import env
from accel.config.run import RunConfig
from accel.exceptions import ConfigError, StateError
from accel.group import init_group, leave_at_exit, leave_now, process_group_timeout
from accel.world import World, discover

__all__ = [
    "AcceleratorState",
    "DistributedType",
    "GradientState",
    "PartialState",
    "World",
    "discover",
    "live_states",
    "process_group_timeout",
]

if TYPE_CHECKING:
    from accel.accelerator_state import AcceleratorState
    from accel.gradient_state import GradientState

_LAZY = {"AcceleratorState": "accel.accelerator_state", "GradientState": "accel.gradient_state"}


def __getattr__(name: str) -> Any:
    """``AcceleratorState`` and ``GradientState`` at the path Accelerate scripts import them from."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'accel.state' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


T = TypeVar("T")


class DistributedType(str, enum.Enum):
    """How the processes cooperate (names as in Accelerate).

    accel runs ``NO``, ``MULTI_CPU``, ``MULTI_GPU`` and ``FSDP``; the other members exist so that scripts
    comparing against them keep working (they are never the value of a running accel world).
    """

    NO = "NO"
    MULTI_CPU = "MULTI_CPU"
    MULTI_GPU = "MULTI_GPU"
    FSDP = "FSDP"
    DEEPSPEED = "DEEPSPEED"
    XLA = "XLA"
    MEGATRON_LM = "MEGATRON_LM"
    MULTI_XPU = "MULTI_XPU"
    MULTI_NPU = "MULTI_NPU"
    MULTI_MLU = "MULTI_MLU"
    MULTI_MUSA = "MULTI_MUSA"
    MULTI_SDAA = "MULTI_SDAA"
    MULTI_HPU = "MULTI_HPU"
    MULTI_NEURON = "MULTI_NEURON"


_live_states: weakref.WeakSet[PartialState] = weakref.WeakSet()


def live_states() -> list[PartialState]:
    """States still referenced in this process (``notebook_launcher`` refuses to start if there are any).

    Garbage is collected first: an Accelerator the user deleted can still sit in a reference cycle.
    """
    import gc

    gc.collect()
    return list(_live_states)


class PartialState:
    """The process world without any training objects: rank, device, barriers and helpers.

    Args:
        cpu: run on the CPU even when a GPU is present.
        backend: process-group backend; default ``nccl`` on GPU, ``gloo`` on CPU.
        timeout: collective timeout (default ``ACCEL_PROCESS_GROUP_TIMEOUT`` or 30 min).
        run_config: what the launcher resolved for this run (default: decoded from this process's variables).
        init_method: how the ranks find each other when accel creates the process group (world size > 1),
            e.g. ``tcp://10.0.0.1:23456`` or ``file:///shared/rendezvous``; default: from the launch environment.
    """

    def __init__(
        self,
        cpu: bool | None = None,
        backend: str | None = None,
        timeout: datetime.timedelta | None = None,
        run_config: RunConfig | None = None,
        init_method: str | None = None,
    ) -> None:
        environ = env.snapshot()
        self.run_config = run_config if run_config is not None else RunConfig.from_environment(environ)
        self.use_cpu = bool(cpu if cpu is not None else self.run_config.use_cpu) or not torch.cuda.is_available()
        self.world = discover(environ)
        if self.use_cpu:
            self.device = torch.device("cpu")
        else:
            self.device = torch.device("cuda", self.world.local_rank % max(torch.cuda.device_count(), 1))
            torch.cuda.set_device(self.device)
        self.backend = backend or ("gloo" if self.device.type == "cpu" else "nccl")
        if self.world.world_size > 1 and not dist.is_initialized():
            init_group(self.world, self.backend, timeout or process_group_timeout(environ), init_method)
        if dist.is_initialized():  # ours or adopted: left in order at exit either way
            leave_at_exit()
        requested = self.run_config.requested_world_size
        if requested is not None and requested != self.num_processes:
            raise StateError(
                f"the launch asked for {requested} processes but this process sees a world of "
                f"{self.num_processes} (source: {self.world.source}); check the launcher flags and {env.CLUSTER}"
            )
        _live_states.add(self)

    # ---------------------------------------------------------------- coordinates
    @property
    def num_processes(self) -> int:
        """World size (the process group's once it exists)."""
        return dist.get_world_size() if dist.is_initialized() else self.world.world_size

    @property
    def process_index(self) -> int:
        """Global rank."""
        return dist.get_rank() if dist.is_initialized() else self.world.rank

    @property
    def local_process_index(self) -> int:
        """Rank on this node."""
        return self.world.local_rank

    @property
    def is_main_process(self) -> bool:
        """True on global rank 0."""
        return self.process_index == 0

    @property
    def is_local_main_process(self) -> bool:
        """True on local rank 0."""
        return self.local_process_index == 0

    @property
    def is_last_process(self) -> bool:
        """True on the highest rank."""
        return self.process_index == self.num_processes - 1

    @property
    def use_distributed(self) -> bool:
        """True when more than one process cooperates."""
        return self.num_processes > 1

    @property
    def distributed_type(self) -> DistributedType:
        """NO, MULTI_CPU or MULTI_GPU."""
        if not self.use_distributed:
            return DistributedType.NO
        return DistributedType.MULTI_CPU if self.device.type == "cpu" else DistributedType.MULTI_GPU

    # ---------------------------------------------------------------- coordination
    def wait_for_everyone(self) -> None:
        """Barrier across all processes (no-op for one process)."""
        if self.use_distributed:
            dist.barrier()

    @contextlib.contextmanager
    def main_process_first(self) -> Iterator[None]:
        """Run the block on the main process first, then on the others."""
        with self._first(self.is_main_process):
            yield

    @contextlib.contextmanager
    def local_main_process_first(self) -> Iterator[None]:
        """Run the block on each node's local main process first."""
        with self._first(self.is_local_main_process):
            yield

    @contextlib.contextmanager
    def _first(self, leader: bool) -> Iterator[None]:
        if not leader:
            self.wait_for_everyone()
        yield
        if leader:
            self.wait_for_everyone()

    @contextlib.contextmanager
    def split_between_processes(self, inputs: Any, apply_padding: bool = False) -> Iterator[Any]:
        """Yield this process's contiguous share of a list, tuple, tensor or dict of them."""
        yield _split(inputs, self.process_index, self.num_processes, apply_padding)

    def print(self, *args: Any, **kwargs: Any) -> None:
        """``print`` on the main process only."""
        if self.is_main_process:
            print(*args, **kwargs)  # noqa: T201

    def on_main_process(self, function: Callable[..., T]) -> Callable[..., T | None]:
        """Decorator: run only on the main process (others return None)."""
        return self._only(function, lambda: self.is_main_process)

    def on_local_main_process(self, function: Callable[..., T]) -> Callable[..., T | None]:
        """Decorator: run only on each node's local main process."""
        return self._only(function, lambda: self.is_local_main_process)

    def on_last_process(self, function: Callable[..., T]) -> Callable[..., T | None]:
        """Decorator: run only on the last process."""
        return self._only(function, lambda: self.is_last_process)

    def on_process(self, function: Callable[..., T] | None = None, process_index: int = 0) -> Any:
        """Decorator: run only on the given global rank."""
        if function is None:
            return lambda fn: self.on_process(fn, process_index)
        return self._only(function, lambda: self.process_index == process_index)

    @staticmethod
    def _only(function: Callable[..., T], predicate: Callable[[], bool]) -> Callable[..., T | None]:
        import functools

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> T | None:
            return function(*args, **kwargs) if predicate() else None

        return wrapper

    def destroy_process_group(self) -> None:
        """Tear the process groups down in order (a final barrier, then destroy; safe when there is none)."""
        if dist.is_initialized():
            leave_now()

    def __repr__(self) -> str:
        return (
            f"PartialState(distributed_type={self.distributed_type.value}, num_processes={self.num_processes}, "
            f"process_index={self.process_index}, local_process_index={self.local_process_index}, "
            f"device={self.device}, source={self.world.source}, host={socket.gethostname()})"
        )


def _split(inputs: Any, index: int, count: int, pad: bool) -> Any:
    if isinstance(inputs, dict):
        return {k: _split(v, index, count, pad) for k, v in inputs.items()}
    if not isinstance(inputs, (list, tuple, torch.Tensor)):
        raise ConfigError(
            f"split_between_processes() takes a list, tuple, tensor or dict of them, not {type(inputs).__name__}"
        )
    length = len(inputs)
    per, extra = divmod(length, count)
    start = index * per + min(index, extra)
    end = start + per + (1 if index < extra else 0)
    part = inputs[start:end]
    if pad and extra and index >= extra and length:
        last = inputs[-1:]
        if isinstance(part, torch.Tensor) and isinstance(last, torch.Tensor):
            return torch.cat([part, last])
        part = type(inputs)(list(part) + list(last))
    return part
