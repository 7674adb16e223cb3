"""FSDP2: parameters sharded with ``torch.distributed.fsdp.fully_shard`` (one or several models)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, set_model_state_dict
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor

from accel.plugins import FullyShardedDataParallelPlugin
from accel.state import DistributedType, PartialState
from accel.strategies.base import Strategy

if TYPE_CHECKING:
    from accel.checkpoint.contents import StateFormat


class FSDPStrategy(Strategy):
    """Shard parameters, gradients and optimizer state over the ranks."""

    name = "fsdp"
    full_state_is_collective = True

    def __init__(self, state: PartialState, plugin: FullyShardedDataParallelPlugin) -> None:
        super().__init__(state)
        self.plugin = plugin

    @property
    def distributed_type(self) -> DistributedType:
        return DistributedType.FSDP

    def _is_unit(self, module: torch.nn.Module) -> bool:
        wanted = self.plugin.auto_wrap_classes
        if any(module.__class__.__name__ == c if isinstance(c, str) else isinstance(module, c) for c in wanted):
            return True
        minimum = self.plugin.min_num_params
        return minimum > 0 and sum(p.numel() for p in module.parameters()) >= minimum

    def setup_model(self, model: torch.nn.Module, device_placement: bool = True) -> torch.nn.Module:
        if isinstance(model, FSDPModule):
            return model
        model = model.to(self.state.device)
        reshard = self.plugin.reshard_after_forward
        units = [m for m in model.modules() if m is not model and self._is_unit(m)]
        for unit in reversed(units):  # innermost first
            fully_shard(unit, reshard_after_forward=reshard)
        fully_shard(model, reshard_after_forward=reshard)
        return model

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        return _no_gradient_sync(model)

    def clip_grad_norm(self, parameters: Iterable[torch.Tensor], max_norm: float, norm_type: float) -> torch.Tensor:
        norm = torch.nn.utils.clip_grad_norm_(list(parameters), max_norm, norm_type=norm_type)
        return norm.full_tensor() if isinstance(norm, DTensor) else norm

    def full_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The whole model on the main process (other ranks get an empty dict)."""
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return dict(get_model_state_dict(model, options=options))  # type: ignore[arg-type]

    def load_full_state_dict(self, model: torch.nn.Module, state: dict[str, torch.Tensor], strict: bool = True) -> Any:
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=strict)
        return set_model_state_dict(model, state, options=options)  # type: ignore[arg-type]

    def checkpoint_format(self) -> StateFormat:
        """Every rank writes its own shards (``torch.distributed.checkpoint``)."""
        from accel.checkpoint.formats import ShardedFormat

        return ShardedFormat(self)


@contextlib.contextmanager
def _no_gradient_sync(model: torch.nn.Module) -> Iterator[None]:
    if not isinstance(model, FSDPModule):
        yield
        return
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)
