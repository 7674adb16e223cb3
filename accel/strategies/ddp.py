"""DistributedDataParallel on CPU (gloo) or GPU (nccl)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from accel.plugins import DistributedDataParallelKwargs
from accel.state import PartialState
from accel.strategies.base import Strategy


class DDPStrategy(Strategy):
    """Replicate the model; average gradients in backward."""

    name = "ddp"

    def __init__(self, state: PartialState, kwargs: DistributedDataParallelKwargs) -> None:
        super().__init__(state)
        self.kwargs = kwargs.to_kwargs()

    def setup_model(self, model: torch.nn.Module, device_placement: bool = True) -> torch.nn.Module:
        if isinstance(model, DistributedDataParallel):
            return model
        model = super().setup_model(model, device_placement)
        if not any(p.requires_grad for p in model.parameters()):
            return model  # frozen models (e.g. a teacher) need no gradient sync
        device_ids = [self.state.device.index] if self.state.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids, **self.kwargs)

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.module if isinstance(model, DistributedDataParallel) else model

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        if isinstance(model, DistributedDataParallel):
            return model.no_sync()
        return contextlib.nullcontext()
