"""The strategy interface: set a model up, skip gradient sync, clip, export a full state dict, checkpoint."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

from accel.state import DistributedType, PartialState

if TYPE_CHECKING:
    from accel.checkpoint.contents import StateFormat


class Strategy:
    """A single process: the model is only moved to the device."""

    name = "single"
    #: True when :meth:`full_state_dict` is a collective that every rank must enter.
    full_state_is_collective = False

    def __init__(self, state: PartialState) -> None:
        self.state = state

    @property
    def distributed_type(self) -> DistributedType:
        """What ``Accelerator.distributed_type`` reports."""
        return self.state.distributed_type

    def setup_model(self, model: torch.nn.Module, device_placement: bool = True) -> torch.nn.Module:
        """Move (and wrap) a model; returns what ``prepare`` hands back."""
        return model.to(self.state.device) if device_placement else model

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The user's module inside a prepared one."""
        return model

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        """Context in which backward does not synchronise gradients."""
        return contextlib.nullcontext()

    def clip_grad_norm(self, parameters: Iterable[torch.Tensor], max_norm: float, norm_type: float) -> torch.Tensor:
        """Clip the global gradient norm; returns the norm before clipping."""
        return torch.nn.utils.clip_grad_norm_(list(parameters), max_norm, norm_type=norm_type)

    def full_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The whole model's state dict on every rank (CPU tensors)."""
        return {k: v.detach().cpu() for k, v in self.unwrap(model).state_dict().items()}

    def load_full_state_dict(self, model: torch.nn.Module, state: dict[str, torch.Tensor], strict: bool = True) -> Any:
        """Load a whole-model state dict into a prepared model."""
        return self.unwrap(model).load_state_dict(state, strict=strict)

    def checkpoint_format(self) -> StateFormat:
        """How ``save_state`` / ``load_state`` store models and optimizers: full state dicts."""
        from accel.checkpoint.formats import FullFormat

        return FullFormat(self)
