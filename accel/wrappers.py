"""Thin wrappers around the user's optimizer and LR scheduler.

They delegate everything, and add only what accumulation and mixed precision need: the optimizer
steps (and zeroes gradients) only on steps where gradients are synchronised, through the precision
policy (fp16 scaler); the scheduler steps once per real optimizer step. Models are not wrapped
here: a prepared model is the user's module (or its DDP / FSDP form).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from accel.precision import Precision


class SyncSource(Protocol):
    """Tells whether the current micro-step synchronises gradients."""

    @property
    def sync_gradients(self) -> bool:
        """True on the last micro-batch of an accumulation window."""
        ...


class AcceleratedOptimizer(torch.optim.Optimizer):
    """The user's optimizer, stepped through the precision policy on synchronising steps only.

    Attributes:
        optimizer: the user's optimizer.
        step_was_skipped: True when the last step was skipped by the fp16 scaler (overflow).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, precision: Precision, sync: SyncSource) -> None:
        # Optimizer.__init__ is not called: every piece of state lives in the wrapped optimizer.
        self.optimizer = optimizer
        self.precision = precision
        self._sync = sync
        self.step_was_skipped = False
        self.steps = 0

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The wrapped optimizer's parameter groups."""
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, groups: list[dict[str, Any]]) -> None:
        self.optimizer.param_groups = groups

    @property
    def state(self) -> Any:  # type: ignore[override]
        """The wrapped optimizer's per-parameter state."""
        return self.optimizer.state

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        """The wrapped optimizer's defaults."""
        return self.optimizer.defaults

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero gradients, except while accumulating."""
        if self._sync.sync_gradients:
            self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        """Step on synchronising micro-steps (through the fp16 scaler when active)."""
        if self._sync.sync_gradients:
            stepped = self.precision.step(self.optimizer, closure) if closure else self.precision.step(self.optimizer)
            self.step_was_skipped = not stepped
            self.steps += stepped

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimizer's state dict."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load into the wrapped optimizer."""
        self.optimizer.load_state_dict(state_dict)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the wrapped optimizer."""
        self.optimizer.add_param_group(param_group)

    def train(self) -> None:
        """Switch schedule-free optimizers to training mode (no-op for others)."""
        getattr(self.optimizer, "train", lambda: None)()

    def eval(self) -> None:
        """Switch schedule-free optimizers to evaluation mode (no-op for others)."""
        getattr(self.optimizer, "eval", lambda: None)()

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"AcceleratedOptimizer({self.optimizer!r})"


class AcceleratedScheduler:
    """The user's LR scheduler, stepped once per real optimizer step.

    Steps are skipped while accumulating and when the fp16 scaler skipped the optimizer step. Unlike
    Accelerate, the schedule is not advanced ``num_processes`` times per step: a schedule written for
    N optimizer steps lasts N optimizer steps at any world size.
    """

    def __init__(
        self,
        scheduler: Any,
        optimizers: list[AcceleratedOptimizer],
        sync: SyncSource,
        step_with_optimizer: bool = True,
    ) -> None:
        self.scheduler = scheduler
        self.optimizers = optimizers
        self._sync = sync
        self.step_with_optimizer = step_with_optimizer

    def step(self, *args: Any, **kwargs: Any) -> None:
        """Advance the schedule if the optimizer really stepped."""
        skipped = not self._sync.sync_gradients or any(opt.step_was_skipped for opt in self.optimizers)
        if self.step_with_optimizer and skipped:
            return
        self.scheduler.step(*args, **kwargs)

    def get_last_lr(self) -> list[float]:
        """Learning rates after the last step."""
        return list(self.scheduler.get_last_lr())

    def state_dict(self) -> dict[str, Any]:
        """The wrapped scheduler's state dict."""
        return dict(self.scheduler.state_dict())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load into the wrapped scheduler."""
        self.scheduler.load_state_dict(state_dict)

    def __getattr__(self, name: str) -> Any:
        if name == "scheduler":
            raise AttributeError(name)
        return getattr(self.scheduler, name)
