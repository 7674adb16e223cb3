"""``GradientState``: what the accumulation logic knows about the prepared DataLoader being iterated.

Names as in Accelerate (``active_dataloader``, ``end_of_dataloader``, ``remainder``, ``sync_gradients``);
one per ``Accelerator``, no shared state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accel.data import PreparedDataLoader

__all__ = ["GradientState"]


class GradientState:
    """What the accumulation logic needs to know about the DataLoader being iterated."""

    def __init__(self) -> None:
        self.active: PreparedDataLoader | None = None
        self.end_of_dataloader = False
        self.batches_left: int | None = None
        self.on_batch: Callable[[PreparedDataLoader], None] | None = None  # step-boundary hook (accel.signals)
        self.sync_gradients = True  # kept current by the accumulation window

    @property
    def padding(self) -> int:
        """Duplicated samples in the current (last) round, to drop when gathering metrics."""
        return self.active.padding if self.active is not None and self.end_of_dataloader else 0

    @property
    def active_dataloader(self) -> PreparedDataLoader | None:
        """The prepared DataLoader being iterated (None between epochs), as Accelerate names it."""
        return self.active

    @property
    def in_dataloader(self) -> bool:
        """True while a prepared DataLoader is being iterated."""
        return self.active is not None

    @property
    def remainder(self) -> int:
        """Samples added to even out the last round (-1 before the last round is reached)."""
        return self.padding if self.end_of_dataloader else -1
