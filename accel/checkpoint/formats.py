"""The two ways a strategy stores models and optimizers in a checkpoint.

:class:`FullFormat` (single process, DDP: every rank holds the whole model) writes full state dicts
from the main process (:mod:`accel.checkpoint.full`); :class:`ShardedFormat` (FSDP2) has every rank
write its own shards through ``torch.distributed.checkpoint`` (:mod:`accel.checkpoint.sharded`).
Each reads the other's checkpoints where that makes sense: a sharded checkpoint loads into an
unsharded model, and a full one loads its models (not its optimizers) into a sharded one. A
strategy picks its format in :meth:`~accel.strategies.base.Strategy.checkpoint_format`.
"""

from __future__ import annotations

from pathlib import Path

from accel.checkpoint import full
from accel.checkpoint.contents import Contents, StagedStates, StateFormat
from accel.checkpoint.full import WholeModels

__all__ = ["FullFormat", "ShardedFormat"]


class FullFormat(StateFormat):
    """Full state dicts.

    Args:
        strategy: gathers and loads whole-model state dicts.
        in_place: read model tensors straight into the live parameters (False where parameters are sharded).
        optimizers: whether full optimizer states can be loaded (False for sharded strategies).
    """

    sharded = False

    def __init__(self, strategy: WholeModels, in_place: bool = True, optimizers: bool = True) -> None:
        self.strategy = strategy
        self.in_place = in_place
        self.optimizers = optimizers

    def stage(self, contents: Contents, main: bool) -> StagedStates:
        return full.stage(self.strategy, contents, main)

    def load(self, contents: Contents, directory: Path, sharded: bool, strict: bool) -> None:
        if sharded:
            from accel.checkpoint import sharded as sharded_mod

            sharded_mod.load(contents, directory, strict)
        else:
            full.load(self.strategy, contents, directory, strict, self.in_place, self.optimizers)


class ShardedFormat(StateFormat):
    """Every rank's shards (``torch.distributed.checkpoint``, safetensors storage)."""

    sharded = True

    def __init__(self, strategy: WholeModels) -> None:
        self.strategy = strategy

    def stage(self, contents: Contents, main: bool) -> StagedStates:
        from accel.checkpoint import sharded as sharded_mod

        return sharded_mod.stage(contents)

    def load(self, contents: Contents, directory: Path, sharded: bool, strict: bool) -> None:
        if sharded:
            from accel.checkpoint import sharded as sharded_mod

            sharded_mod.load(contents, directory, strict)
        else:
            full.load(self.strategy, contents, directory, strict, in_place=False, optimizers=False)
