"""Module-level workers for the Accelerate-parity tests (spawned by ``dist_run``)."""

from __future__ import annotations

from typing import Any

import torch


def sync_generator() -> dict[str, Any]:
    """Seed a generator differently per rank, synchronise it and the torch generator from rank 0."""
    from accel import PartialState
    from accel.utils import synchronize_rng_states

    state = PartialState()
    rank = state.process_index
    generator = torch.Generator().manual_seed(100 + rank)
    torch.manual_seed(200 + rank)
    before = torch.randint(0, 10**6, (1,), generator=torch.Generator().manual_seed(100 + rank)).item()
    synchronize_rng_states(["torch", "generator"], generator=generator)
    out = {
        "before": before,
        "generator": torch.randint(0, 10**6, (3,), generator=generator).tolist(),
        "torch": torch.randint(0, 10**6, (3,)).tolist(),
    }
    state.destroy_process_group()
    return out
