"""The process-world members an object gets from owning a :class:`~accel.state.PartialState` as ``self.state``.

``Accelerator`` exposes them exactly as Accelerate does (``accelerator.is_main_process``,
``accelerator.print``, ``accelerator.main_process_first()`` …); each one delegates to the state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from accel import ops
from accel.gradient_state import GradientState
from accel.state import PartialState

T = TypeVar("T")


class ProcessMembers:
    """Coordinates, barriers and rank-filtered helpers, delegated to ``self.state``."""

    state: PartialState
    gradient_state: GradientState

    @property
    def device(self) -> torch.device:
        """Device of this process."""
        return self.state.device

    @property
    def num_processes(self) -> int:
        """World size."""
        return self.state.num_processes

    @property
    def process_index(self) -> int:
        """Global rank."""
        return self.state.process_index

    @property
    def local_process_index(self) -> int:
        """Rank on this node."""
        return self.state.local_process_index

    @property
    def is_main_process(self) -> bool:
        """True on global rank 0."""
        return self.state.is_main_process

    @property
    def is_local_main_process(self) -> bool:
        """True on local rank 0."""
        return self.state.is_local_main_process

    @property
    def is_last_process(self) -> bool:
        """True on the highest rank."""
        return self.state.is_last_process

    @property
    def use_distributed(self) -> bool:
        """True when more than one process cooperates."""
        return self.state.use_distributed

    def wait_for_everyone(self) -> None:
        """Barrier."""
        self.state.wait_for_everyone()

    def main_process_first(self) -> contextlib.AbstractContextManager[None]:
        """Run the block on the main process first."""
        return self.state.main_process_first()

    def local_main_process_first(self) -> contextlib.AbstractContextManager[None]:
        """Run the block on each node's main process first."""
        return self.state.local_main_process_first()

    def split_between_processes(
        self, inputs: Any, apply_padding: bool = False
    ) -> contextlib.AbstractContextManager[Any]:
        """This rank's share of ``inputs``."""
        return self.state.split_between_processes(inputs, apply_padding)

    def print(self, *args: Any, **kwargs: Any) -> None:
        """Print on the main process only."""
        self.state.print(*args, **kwargs)

    def on_main_process(self, function: Callable[..., T]) -> Callable[..., T | None]:
        """Decorator: main process only."""
        return self.state.on_main_process(function)

    def on_local_main_process(self, function: Callable[..., T]) -> Callable[..., T | None]:
        """Decorator: local main process only."""
        return self.state.on_local_main_process(function)

    def on_last_process(self, function: Callable[..., T]) -> Callable[..., T | None]:
        """Decorator: last process only."""
        return self.state.on_last_process(function)

    def on_process(self, function: Callable[..., T] | None = None, process_index: int = 0) -> Any:
        """Decorator: the given rank only."""
        return self.state.on_process(function, process_index)

    # collectives (tensors or nested lists/tuples/dicts of them)
    def gather(self, tensor: Any) -> Any:
        """Concatenate tensors from every rank along dim 0."""
        return ops.gather(tensor)

    def reduce(self, tensor: Any, reduction: str = "sum", scale: float = 1.0) -> Any:
        """All-reduce by sum (the default), mean or max."""
        return ops.reduce(tensor, reduction, scale)

    def pad_across_processes(self, tensor: Any, dim: int = 0, pad_index: int = 0, pad_first: bool = False) -> Any:
        """Pad to the largest size on any rank."""
        return ops.pad_across_processes(tensor, dim, pad_index, pad_first)

    def gather_for_metrics(self, input_data: Any, use_gather_object: bool = False) -> Any:
        """Gather, dropping the samples duplicated to even out the last batch."""
        gathered = (
            ops.gather_object(input_data)
            if use_gather_object or not ops.has_tensor(input_data)
            else ops.gather(input_data)
        )
        padding = self.gradient_state.padding
        if not padding:
            return gathered
        if isinstance(gathered, list):
            return gathered[: len(gathered) - padding]
        return ops.apply(lambda t: t[: t.shape[0] - padding], gathered)
