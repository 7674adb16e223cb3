"""The launch plan: resolved settings translated into everything needed to start the ranks.

:func:`plan` checks the request against this machine (devices, ports, machine ranks) before any
process starts and returns a :class:`LaunchPlan` without side effects; :func:`announcement` is the
one line ``accel launch`` and ``notebook_launcher`` print about it. Nothing here imports torch.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from accel import env
from accel.config import Resolved
from accel.config.run import RunConfig
from accel.exceptions import ConfigError, LaunchError
from accel.launch.extras import Streams

__all__ = ["LaunchPlan", "announcement", "free_port", "is_loopback", "plan", "port_is_free"]

MULTI_NODE_PORT = 29500


@dataclass(frozen=True)
class LaunchPlan:
    """Everything needed to start the ranks; built by :func:`plan` without side effects."""

    nproc_per_node: int
    num_machines: int
    machine_rank: int
    use_cpu: bool
    host: str
    port: int
    rdzv_backend: str
    rdzv_id: str
    rdzv_configs: dict[str, Any]
    local_addr: str | None
    max_restarts: int
    monitor_interval: float
    shutdown_timeout: float
    exports: dict[str, str | None]
    notes: list[str] = field(default_factory=list)
    verbose: bool = False
    role: str = "default"
    start_method: str = "spawn"
    streams: Streams = field(default_factory=Streams)
    numa_binding: str | None = None

    @property
    def world_size(self) -> int:
        """Processes across all machines."""
        return self.nproc_per_node * self.num_machines


def is_loopback(host: str) -> bool:
    """True for 127.x, ::1 and localhost."""
    return host in ("localhost", "::1") or host.startswith("127.")


def _loopback_node_addr(machine_rank: int) -> str:
    """This machine's address when machines are simulated over loopback: 127.0.0.<machine_rank + 1>.

    torch names a rendezvous participant by address and launcher pid; containers on one host have
    their own pid namespaces, so two launchers can share a pid and would join as one participant.
    Every 127.x address is loopback on Linux, so a distinct one per machine keeps them apart.
    """
    return f"127.0.0.{1 + machine_rank % 254}"


def port_is_free(host: str, port: int) -> bool:
    """Whether a TCP server could bind ``host:port`` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    """A port that is free on ``host`` right now (the OS picks it).

    Raises:
        ConfigError: ``host`` is not an address of this machine.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError as exc:
            raise ConfigError(
                f"main_process_ip {host!r} is not an address of this machine ({exc.strerror or exc}); "
                "on one machine leave it unset (127.0.0.1)"
            ) from None
        return int(probe.getsockname()[1])


def _devices(r: Resolved, gpu_count: int, notes: list[str]) -> tuple[bool, int]:
    use_cpu = r["use_cpu"]
    if use_cpu is False and gpu_count == 0:
        raise LaunchError(
            f"GPUs were requested ({r.source('use_cpu')}) but this machine has none; "
            "pass --cpu to run CPU ranks, or run on a machine with GPUs"
        )
    if use_cpu is None:
        use_cpu = gpu_count == 0
    nproc = r["num_processes"]
    if nproc is None:
        nproc = 1 if use_cpu else gpu_count
        why = "no GPU found" if gpu_count == 0 else ("--cpu" if use_cpu else f"{gpu_count} GPU(s) found")
        notes.append(f"{nproc} process{'es' if nproc > 1 else ''} per machine by default ({why}; set --num_processes)")
    if not use_cpu and nproc > gpu_count:
        raise LaunchError(
            f"{nproc} processes per machine were requested ({r.source('num_processes')}) but this machine has "
            f"{gpu_count} GPU(s); pass --num_processes {gpu_count}, or --cpu to run {nproc} CPU ranks"
        )
    return bool(use_cpu), int(nproc)


def _rendezvous(
    r: Resolved, port_free: Callable[[str, int], bool], pick_port: Callable[[str], int], notes: list[str]
) -> tuple[str, int]:
    machines, rank = r["num_machines"], r["machine_rank"]
    if rank >= machines:
        raise ConfigError(
            f"machine_rank {rank} ({r.source('machine_rank')}) must be below num_machines {machines} "
            f"({r.source('num_machines')}); machines are numbered 0..{machines - 1}"
        )
    host, port = r["main_process_ip"], r["main_process_port"]
    if machines == 1:
        host = host or "127.0.0.1"
        if not port:
            port = pick_port(host)
        elif not port_free(host, port):
            chosen = pick_port(host)
            notes.append(f"port {port} is busy; using free port {chosen}")
            port = chosen
        return host, port
    if not host:
        raise ConfigError(
            f"{machines} machines need the address of machine 0: pass --main_process_ip (or set it in the config)"
        )
    if port == 0:
        raise ConfigError(
            "main_process_port 0 (pick a free port) works on one machine only; "
            "give the port machine 0 listens on, e.g. --main_process_port 29500"
        )
    return host, port or MULTI_NODE_PORT


def plan(
    r: Resolved,
    gpu_count: int,
    port_free: Callable[[str, int], bool] = port_is_free,
    pick_port: Callable[[str], int] = free_port,
    omp_threads: int | None = None,
    verbose: bool = False,
) -> LaunchPlan:
    """Translate resolved settings into a :class:`LaunchPlan` (checks everything before a process starts).

    Raises:
        ConfigError: inconsistent settings.
        LaunchError: a request this machine cannot satisfy.
    """
    notes: list[str] = []
    use_cpu, nproc = _devices(r, gpu_count, notes)
    host, port = _rendezvous(r, port_free, pick_port, notes)
    pod_keys = [key for key in ("num_machines", "machine_rank") if "Kubeflow" in r.source(key)]
    if pod_keys:
        notes.append("machines from the pod's RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (Kubeflow)")
    machines = r["num_machines"]
    timeout = r["rdzv_timeout"]
    configs: dict[str, Any] = {"timeout": timeout, "join_timeout": timeout, "read_timeout": min(timeout, 60)}
    if r["rdzv_backend"] == "static":
        configs["rank"] = r["machine_rank"]
    elif machines == 1:
        configs["is_host"] = True
    elif r.source("machine_rank") != "default":
        configs["is_host"] = r["machine_rank"] == 0
    run = RunConfig(
        mixed_precision=r["mixed_precision"],
        gradient_accumulation_steps=r["gradient_accumulation_steps"],
        use_cpu=use_cpu,
        strategy=r["strategy"],
        auto_resume=r["auto_resume"],
        project_dir=r["project_dir"] or None,
        requested_world_size=nproc * machines,
        config_source=str(r.config_file) if r.config_file else "none",
    )
    exports: dict[str, str | None] = {**run.exports()}
    if is_loopback(host) and not env.get(env.GLOO_SOCKET_IFNAME):
        exports[env.GLOO_SOCKET_IFNAME] = "lo"
    if omp_threads is not None:
        exports[env.OMP_NUM_THREADS] = str(omp_threads)
    elif nproc > 1 and not env.get(env.OMP_NUM_THREADS):
        exports[env.OMP_NUM_THREADS] = "1"
    return LaunchPlan(
        nproc_per_node=nproc,
        num_machines=machines,
        machine_rank=r["machine_rank"],
        use_cpu=use_cpu,
        host=host,
        port=port,
        rdzv_backend=r["rdzv_backend"],
        rdzv_id=r["rdzv_id"] or ("accel" if machines > 1 else uuid.uuid4().hex),
        rdzv_configs=configs,
        local_addr=_loopback_node_addr(r["machine_rank"]) if is_loopback(host) else None,
        max_restarts=r["max_restarts"],
        monitor_interval=r["monitor_interval"],
        shutdown_timeout=r["shutdown_timeout"],
        exports=exports,
        notes=notes,
        verbose=verbose,
    )


def announcement(r: Resolved, p: LaunchPlan, target: str, prefix: str = "accel launch") -> str:
    """The one launch line: config file, world, device, precision, rendezvous and any defaults chosen."""
    procs = f"{p.nproc_per_node} process{'es' if p.nproc_per_node > 1 else ''}"
    world = procs if p.num_machines == 1 else f"{procs} x {p.num_machines} machines (this is machine {p.machine_rank})"
    device = ("CPU" if p.use_cpu else "GPU") + ((" (gloo)" if p.use_cpu else " (nccl)") if p.world_size > 1 else "")
    notes = "".join(f"; {note}" for note in p.notes)
    return (
        f"{prefix}: config {r.describe_file()}; {world} on {device}; mixed_precision {r['mixed_precision']}; "
        f"rendezvous {p.rdzv_backend} {p.host}:{p.port}; running {target}{notes}"
    )
