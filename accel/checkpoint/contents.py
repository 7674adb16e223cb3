"""What a checkpoint covers, and how a strategy stores its part of it.

The Accelerator builds a :class:`Contents` (the frozen record of what it prepared or registered)
for each save and load and hands it to the :class:`~accel.checkpoint.Checkpointer`; the checkpoint
code never reaches into the Accelerator. A strategy says how its models and optimizers are stored
through :meth:`~accel.strategies.base.Strategy.checkpoint_format`, which returns a
:class:`StateFormat`: full state dicts written by the main process
or every rank's shards through ``torch.distributed.checkpoint`` (:mod:`accel.checkpoint.formats`).

A save runs in three steps, so that the last two can later run off the training loop:
*stage* (every state taken, model tensors on the CPU), *write* (files into the staging directory,
each fsynced) and *publish* (manifest, atomic rename, ``latest`` pointer).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from accel.accumulation import Accumulator
    from accel.data import PreparedDataLoader
    from accel.wrappers import AcceleratedOptimizer, AcceleratedScheduler


class Stateful(Protocol):
    """An object given to ``register_for_checkpointing``."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any, /) -> Any: ...


@dataclass(frozen=True)
class Contents:
    """Everything prepared or registered, in preparation order; ``counters`` holds the step counters."""

    models: tuple[torch.nn.Module, ...]
    optimizers: tuple[AcceleratedOptimizer, ...]
    schedulers: tuple[AcceleratedScheduler, ...]
    dataloaders: tuple[PreparedDataLoader, ...]
    custom_objects: tuple[Stateful, ...]
    counters: Accumulator

    def counts(self) -> dict[str, int]:
        """How many of each kind (recorded in the manifest, checked before a load)."""
        return {
            "models": len(self.models),
            "optimizers": len(self.optimizers),
            "schedulers": len(self.schedulers),
            "dataloaders": len(self.dataloaders),
            "custom_objects": len(self.custom_objects),
        }


class StagedStates(abc.ABC):
    """Model and optimizer states taken by :meth:`StateFormat.stage`, not yet written."""

    @abc.abstractmethod
    def write(self, directory: Path, main: bool) -> None:
        """Write this rank's part into the staging ``directory`` (``main``: this is the main process)."""


class StateFormat(abc.ABC):
    """How one strategy saves and loads the models and optimizers of a checkpoint."""

    #: Recorded in the manifest: True when every rank writes its own shards.
    sharded: bool = False

    @abc.abstractmethod
    def stage(self, contents: Contents, main: bool) -> StagedStates:
        """Take the states to write (model tensors on the CPU); a collective where the strategy needs one."""

    @abc.abstractmethod
    def load(self, contents: Contents, directory: Path, sharded: bool, strict: bool) -> None:
        """Fill the models and optimizers from ``directory``, written ``sharded`` or not."""
