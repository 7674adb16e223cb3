"""Gradient accumulation that is correct by construction.

A window of *k* micro-batches ends after *k* micro-steps or at the end of the prepared DataLoader.
Each micro-batch's loss is divided by the window's *real* length, known when the window starts
from the batches left in the epoch, so a short last window is weighted like a full one. When the
length cannot be known (a DataLoader without ``len``) and the window ends early, the gradients are
rescaled once by *k / m*.

With ``accelerator.backward(loss, num_items=n)`` (``loss`` summed over *n* items) the gradients are
instead normalised at the end of the window by the total item count on all ranks: *k* micro-batches
on *N* ranks give exactly the gradient of one batch made of all of them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from accel.data import GradientState
from accel.plugins import GradientAccumulationPlugin


class Accumulator:
    """Tracks the accumulation window and decides when gradients synchronise."""

    def __init__(self, plugin: GradientAccumulationPlugin, state: GradientState) -> None:
        self.num_steps = plugin.num_steps
        self.sync_with_dataloader = plugin.sync_with_dataloader
        self.sync_each_batch = plugin.sync_each_batch
        self.state = state
        self.step = 0
        self.sync_gradients = True
        self.divisor = 1
        self.rescale = 1.0
        self._position = 0
        self._length = 1
        self._length_known = True
        self._items: float = 0.0

    def begin_micro_step(self) -> bool:
        """Start a micro-step; returns True when backward must synchronise gradients."""
        self.step += 1
        state, k = self.state, self.num_steps
        at_end = self.sync_with_dataloader and state.active is not None and state.end_of_dataloader
        if self._position == 0:
            left = state.batches_left if self.sync_with_dataloader and state.active is not None else None
            self._length = min(k, left) if left else k
            self._length_known = left is not None or k == 1
            self.divisor = self._length
        self._position += 1
        self.rescale = 1.0
        end = self._position >= self._length or at_end
        if end:
            if self._position < self._length:  # ended early, length was not known in advance
                self.rescale = self._length / self._position
            self._position = 0
        self.sync_gradients = state.sync_gradients = end
        return end or self.sync_each_batch

    def after_backward(self, num_items: int | torch.Tensor | None, models: list[torch.nn.Module], world: int) -> None:
        """Apply the short-window rescale or the item-count normalisation at the end of a window."""
        if num_items is not None:
            self._items += float(num_items.sum().item() if isinstance(num_items, torch.Tensor) else num_items)
        if not self.sync_gradients:
            return
        factor = self.rescale
        if num_items is not None:
            total = torch.tensor([self._items], dtype=torch.float64, device=_device(models))
            if world > 1:
                dist.all_reduce(total)
            factor = world / float(total.item()) if total.item() else 1.0
            self._items = 0.0
        if factor != 1.0:
            for model in models:
                for param in model.parameters():
                    if param.grad is not None:
                        param.grad.mul_(factor)
        self.rescale = 1.0

    def state_dict(self) -> dict[str, Any]:
        """Counters to checkpoint."""
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.step = int(state.get("step", 0))
        self._position = 0


def _device(models: list[torch.nn.Module]) -> torch.device:
    for model in models:
        for param in model.parameters():
            return param.device
    return torch.device("cpu")
