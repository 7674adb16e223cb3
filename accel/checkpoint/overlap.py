"""Overlapped staging: ``save_state(async_save="overlap")`` copies the weights while the next step runs.

An asynchronous save (:mod:`accel.checkpoint.background`) blocks the loop for one memory copy of the
state. Most of that copy is the parameters and the optimizer state, and between two optimizer steps
nothing in a training loop writes to them: the forward and backward passes only read the
parameters (and write gradients, which are not saved). So with ``"overlap"``:

* everything else (buffers such as BatchNorm statistics, which the forward pass updates, the
  registered objects, schedulers, RNG states) is still copied before ``save_state`` returns;
* the tensors that share storage with a prepared model's parameters or a prepared optimizer's state
  are copied by the background thread, first, before it writes anything;
* a step pre-hook on every prepared optimizer (``Optimizer.register_step_pre_hook``, so a call to the
  raw optimizer waits too) makes the next ``optimizer.step()`` wait until that copy is complete.

The snapshot is therefore the state at the call, as long as the parameters change only through the
prepared optimizers until the next step (no in-place edit of the weights, ``load_state_dict`` or
``torch.no_grad()`` update in between); ``async_save=True`` has no such condition.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

import torch

from accel.exceptions import CheckpointError
from accel.plugins import ASYNC_SAVE_MODES

if TYPE_CHECKING:
    from torch.utils.hooks import RemovableHandle

    from accel.checkpoint.contents import Contents


def check_mode(value: object, where: str) -> None:
    """Raise :class:`CheckpointError` unless ``value`` is one of ``ASYNC_SAVE_MODES``."""
    if not isinstance(value, (bool, str)) or value not in ASYNC_SAVE_MODES:
        raise CheckpointError(
            f"{where}: {value!r} is not a mode; use False (a blocking save), True (copy the state into "
            "memory, write it in the background) or 'overlap' (also copy the weights in the background, "
            "while the next forward and backward run)"
        )


def storages(contents: Contents) -> frozenset[int]:
    """Storage addresses of the prepared models' parameters and the prepared optimizers' state."""
    found: set[int] = set()
    for model in contents.models:
        found.update(p.untyped_storage().data_ptr() for p in model.parameters())
    for opt in contents.optimizers:
        for state in opt.optimizer.state.values():
            found.update(v.untyped_storage().data_ptr() for v in state.values() if isinstance(v, torch.Tensor))
    found.discard(0)  # empty tensors have no storage to protect
    return frozenset(found)


class StepGuard:
    """Holds the optimizers' next step until the deferred copy of the state is complete.

    Attributes:
        waited: seconds the optimizer steps waited for the copy of the last overlapped save
            (what that save cost the training loop beyond ``save_state`` itself).
    """

    def __init__(self) -> None:
        self._ready: threading.Event | None = None
        self._hooks: weakref.WeakKeyDictionary[torch.optim.Optimizer, RemovableHandle] = weakref.WeakKeyDictionary()
        self.waited = 0.0

    def attach(self, contents: Contents) -> None:
        """Hook every prepared optimizer once (a later ``prepare`` may add optimizers)."""
        for opt in contents.optimizers:
            raw = opt.optimizer
            if not isinstance(raw, torch.optim.Optimizer):
                raise CheckpointError(
                    f"save_state(async_save='overlap') needs torch.optim.Optimizer instances (their step "
                    f"pre-hooks hold the next step); {type(raw).__qualname__} is not one: use async_save=True"
                )
            if raw not in self._hooks:
                self._hooks[raw] = raw.register_step_pre_hook(self._before_step)

    def hold(self) -> threading.Event:
        """Start holding steps; the returned event releases them (set it even if the copy fails)."""
        self._ready = threading.Event()
        self.waited = 0.0
        return self._ready

    @property
    def holding(self) -> bool:
        """True while a step would wait."""
        return self._ready is not None and not self._ready.is_set()

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        ready = self._ready
        if ready is not None:
            start = time.perf_counter()
            ready.wait()
            self.waited += time.perf_counter() - start
            self._ready = None
