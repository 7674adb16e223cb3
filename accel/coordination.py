"""Cross-rank coordination members of ``Accelerator``: a stop flag any rank can raise, and a forced gradient sync.

``set_trigger()`` on any rank, then ``check_trigger()`` on every rank (it is a collective), is True on
all of them: the idiom for early stopping when one rank decides. ``trigger_sync_in_backward(model)``
makes the next backward of a model synchronise gradients even inside ``no_sync()`` (the forward
having run without synchronisation).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from accel.state import PartialState

__all__ = ["CoordinationMembers", "trigger_sync_in_backward"]


class CoordinationMembers:
    """``set_trigger`` / ``check_trigger`` / ``trigger_sync_in_backward`` for an object owning ``self.state``."""

    state: PartialState
    _trigger_raised: bool = False

    def set_trigger(self) -> None:
        """Raise this rank's flag; the next :meth:`check_trigger` is True on every rank."""
        self._trigger_raised = True

    def check_trigger(self) -> bool:
        """True on every rank when any rank called :meth:`set_trigger` since the last check (a collective).

        The flag is lowered again once seen, so the next check is False unless a rank sets it anew.
        """
        flag = torch.tensor([1 if self._trigger_raised else 0], dtype=torch.int64, device=self.state.device)
        if self.state.use_distributed:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        raised = bool(flag.item())
        if raised:
            self._trigger_raised = False
        return raised

    def trigger_sync_in_backward(self, model: torch.nn.Module) -> contextlib.AbstractContextManager[None]:
        """Synchronise gradients in the next backward of ``model``, even inside ``no_sync()``."""
        return trigger_sync_in_backward(model)


@contextlib.contextmanager
def trigger_sync_in_backward(model: torch.nn.Module) -> Iterator[None]:
    """Context manager: the backward inside the block all-reduces (DDP) or reduce-scatters (FSDP2) gradients.

    A model that is not distributed (one process, a frozen model) is left alone.
    """
    if isinstance(model, DistributedDataParallel):
        with _ddp_sync(model):
            yield
        return
    set_sync = getattr(model, "set_requires_gradient_sync", None)
    if callable(set_sync):  # FSDP2 (fully_shard): the flag is read when the backward runs
        was_syncing = _fsdp_syncing(model)
        set_sync(True)
        try:
            yield
        finally:
            set_sync(was_syncing)
        return
    yield


@contextlib.contextmanager
def _ddp_sync(model: DistributedDataParallel) -> Iterator[None]:
    backward, forward = model.require_backward_grad_sync, model.require_forward_param_sync
    model.require_backward_grad_sync = True
    model.require_forward_param_sync = True
    # the forward ran under no_sync, so the reducer was not told a backward is coming: tell it now
    model.reducer.prepare_for_backward([])
    try:
        yield
    finally:
        model.require_backward_grad_sync, model.require_forward_param_sync = backward, forward


def _fsdp_syncing(model: torch.nn.Module) -> bool:
    """Whether gradient reduction is on for an FSDP2 module (True when it cannot be told)."""
    get_state = getattr(model, "_get_fsdp_state", None)
    group = getattr(get_state(), "_fsdp_param_group", None) if callable(get_state) else None
    return bool(getattr(group, "reduce_grads", True))
