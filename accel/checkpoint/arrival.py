"""Every rank must enter a collective: check it through the process group's store, with a deadline.

A collective that only some ranks call (``save_model`` under FSDP inside ``if is_main_process:``)
would wait forever. Before such a call each rank writes its own key in the default group's store
and waits, up to :data:`ARRIVAL_TIMEOUT_S`, for every other rank's key; the ranks that are still
missing then are named in a :class:`~accel.exceptions.CheckpointError` that says how to call it.
"""

from __future__ import annotations

import datetime
from typing import Any

import torch.distributed as dist

from accel.exceptions import CheckpointError

#: Seconds a rank waits for the others to reach the same collective call.
ARRIVAL_TIMEOUT_S = 120.0


def _store() -> Any:
    from torch.distributed import distributed_c10d

    return distributed_c10d._get_default_store()


def expect_all(key: str, what: str, strategy: str) -> None:
    """Return once every rank has called ``expect_all(key, ...)``; raise naming the absent ranks otherwise."""
    store = _store()
    rank, world = dist.get_rank(), dist.get_world_size()
    keys = [f"accel/arrival/{key}/{r}" for r in range(world)]
    store.set(keys[rank], "1")
    try:
        store.wait(keys, datetime.timedelta(seconds=ARRIVAL_TIMEOUT_S))
    except (RuntimeError, dist.DistStoreError) as exc:  # the store's timeout
        missing = [str(r) for r, k in enumerate(keys) if not store.check([k])]
        if not missing:
            return
        raise CheckpointError(
            f"{what} with strategy {strategy} gathers the model from every rank, but rank(s) "
            f"{', '.join(missing)} did not call it within {ARRIVAL_TIMEOUT_S:g} s; call it on every rank "
            "(not inside `if accelerator.is_main_process:`): accel writes the files from the main process only"
        ) from exc
