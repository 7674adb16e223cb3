"""``Accelerator``: the facade a training script touches.

It resolves the settings (explicit argument > ``ACCEL_*`` variable set by ``accel launch`` > default),
builds the process state, the strategy and the precision policy, and delegates: data sharding to
:mod:`accel.data`, collectives to :mod:`accel.ops`, checkpoints to :mod:`accel.checkpoint`,
trackers to :mod:`accel.tracking`.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

from accel import precision as precision_mod
from accel import strategies as strategies_mod
from accel.accelerator_state import AcceleratorState
from accel.accumulation import Accumulator
from accel.config.run import RunConfig
from accel.coordination import CoordinationMembers
from accel.data import GradientState, PreparedDataLoader, skip_first_batches
from accel.exceptions import ConfigError
from accel.persistence import PersistenceMembers
from accel.plugins import (
    DataLoaderConfiguration,
    DistributedDataParallelKwargs,
    FullyShardedDataParallelPlugin,
    GradientAccumulationPlugin,
    GradScalerKwargs,
    InitProcessGroupKwargs,
    KwargsHandler,
    ProjectConfiguration,
    pick_handler,
    resolve_accumulation,
    sort_handlers,
)
from accel.preparation import Preparation
from accel.process import ProcessMembers
from accel.rng import check_rng_types
from accel.state import DistributedType
from accel.wrappers import AcceleratedOptimizer, AcceleratedScheduler

T = TypeVar("T")
_NO_CONTEXT = contextlib.nullcontext()
_UNSUPPORTED = ("deepspeed_plugin", "megatron_lm_plugin", "torch_tp_plugin", "dynamo_plugin", "split_batches")


class Accelerator(ProcessMembers, PersistenceMembers, CoordinationMembers):
    """Prepare a model, optimizer, scheduler and DataLoaders for the current distributed setup.

    Args:
        device_placement: move prepared models and batches to the device.
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"`` (default: ``ACCEL_MIXED_PRECISION`` or ``"no"``).
        gradient_accumulation_steps: micro-batches per optimizer step (default: the launcher's setting or 1).
        cpu: stay on the CPU even when a GPU is present.
        dataloader_config: sharding options (:class:`~accel.DataLoaderConfiguration`).
        fsdp_plugin: shard parameters with FSDP2 (also selected by ``ACCEL_STRATEGY=fsdp``).
        project_config / project_dir: where ``save_state`` and trackers write.
        gradient_accumulation_plugin: accumulation options (exclusive with ``gradient_accumulation_steps``).
        log_with: tracker names (``"jsonl"``, ``"csv"``, ``"tensorboard"``, ``"all"``).
        kwargs_handlers: ``DistributedDataParallelKwargs``, ``InitProcessGroupKwargs``, ``GradScalerKwargs``.
        step_scheduler_with_optimizer: step prepared schedulers only when the optimizer really stepped.
        rng_types: generators synced from rank 0 as each prepared DataLoader starts (the order is seeded).
    """

    def __init__(
        self,
        device_placement: bool = True,
        mixed_precision: str | None = None,
        gradient_accumulation_steps: int | None = None,
        cpu: bool | None = None,
        dataloader_config: DataLoaderConfiguration | None = None,
        fsdp_plugin: FullyShardedDataParallelPlugin | None = None,
        project_config: ProjectConfiguration | None = None,
        project_dir: str | Path | None = None,
        gradient_accumulation_plugin: GradientAccumulationPlugin | None = None,
        log_with: str | list[str] | None = None,
        kwargs_handlers: list[KwargsHandler] | None = None,
        step_scheduler_with_optimizer: bool = True,
        rng_types: list[str] | None = None,
        **unsupported: Any,
    ) -> None:
        for name in unsupported:
            hint = (
                " (use dataloader_config=DataLoaderConfiguration(split_batches=...))" if name == "split_batches" else ""
            )
            known = name in _UNSUPPORTED
            raise ConfigError(f"Accelerator({name}=...) is {'not supported' if known else 'not an argument'}{hint}")
        handlers = sort_handlers(kwargs_handlers or [])
        pg = pick_handler(handlers, InitProcessGroupKwargs) or InitProcessGroupKwargs()
        run = RunConfig.from_environment()  # what the launcher resolved; explicit arguments win over it
        self.state = AcceleratorState(
            cpu=cpu,
            backend=pg.backend,
            timeout=pg.timeout,
            init_method=pg.init_method,
            run_config=run,
            _from_accelerator=True,
        )
        self.device_placement = device_placement
        mode = precision_mod.check_mode(mixed_precision) if mixed_precision is not None else None
        self.precision = precision_mod.create(
            mode or run.mixed_precision or "no", self.device, pick_handler(handlers, GradScalerKwargs)
        )
        if self.state.is_main_process:  # explicit arguments win; say so where they contradict the launcher
            steps = gradient_accumulation_steps or getattr(gradient_accumulation_plugin, "num_steps", None)
            sharded = "fsdp" if fsdp_plugin is not None else None
            run.warn_overridden(mixed_precision=mode, gradient_accumulation_steps=steps, use_cpu=cpu, strategy=sharded)
        strategy = "fsdp" if fsdp_plugin is not None else (run.strategy or "ddp")
        self.strategy = strategies_mod.create(
            strategy, self.state, pick_handler(handlers, DistributedDataParallelKwargs), fsdp_plugin
        )
        self.state.attach(self.precision.mode, self.strategy.distributed_type, fsdp_plugin)
        self.dataloader_config = dataloader_config or DataLoaderConfiguration()
        self.project_configuration = project_config or ProjectConfiguration()
        if project_dir is not None or self.project_configuration.project_dir is None:
            self.project_configuration.set_directories(project_dir or run.project_dir or ".")
        self.gradient_state = GradientState()
        accumulation = resolve_accumulation(gradient_accumulation_steps, gradient_accumulation_plugin, run)
        self.accumulator = Accumulator(accumulation, self.gradient_state)
        self.prepared = Preparation(
            self.state,
            self.strategy,
            self.precision,
            self.accumulator,
            self.gradient_state,
            self.dataloader_config,
            device_placement,
            step_scheduler_with_optimizer,
        )
        self.prepared.rng_types = check_rng_types(rng_types, "Accelerator")
        # the registries, under the private names Accelerate scripts sometimes read
        self._models = self.prepared.models
        self._optimizers = self.prepared.optimizers
        self._schedulers = self.prepared.schedulers
        self._dataloaders = self.prepared.dataloaders
        self._custom_objects = self.prepared.custom_objects
        self._trackers: Any = None
        self._log_with = log_with
        self._checkpoints = None

    # ------------------------------------------------------------------ properties

    @property
    def distributed_type(self) -> DistributedType:
        """NO, MULTI_CPU, MULTI_GPU or FSDP."""
        return self.strategy.distributed_type

    @property
    def mixed_precision(self) -> str:
        """The precision mode really active: ``no``, ``bf16`` or ``fp16``."""
        return self.precision.mode

    @property
    def sync_gradients(self) -> bool:
        """True on the micro-step that ends an accumulation window."""
        return self.accumulator.sync_gradients

    @property
    def gradient_accumulation_steps(self) -> int:
        """Micro-batches per optimizer step."""
        return self.accumulator.num_steps

    @gradient_accumulation_steps.setter
    def gradient_accumulation_steps(self, value: int) -> None:
        self.accumulator.num_steps = resolve_accumulation(value, None).num_steps

    @property
    def step(self) -> int:
        """Micro-steps taken inside ``accumulate()``."""
        return self.accumulator.step

    @step.setter
    def step(self, value: int) -> None:
        self.accumulator.step = value

    @property
    def optimizer_step_was_skipped(self) -> bool:
        """True when the fp16 scaler skipped the last optimizer step."""
        return any(opt.step_was_skipped for opt in self._optimizers)

    # ------------------------------------------------------------------ prepare
    def prepare(self, *args: Any, device_placement: list[bool] | None = None) -> Any:
        """Prepare models, optimizers, schedulers and DataLoaders (in any order); return them in order."""
        result = self.prepared.prepare(args, device_placement)
        self._after_prepare()  # auto-resume after an elastic restart; save on SIGTERM/SIGUSR1
        return result[0] if len(result) == 1 else tuple(result)

    def prepare_model(
        self, model: torch.nn.Module, device_placement: bool | None = None, evaluation_mode: bool = False
    ) -> torch.nn.Module:
        """Move a model to the device and wrap it for the strategy (idempotent)."""
        return self.prepared.model(model, device_placement, evaluation_mode)

    def prepare_optimizer(
        self, optimizer: torch.optim.Optimizer, device_placement: bool | None = None
    ) -> AcceleratedOptimizer:
        """Wrap an optimizer whose parameters belong to prepared models."""
        return self.prepared.optimizer(optimizer)

    def prepare_scheduler(self, scheduler: Any) -> AcceleratedScheduler:
        """Wrap an LR scheduler so that it steps once per real optimizer step."""
        return self.prepared.scheduler(scheduler)

    def prepare_data_loader(self, data_loader: Any, device_placement: bool | None = None) -> PreparedDataLoader:
        """Shard a DataLoader over the processes (idempotent)."""
        return self.prepared.data_loader(data_loader, device_placement)

    # ------------------------------------------------------------------ training step
    def backward(self, loss: torch.Tensor, num_items: int | torch.Tensor | None = None, **kwargs: Any) -> None:
        """Backward pass: scaled for fp16, divided over the accumulation window.

        With ``num_items`` (the loss being a *sum* over that many items), gradients are normalised by the
        item count of the whole window on all ranks, giving exactly the gradient of one large batch.
        """
        divisor = self.accumulator.divisor if num_items is None else 1
        if divisor != 1:
            loss = loss / divisor
        self.precision.backward(loss, **kwargs)
        if num_items is not None or self.accumulator.rescale != 1.0:
            self.accumulator.after_backward(num_items, self._models, self.num_processes)

    def accumulate(self, *models: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        """One micro-step: gradients are synchronised (and the optimizer steps) on the window's last one."""
        if self.accumulator.begin_micro_step() or not models:
            return _NO_CONTEXT
        stack = contextlib.ExitStack()
        for model in models:
            stack.enter_context(self.strategy.no_sync(model))
        return stack

    @contextlib.contextmanager
    def no_sync(self, model: torch.nn.Module) -> Iterator[None]:
        """Skip gradient synchronisation for the block."""
        with self.strategy.no_sync(model):
            yield

    def autocast(self, autocast_handler: Any = None) -> contextlib.AbstractContextManager[Any]:
        """Autocast context of the active precision (forward passes of prepared models already use it)."""
        if autocast_handler is not None:
            raise ConfigError(
                "autocast(autocast_handler=...) is not supported; the active precision's autocast applies"
            )
        return self.precision.autocast()

    def clip_grad_norm_(
        self, parameters: Iterable[torch.Tensor], max_norm: float, norm_type: float = 2.0
    ) -> torch.Tensor:
        """Clip the global gradient norm (unscaling fp16 gradients first); returns the norm."""
        params = list(parameters)
        self._unscale(params)
        return self.strategy.clip_grad_norm(params, max_norm, norm_type)

    def clip_grad_value_(self, parameters: Iterable[torch.Tensor], clip_value: float) -> None:
        """Clip gradients element-wise (unscaling fp16 gradients first)."""
        params = list(parameters)
        self._unscale(params)
        torch.nn.utils.clip_grad_value_(params, clip_value)

    def _unscale(self, params: list[torch.Tensor]) -> None:
        ids = {id(p) for p in params}
        for opt in self._optimizers:
            if any(id(p) in ids for g in opt.param_groups for p in g["params"]):
                self.precision.unscale(opt.optimizer)

    def unwrap_model(
        self, model: torch.nn.Module, keep_fp32_wrapper: bool = True, keep_torch_compile: bool = True
    ) -> torch.nn.Module:
        """The user's module inside a prepared one (without autocast hooks if ``keep_fp32_wrapper=False``)."""
        inner = self.strategy.unwrap(model)
        if not keep_fp32_wrapper:
            self.prepared.remove_hooks(inner)
        return inner

    def get_state_dict(self, model: torch.nn.Module, unwrap: bool = True) -> dict[str, torch.Tensor]:
        """The whole model's state dict on CPU (gathered from shards under FSDP; empty on other ranks there)."""
        return self.strategy.full_state_dict(model)

    def skip_first_batches(self, dataloader: Any, num_batches: int = 0) -> Any:
        """The rest of the epoch after ``num_batches`` batches."""
        return skip_first_batches(dataloader, num_batches)

    def free_memory(self, *objects: Any) -> list[None]:
        """Drop references to prepared objects and release cached device memory."""
        self.prepared.clear()
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return [None for _ in objects]

    clear = free_memory

    def __repr__(self) -> str:
        return f"Accelerator({self.state!r}, mixed_precision={self.mixed_precision}, strategy={self.strategy.name})"
