"""Who am I in the process world, and the one place that creates the process group.

Discovery order (the first that applies wins; ``ACCEL_CLUSTER`` forces one):

1. ``process-group``: a ``torch.distributed`` group is already initialised: adopt it.
2. ``torchrun``: torch's elastic launcher (``accel launch``, ``torchrun``) set ``TORCHELASTIC_RUN_ID``.
3. ``env``: explicit ``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` / ``MASTER_PORT`` (Kubeflow pods, scripts).
4. ``slurm``: ``srun`` tasks (``SLURM_PROCID`` / ``SLURM_NTASKS``).
5. ``mpi``: ``mpirun`` (OpenMPI ``OMPI_COMM_WORLD_*`` or PMI ``PMI_RANK`` / ``PMI_SIZE``).
6. ``single``: one process.

There is no singleton: every :class:`PartialState` describes the same world, read from the
process group once it exists. A weak registry of live states lets ``notebook_launcher`` refuse to
start when one was created in the parent process.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import socket
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from accel import env
from accel.exceptions import ConfigError, StateError

T = TypeVar("T")
SOURCES = ("auto", "process-group", "torchrun", "env", "slurm", "mpi", "single")
DEFAULT_TIMEOUT_S = 1800


class DistributedType(str, enum.Enum):
    """How the processes cooperate (names as in Accelerate)."""

    NO = "NO"
    MULTI_CPU = "MULTI_CPU"
    MULTI_GPU = "MULTI_GPU"
    FSDP = "FSDP"


@dataclass(frozen=True)
class World:
    """Coordinates of this process, and where they came from."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None
    source: str = "single"


def _int(environ: Mapping[str, str], *names: str, default: int | None = None) -> int | None:
    for name in names:
        value = env.get_int(name, environ)
        if value is not None:
            return value
    return default


def _from_world_vars(environ: Mapping[str, str], source: str) -> World:
    rank = _int(environ, env.RANK, default=0) or 0
    size = _int(environ, env.WORLD_SIZE, default=1) or 1
    local_rank = _int(environ, env.LOCAL_RANK, default=0) or 0
    local_size = _int(environ, env.LOCAL_WORLD_SIZE, default=size) or size
    return World(
        rank=rank,
        world_size=size,
        local_rank=local_rank,
        local_world_size=local_size,
        node_rank=_int(environ, env.GROUP_RANK, default=rank // max(local_size, 1)) or 0,
        master_addr=env.get(env.MASTER_ADDR, environ),
        master_port=_int(environ, env.MASTER_PORT),
        source=source,
    )


def _from_scheduler(environ: Mapping[str, str], source: str) -> World:
    if source == "slurm":
        rank, size = _int(environ, env.SLURM_PROCID), _int(environ, env.SLURM_NTASKS)
        local_rank = _int(environ, env.SLURM_LOCALID, default=0) or 0
        node = _int(environ, env.SLURM_NODEID, default=0) or 0
        addr = env.get(env.MASTER_ADDR, environ) or env.get(env.SLURM_LAUNCH_NODE_IPADDR, environ)
    else:
        rank, size = _int(environ, env.OMPI_RANK, env.PMI_RANK), _int(environ, env.OMPI_SIZE, env.PMI_SIZE)
        local_rank = _int(environ, env.OMPI_LOCAL_RANK, env.MPI_LOCALRANKID, default=0) or 0
        node, addr = 0, env.get(env.MASTER_ADDR, environ)
    if rank is None or size is None:
        raise StateError(f"ACCEL_CLUSTER={source} but the {source} rank/size variables are not set")
    return World(rank, size, local_rank, 1, node, addr, _int(environ, env.MASTER_PORT, default=29500), source)


def _detect(environ: Mapping[str, str]) -> str:
    if dist.is_available() and dist.is_initialized():
        return "process-group"
    if env.is_set(env.TORCHELASTIC_RUN_ID, environ):
        return "torchrun"
    if env.is_set(env.RANK, environ) and env.is_set(env.WORLD_SIZE, environ):
        return "env"
    if (_int(environ, env.SLURM_NTASKS, default=1) or 1) > 1 and env.is_set(env.SLURM_PROCID, environ):
        return "slurm"
    if env.is_set(env.OMPI_RANK, environ) or env.is_set(env.PMI_RANK, environ):
        return "mpi"
    return "single"


def discover(environ: Mapping[str, str] | None = None) -> World:
    """Find this process's coordinates (see the module docstring for the order)."""
    environ = env.snapshot() if environ is None else environ
    forced = (env.get(env.CLUSTER, environ) or "auto").strip().lower()
    if forced not in SOURCES:
        raise ConfigError(f"{env.CLUSTER}={forced!r} is not one of {', '.join(SOURCES)}; unset it or pick one")
    source = _detect(environ) if forced == "auto" else forced
    if source == "process-group":
        if not dist.is_initialized():
            raise StateError(f"{env.CLUSTER}=process-group but no torch.distributed process group is initialised")
        local = _int(environ, env.LOCAL_RANK, default=0) or 0
        return World(dist.get_rank(), dist.get_world_size(), local, source="process-group")
    if source in ("torchrun", "env"):
        return _from_world_vars(environ, source)
    if source in ("slurm", "mpi"):
        return _from_scheduler(environ, source)
    return World()


def _is_loopback(addr: str | None) -> bool:
    return addr is None or addr in ("localhost", "::1") or addr.startswith("127.")


def process_group_timeout(environ: Mapping[str, str] | None = None) -> datetime.timedelta:
    """The collective timeout: ``ACCEL_PROCESS_GROUP_TIMEOUT`` seconds, default 30 minutes."""
    seconds = env.get_int(env.PROCESS_GROUP_TIMEOUT, environ) or DEFAULT_TIMEOUT_S
    return datetime.timedelta(seconds=seconds)


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
    """

    def __init__(
        self, cpu: bool | None = None, backend: str | None = None, timeout: datetime.timedelta | None = None
    ) -> None:
        environ = env.snapshot()
        cpu_env = env.get_bool(env.USE_CPU, environ)
        self.use_cpu = bool(cpu if cpu is not None else cpu_env) or not torch.cuda.is_available()
        self.world = discover(environ)
        if self.use_cpu:
            self.device = torch.device("cpu")
        else:
            self.device = torch.device("cuda", self.world.local_rank % max(torch.cuda.device_count(), 1))
            torch.cuda.set_device(self.device)
        self.backend = backend or ("gloo" if self.device.type == "cpu" else "nccl")
        if self.world.world_size > 1 and not dist.is_initialized():
            self._init_group(self.world, timeout or process_group_timeout(environ))
        requested = env.get_int(env.REQUESTED_WORLD_SIZE, environ)
        if requested is not None and requested != self.num_processes:
            raise StateError(
                f"the launch asked for {requested} processes but this process sees a world of "
                f"{self.num_processes} (source: {self.world.source}); check the launcher flags and {env.CLUSTER}"
            )
        _live_states.add(self)

    def _init_group(self, world: World, timeout: datetime.timedelta) -> None:
        if _is_loopback(world.master_addr) and self.backend == "gloo":
            env.update({"GLOO_SOCKET_IFNAME": env.get("GLOO_SOCKET_IFNAME") or "lo"})
        restart = env.get_int(env.TORCHELASTIC_RESTART_COUNT) or 0
        if world.source == "torchrun" and restart > 0 and env.get(env.TORCHELASTIC_USE_AGENT_STORE) == "True":
            # The elastic agent keeps one store across restarts: without a per-attempt prefix, a restarted
            # rank can read a peer address left by the previous attempt and fail to connect.
            store = dist.TCPStore(  # type: ignore[attr-defined]
                world.master_addr or "127.0.0.1", world.master_port or 0, world.world_size, False, timeout=timeout
            )
            dist.init_process_group(
                self.backend,
                store=dist.PrefixStore(f"accel/attempt_{restart}", store),  # type: ignore[attr-defined]
                rank=world.rank,
                world_size=world.world_size,
                timeout=timeout,
            )
            return
        if world.source in ("torchrun", "env"):
            init_method = "env://"
        else:
            if not world.master_addr:
                raise StateError(
                    f"{world.source} launch found no rendezvous address: set MASTER_ADDR (and MASTER_PORT)"
                )
            init_method = f"tcp://{world.master_addr}:{world.master_port}"
        dist.init_process_group(
            self.backend, init_method=init_method, rank=world.rank, world_size=world.world_size, timeout=timeout
        )

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
        """Tear the process group down (safe to call when there is none)."""
        if dist.is_initialized():
            dist.destroy_process_group()

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
