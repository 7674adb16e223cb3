"""What ``prepare()`` does to each kind of object, and the registry of everything prepared.

Models first (a strategy may replace their parameters, e.g. FSDP2), then optimizers (their
parameters are re-pointed at the prepared ones), then schedulers and DataLoaders; anything else
passes through. Preparing an already prepared object returns it unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

from accel import ops
from accel.accumulation import Accumulator
from accel.data import GradientState, PreparedDataLoader, shard
from accel.exceptions import PrepareError
from accel.plugins import DataLoaderConfiguration
from accel.precision import Precision
from accel.state import PartialState
from accel.strategies import Strategy
from accel.wrappers import AcceleratedOptimizer, AcceleratedScheduler


class Preparation:
    """Prepares objects for one Accelerator and remembers them (for checkpoints and accumulation)."""

    def __init__(
        self,
        state: PartialState,
        strategy: Strategy,
        precision: Precision,
        accumulator: Accumulator,
        gradient_state: GradientState,
        dataloader_config: DataLoaderConfiguration,
        device_placement: bool = True,
        step_scheduler_with_optimizer: bool = True,
    ) -> None:
        self.state, self.strategy, self.precision = state, strategy, precision
        self.accumulator, self.gradient_state = accumulator, gradient_state
        self.dataloader_config = dataloader_config
        self.device_placement = device_placement
        self.step_scheduler_with_optimizer = step_scheduler_with_optimizer
        self.models: list[torch.nn.Module] = []
        self.optimizers: list[AcceleratedOptimizer] = []
        self.schedulers: list[AcceleratedScheduler] = []
        self.dataloaders: list[PreparedDataLoader] = []
        self.custom_objects: list[Any] = []
        self.hooks: dict[int, list[Any]] = {}
        self.rng_types: list[str] = []  # Accelerator(rng_types=...): synced when each prepared DataLoader starts

    def prepare(self, args: tuple[Any, ...], device_placement: list[bool] | None) -> list[Any]:
        """Prepare ``args`` in dependency order; return them in the given order."""
        if device_placement is not None and len(device_placement) != len(args):
            raise PrepareError(
                f"prepare(device_placement=...) has {len(device_placement)} entries for {len(args)} objects"
            )
        placement = device_placement or [self.device_placement] * len(args)
        result = list(args)
        params: dict[int, torch.Tensor] = {}
        for i, obj in enumerate(args):
            if isinstance(obj, torch.nn.Module):
                before = list(obj.parameters())
                result[i] = self.model(obj, device_placement=placement[i])
                after = self.strategy.unwrap(result[i]).parameters()
                params.update({id(old): new for old, new in zip(before, after, strict=False)})
        for i, obj in enumerate(args):
            if isinstance(obj, torch.optim.Optimizer):
                result[i] = self.optimizer(obj, params)
        for i, obj in enumerate(args):
            if _is_scheduler(obj):
                result[i] = self.scheduler(obj)
            elif isinstance(obj, torch.utils.data.DataLoader):
                result[i] = self.data_loader(obj, device_placement=placement[i])
        return result

    def model(
        self, model: torch.nn.Module, device_placement: bool | None = None, evaluation_mode: bool = False
    ) -> torch.nn.Module:
        """Attach the precision hooks, move and wrap for the strategy."""
        if any(model is m for m in self.models):
            return model
        placement = self.device_placement if device_placement is None else device_placement
        inner = self.strategy.unwrap(model)
        if id(inner) not in self.hooks:
            self.hooks[id(inner)] = self.precision.attach(inner)
        if evaluation_mode:
            prepared = model.to(self.state.device) if placement else model
        else:
            prepared = self.strategy.setup_model(model, placement)
        self.models.append(prepared)
        return prepared

    def optimizer(
        self, optimizer: torch.optim.Optimizer, params: dict[int, torch.Tensor] | None = None
    ) -> AcceleratedOptimizer:
        """Wrap an optimizer whose parameters all belong to prepared models."""
        if isinstance(optimizer, AcceleratedOptimizer):
            return optimizer
        known = params or {id(p): p for m in self.models for p in self.strategy.unwrap(m).parameters()}
        known_ids = set(known) | {id(p) for p in known.values()}
        for group in optimizer.param_groups:
            missing = [p for p in group["params"] if id(p) not in known_ids]
            if missing:
                raise PrepareError(
                    f"prepare(): the optimizer holds {len(missing)} parameter(s) of shape {tuple(missing[0].shape)} "
                    "that belong to no prepared model; pass the model to the same prepare() call (or an earlier one)"
                )
            group["params"] = [known.get(id(p), p) for p in group["params"]]
        wrapped = AcceleratedOptimizer(optimizer, self.precision, self.accumulator)
        self.optimizers.append(wrapped)
        return wrapped

    def scheduler(self, scheduler: Any) -> AcceleratedScheduler:
        """Wrap an LR scheduler so that it steps once per real optimizer step."""
        if isinstance(scheduler, AcceleratedScheduler):
            return scheduler
        inner = getattr(scheduler, "optimizer", None)
        owners = [o for o in self.optimizers if o.optimizer is inner or o is inner] or list(self.optimizers)
        wrapped = AcceleratedScheduler(scheduler, owners, self.accumulator, self.step_scheduler_with_optimizer)
        self.schedulers.append(wrapped)
        return wrapped

    def data_loader(self, data_loader: Any, device_placement: bool | None = None) -> PreparedDataLoader:
        """Shard a DataLoader over the processes."""
        if isinstance(data_loader, PreparedDataLoader):
            return data_loader
        cfg = self.dataloader_config
        placement = self.device_placement if device_placement is None else device_placement
        device = self.state.device
        prepared = shard(
            data_loader,
            num_replicas=self.state.num_processes,
            rank=self.state.process_index,
            device=device if placement else torch.device("cpu"),
            state=self.gradient_state,
            seed=cfg.data_seed if cfg.data_seed is not None else _shared_seed(device),
            split_batches=cfg.split_batches,
            even_batches=cfg.even_batches,
            non_blocking=cfg.non_blocking,
            dispatch_batches=cfg.dispatch_batches,
        )
        prepared.rng_types = list(self.rng_types)
        self.dataloaders.append(prepared)
        return prepared

    def remove_hooks(self, inner: torch.nn.Module) -> None:
        """Detach the precision hooks of a user module."""
        for handle in self.hooks.pop(id(inner), []):
            handle.remove()

    def clear(self) -> None:
        """Forget every prepared object."""
        for registry in (self.models, self.optimizers, self.schedulers, self.dataloaders):
            registry.clear()


def _is_scheduler(obj: Any) -> bool:
    kinds = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau, AcceleratedScheduler)
    return isinstance(obj, kinds)


def _shared_seed(device: torch.device) -> int:
    """A data-order seed drawn from torch's generator on rank 0 (so ``set_seed`` controls it), same on all ranks."""
    seed = torch.randint(0, 2**31 - 1, (1,), dtype=torch.int64)
    return int(ops.broadcast(seed.to(device)).item())
