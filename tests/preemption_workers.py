"""Rank functions for the preemption tests (module level, so the spawn start method can import them)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from accel import Accelerator


def count_rounds(batches: int) -> dict[str, Any]:
    """Iterate a prepared DataLoader of tiny batches; report how many agreement rounds the ranks ran."""
    acc = Accelerator(cpu=True)
    data = TensorDataset(torch.arange(batches * acc.num_processes * 2, dtype=torch.float32))
    loader = acc.prepare(DataLoader(data, batch_size=2))
    seen = sum(1 for _ in loader)
    preemption = acc._preemption
    result = {"batches": seen, "installed": preemption is not None, "rounds": preemption.rounds if preemption else 0}
    acc.wait_for_everyone()
    acc.state.destroy_process_group()
    return result
