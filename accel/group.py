"""The one place that creates torch's default process group, and the ordered way out of it at exit.

gloo runs each collective on a worker thread that drops its last reference to the finished work
afterwards, and that drop can need the GIL (the work holds tensors that Python objects own). When
it lands while the interpreter is finalising, the thread cannot take the GIL and the process dies
with ``terminate called without an active exception`` (SIGABRT) although the script succeeded.

So every process leaves in order (:func:`leave_at_exit`, registered for each group a
``PartialState`` creates or adopts and for accel's own subgroups, runs once at exit):

1. a barrier on each group, newest first: gloo runs a barrier only after every earlier collective
   of that group, so once it completes nothing of that group is in flight on any rank, and no
   rank tears down while a peer still talks to it (or to the store rank 0 may host);
2. ``destroy_process_group()`` while the interpreter is still whole: the worker threads are joined
   and the last work dropped before finalisation starts.

A rank leaving on an unhandled exception skips the barrier (its peers may be mid-training; the
launcher stops them) and only destroys the groups. A barrier that fails or times out (the group's
own timeout) is reported on stderr; the groups are then left as they are.
"""

from __future__ import annotations

import atexit
import datetime
import sys
from collections.abc import Mapping
from typing import Any

import torch.distributed as dist

from accel import env
from accel.exceptions import StateError
from accel.world import World

DEFAULT_TIMEOUT_S = 1800


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


# Groups to leave at exit, oldest first (None: the default group). Process-wide, as atexit is.
_leaving: list[Any] = []


def leave_at_exit(group: Any = None) -> None:
    """Leave ``group`` (default: the default group) in order at interpreter exit; see the module doc."""
    if not any(g is group for g in _leaving):
        _leaving.append(group)
    atexit.unregister(_leave)
    atexit.register(_leave)


def _exiting_on_error() -> bool:
    """True when the interpreter reported an unhandled exception (it sets ``sys.last_value``)."""
    return getattr(sys, "last_exc", None) is not None or getattr(sys, "last_value", None) is not None


def leave_now() -> None:
    """Leave every group in order now (barrier, then destroy); what :func:`leave_at_exit` runs at exit.

    ``PartialState.destroy_process_group()`` calls this, so a script that tears the group down
    itself gets the same ordered way out as one that leaves it to the interpreter's exit.
    """
    _leave()


def _leave() -> None:
    groups = [g for g in reversed(_leaving) if g is not None] + [None]  # the default group last
    _leaving.clear()
    if not dist.is_initialized():
        return
    if not _exiting_on_error():
        timeout = process_group_timeout()
        for group in groups:
            try:
                work = dist.barrier(group=group, async_op=True)
                if work is not None and work.wait(timeout) is False:
                    raise RuntimeError(f"no answer within {timeout.total_seconds():.0f} s")
            except (RuntimeError, ValueError) as exc:  # a peer left or hangs: do not wait for it again
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                sys.stderr.write(f"accel: the final barrier failed ({first}); leaving the process groups as they are\n")
                return
    dist.destroy_process_group()
