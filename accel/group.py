"""The one place that creates torch's default process group, and lets it wind down at exit.

gloo runs each collective on a worker thread that drops its last reference to the finished work
afterwards, and that drop needs the GIL. When it lands while the interpreter is finalising, the
thread cannot take the GIL and the process dies with ``terminate called without an active
exception`` (SIGABRT) although the script succeeded. :func:`settle`, registered at exit for every
gloo group a ``PartialState`` creates or adopts, releases the GIL for a moment first, so those
threads finish while the interpreter is still whole.
"""

from __future__ import annotations

import atexit
import datetime
import time
from collections.abc import Mapping

import torch.distributed as dist

from accel import env
from accel.exceptions import StateError
from accel.world import World

DEFAULT_TIMEOUT_S = 1800
SETTLE_S = 0.05


def _is_loopback(addr: str | None) -> bool:
    return addr is None or addr in ("localhost", "::1") or addr.startswith("127.")


def process_group_timeout(environ: Mapping[str, str] | None = None) -> datetime.timedelta:
    """The collective timeout: ``ACCEL_PROCESS_GROUP_TIMEOUT`` seconds, default 30 minutes."""
    seconds = env.get_int(env.PROCESS_GROUP_TIMEOUT, environ) or DEFAULT_TIMEOUT_S
    return datetime.timedelta(seconds=seconds)


def init_group(world: World, backend: str, timeout: datetime.timedelta, init_method: str | None = None) -> None:
    """Create the default process group for ``world`` (the only place accel does).

    ``init_method`` (``InitProcessGroupKwargs(init_method=...)``: ``tcp://host:port``, ``file:///path``,
    ``env://``) replaces the rendezvous accel would pick from the launch environment.
    """
    if _is_loopback(world.master_addr) and backend == "gloo":
        env.update({"GLOO_SOCKET_IFNAME": env.get("GLOO_SOCKET_IFNAME") or "lo"})
    if init_method is not None:
        dist.init_process_group(
            backend, init_method=init_method, rank=world.rank, world_size=world.world_size, timeout=timeout
        )
        return
    restart = env.get_int(env.TORCHELASTIC_RESTART_COUNT) or 0
    if world.source == "torchrun" and restart > 0 and env.get(env.TORCHELASTIC_USE_AGENT_STORE) == "True":
        # The elastic agent keeps one store across restarts: without a per-attempt prefix, a restarted
        # rank can read a peer address left by the previous attempt and fail to connect.
        store = dist.TCPStore(  # type: ignore[attr-defined]
            world.master_addr or "127.0.0.1", world.master_port or 0, world.world_size, False, timeout=timeout
        )
        dist.init_process_group(
            backend,
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
            raise StateError(f"{world.source} launch found no rendezvous address: set MASTER_ADDR (and MASTER_PORT)")
        init_method = f"tcp://{world.master_addr}:{world.master_port}"
    dist.init_process_group(
        backend, init_method=init_method, rank=world.rank, world_size=world.world_size, timeout=timeout
    )


def settle() -> None:
    """Release the GIL briefly so gloo's worker threads can drop their finished work."""
    time.sleep(SETTLE_S)


def settle_at_exit(backend: str) -> None:
    """Run :func:`settle` at interpreter exit when ``backend`` involves gloo (once per process)."""
    if "gloo" in backend:
        atexit.unregister(settle)
        atexit.register(settle)
