"""How a model is spread over the processes: single, DDP, or FSDP2 (``fully_shard``)."""

from __future__ import annotations

from accel.config.schema import KEYS
from accel.exceptions import ConfigError
from accel.plugins import DistributedDataParallelKwargs, FullyShardedDataParallelPlugin
from accel.state import PartialState
from accel.strategies.base import Strategy

STRATEGIES = KEYS["strategy"].choices


def create(
    name: str,
    state: PartialState,
    ddp_kwargs: DistributedDataParallelKwargs | None = None,
    fsdp_plugin: FullyShardedDataParallelPlugin | None = None,
) -> Strategy:
    """The strategy for ``name`` ("ddp" or "fsdp"); a single process always gets the single strategy."""
    if name not in STRATEGIES:
        raise ConfigError(f"strategy={name!r} is not known; use one of {', '.join(STRATEGIES)}")
    if not state.use_distributed:
        from accel.strategies.single import SingleStrategy

        return SingleStrategy(state)
    if name == "fsdp":
        from accel.strategies.fsdp import FSDPStrategy

        return FSDPStrategy(state, fsdp_plugin or FullyShardedDataParallelPlugin())
    from accel.strategies.ddp import DDPStrategy

    return DDPStrategy(state, ddp_kwargs or DistributedDataParallelKwargs())


__all__ = ["STRATEGIES", "Strategy", "create"]
