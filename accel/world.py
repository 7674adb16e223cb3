"""Who am I in the process world: this process's coordinates, read from the environment.

Discovery order (the first that applies wins; ``ACCEL_CLUSTER`` forces one):

1. ``process-group``: a ``torch.distributed`` group is already initialised: adopt it.
2. ``torchrun``: torch's elastic launcher (``accel launch``, ``torchrun``) set ``TORCHELASTIC_RUN_ID``.
3. ``env``: explicit ``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` / ``MASTER_PORT`` (Kubeflow pods, scripts).
4. ``slurm``: ``srun`` tasks (``SLURM_PROCID`` / ``SLURM_NTASKS``).
5. ``mpi``: ``mpirun`` (OpenMPI ``OMPI_COMM_WORLD_*`` or PMI ``PMI_RANK`` / ``PMI_SIZE``).
6. ``single``: one process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch.distributed as dist

from accel import env
from accel.exceptions import ConfigError, StateError

SOURCES = ("auto", "process-group", "torchrun", "env", "slurm", "mpi", "single")


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
