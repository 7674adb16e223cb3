"""``Accelerator``: the facade a training script touches.

It resolves the settings (explicit argument > ``ACCEL_*`` variable set by ``accel launch`` > default),
builds the process state, the strategy and the precision policy, and delegates: data sharding to
:mod:`accel.data`, collectives to :mod:`accel.ops`, checkpoints to :mod:`accel.checkpoint`,
trackers to :mod:`accel.tracking`.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

from accel import env, ops
from accel import precision as precision_mod
from accel import strategies as strategies_mod
from accel.accumulation import Accumulator
from accel.data import GradientState, PreparedDataLoader, shard, skip_first_batches
from accel.exceptions import ConfigError, PrepareError
from accel.plugins import (
    DataLoaderConfiguration,
    DistributedDataParallelKwargs,
    FullyShardedDataParallelPlugin,
    GradientAccumulationPlugin,
    GradScalerKwargs,
    InitProcessGroupKwargs,
    KwargsHandler,
    ProjectConfiguration,
)
from accel.state import DistributedType, PartialState
from accel.wrappers import AcceleratedOptimizer, AcceleratedScheduler

T = TypeVar("T")
_NO_CONTEXT = contextlib.nullcontext()
_UNSUPPORTED = ("deepspeed_plugin", "megatron_lm_plugin", "torch_tp_plugin", "dynamo_plugin", "split_batches")


class Accelerator:
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
        rng_types: kept for compatibility: every rank's RNG is checkpointed, order comes from seeds.
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
        handlers = _handlers(kwargs_handlers or [])
        pg = _pick(handlers, InitProcessGroupKwargs) or InitProcessGroupKwargs()
        self.state = PartialState(cpu=cpu, backend=pg.backend, timeout=pg.timeout)
        self.device_placement = device_placement
        mode = mixed_precision if mixed_precision is not None else env.get(env.MIXED_PRECISION)
        self.precision = precision_mod.create(
            precision_mod.check_mode(mode), self.device, _pick(handlers, GradScalerKwargs)
        )
        strategy = "fsdp" if fsdp_plugin is not None else (env.get(env.STRATEGY) or "ddp").strip().lower()
        self.strategy = strategies_mod.create(
            strategy, self.state, _pick(handlers, DistributedDataParallelKwargs), fsdp_plugin
        )
        self.dataloader_config = dataloader_config or DataLoaderConfiguration()
        self.project_configuration = project_config or ProjectConfiguration()
        if project_dir is not None or self.project_configuration.project_dir is None:
            self.project_configuration.set_directories(project_dir or env.get(env.PROJECT_DIR) or ".")
        self.gradient_state = GradientState()
        self.accumulator = Accumulator(
            _accumulation(gradient_accumulation_steps, gradient_accumulation_plugin), self.gradient_state
        )
        self.step_scheduler_with_optimizer = step_scheduler_with_optimizer
        self._models: list[torch.nn.Module] = []
        self._optimizers: list[AcceleratedOptimizer] = []
        self._schedulers: list[AcceleratedScheduler] = []
        self._dataloaders: list[PreparedDataLoader] = []
        self._custom_objects: list[Any] = []
        self._hooks: dict[int, list[Any]] = {}
        self._trackers: Any = None
        self._log_with = log_with
        self._checkpoints: Any = None

    # ------------------------------------------------------------------ properties
    @property
    def device(self) -> torch.device:
        """Device of this process."""
        return self.state.device

    @property
    def distributed_type(self) -> DistributedType:
        """NO, MULTI_CPU, MULTI_GPU or FSDP."""
        return self.strategy.distributed_type

    @property
    def num_processes(self) -> int:
        """World size."""
        return self.state.num_processes

    @property
    def process_index(self) -> int:
        """Global rank."""
        return self.state.process_index

    @property
    def local_process_index(self) -> int:
        """Rank on this node."""
        return self.state.local_process_index

    @property
    def is_main_process(self) -> bool:
        """True on global rank 0."""
        return self.state.is_main_process

    @property
    def is_local_main_process(self) -> bool:
        """True on local rank 0."""
        return self.state.is_local_main_process

    @property
    def is_last_process(self) -> bool:
        """True on the highest rank."""
        return self.state.is_last_process

    @property
    def use_distributed(self) -> bool:
        """True when more than one process cooperates."""
        return self.state.use_distributed

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
        self.accumulator.num_steps = _accumulation(value, None).num_steps

    @property
    def step(self) -> int:
        """Micro-steps taken inside ``accumulate()``."""
        return self.accumulator.step

    @step.setter
    def step(self, value: int) -> None:
        self.accumulator.step = value

    @property
    def project_dir(self) -> str:
        """Project directory."""
        return str(self.project_configuration.project_dir)

    @property
    def logging_dir(self) -> str:
        """Tracker directory."""
        return str(self.project_configuration.logging_dir)

    @property
    def save_iteration(self) -> int:
        """Number of the next automatically named checkpoint."""
        return self.project_configuration.iteration

    @property
    def optimizer_step_was_skipped(self) -> bool:
        """True when the fp16 scaler skipped the last optimizer step."""
        return any(opt.step_was_skipped for opt in self._optimizers)

    # ------------------------------------------------------------------ prepare
    def prepare(self, *args: Any, device_placement: list[bool] | None = None) -> Any:
        """Prepare models, optimizers, schedulers and DataLoaders (in any order); return them in order."""
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
                result[i] = self.prepare_model(obj, device_placement=placement[i])
                after = self.strategy.unwrap(result[i]).parameters()
                params.update({id(old): new for old, new in zip(before, after, strict=False)})
        for i, obj in enumerate(args):
            if isinstance(obj, torch.optim.Optimizer):
                result[i] = self._prepare_optimizer(obj, params)
        for i, obj in enumerate(args):
            if _is_scheduler(obj) and not isinstance(obj, AcceleratedScheduler):
                result[i] = self.prepare_scheduler(obj)
            elif isinstance(obj, torch.utils.data.DataLoader):
                result[i] = self.prepare_data_loader(obj, device_placement=placement[i])
        return result[0] if len(result) == 1 else tuple(result)

    def prepare_model(
        self, model: torch.nn.Module, device_placement: bool | None = None, evaluation_mode: bool = False
    ) -> torch.nn.Module:
        """Move a model to the device and wrap it for the strategy (idempotent)."""
        if any(model is m for m in self._models):
            return model
        placement = self.device_placement if device_placement is None else device_placement
        inner = self.strategy.unwrap(model)
        if id(inner) not in self._hooks:
            self._hooks[id(inner)] = self.precision.attach(inner)
        prepared = model.to(self.device) if evaluation_mode and placement else model
        if not evaluation_mode:
            prepared = self.strategy.setup_model(model, placement)
        self._models.append(prepared)
        return prepared

    def _prepare_optimizer(
        self, optimizer: torch.optim.Optimizer, params: dict[int, torch.Tensor]
    ) -> AcceleratedOptimizer:
        if isinstance(optimizer, AcceleratedOptimizer):
            return optimizer
        known = params or {id(p): p for m in self._models for p in self.strategy.unwrap(m).parameters()}
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
        self._optimizers.append(wrapped)
        return wrapped

    def prepare_optimizer(
        self, optimizer: torch.optim.Optimizer, device_placement: bool | None = None
    ) -> AcceleratedOptimizer:
        """Wrap an optimizer whose parameters belong to prepared models."""
        return self._prepare_optimizer(optimizer, {})

    def prepare_scheduler(self, scheduler: Any) -> AcceleratedScheduler:
        """Wrap an LR scheduler so that it steps once per real optimizer step."""
        if isinstance(scheduler, AcceleratedScheduler):
            return scheduler
        inner = getattr(scheduler, "optimizer", None)
        owners = [o for o in self._optimizers if o.optimizer is inner or o is inner] or list(self._optimizers)
        wrapped = AcceleratedScheduler(scheduler, owners, self.accumulator, self.step_scheduler_with_optimizer)
        self._schedulers.append(wrapped)
        return wrapped

    def prepare_data_loader(self, data_loader: Any, device_placement: bool | None = None) -> PreparedDataLoader:
        """Shard a DataLoader over the processes (idempotent)."""
        if isinstance(data_loader, PreparedDataLoader):
            return data_loader
        cfg = self.dataloader_config
        placement = self.device_placement if device_placement is None else device_placement
        seed = cfg.data_seed if cfg.data_seed is not None else _shared_seed(self.device)
        prepared = shard(
            data_loader,
            num_replicas=self.num_processes,
            rank=self.process_index,
            device=self.device if placement else torch.device("cpu"),
            state=self.gradient_state,
            seed=seed,
            split_batches=cfg.split_batches,
            even_batches=cfg.even_batches,
            non_blocking=cfg.non_blocking,
        )
        self._dataloaders.append(prepared)
        return prepared

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
            for handle in self._hooks.pop(id(inner), []):
                handle.remove()
        return inner

    # ------------------------------------------------------------------ collectives
    def gather(self, tensor: Any) -> Any:
        """Concatenate tensors from every rank along dim 0."""
        return ops.gather(tensor)

    def gather_for_metrics(self, input_data: Any, use_gather_object: bool = False) -> Any:
        """Gather, dropping the samples duplicated to even out the last batch."""
        gathered = (
            ops.gather_object(input_data)
            if use_gather_object or not _has_tensor(input_data)
            else ops.gather(input_data)
        )
        padding = self.gradient_state.padding
        if not padding:
            return gathered
        if isinstance(gathered, list):
            return gathered[: len(gathered) - padding]
        return ops.apply(lambda t: t[: t.shape[0] - padding], gathered)

    def reduce(self, tensor: Any, reduction: str = "sum", scale: float = 1.0) -> Any:
        """All-reduce by sum or mean."""
        return ops.reduce(tensor, reduction, scale)

    def pad_across_processes(self, tensor: Any, dim: int = 0, pad_index: int = 0, pad_first: bool = False) -> Any:
        """Pad to the largest size on any rank."""
        return ops.pad_across_processes(tensor, dim, pad_index, pad_first)

    def wait_for_everyone(self) -> None:
        """Barrier."""
        self.state.wait_for_everyone()

    def main_process_first(self) -> contextlib.AbstractContextManager[None]:
        """Run the block on the main process first."""
        return self.state.main_process_first()

    def local_main_process_first(self) -> contextlib.AbstractContextManager[None]:
        """Run the block on each node's main process first."""
        return self.state.local_main_process_first()

    def split_between_processes(
        self, inputs: Any, apply_padding: bool = False
    ) -> contextlib.AbstractContextManager[Any]:
        """This rank's share of ``inputs``."""
        return self.state.split_between_processes(inputs, apply_padding)

    def print(self, *args: Any, **kwargs: Any) -> None:
        """Print on the main process only."""
        self.state.print(*args, **kwargs)

    def on_main_process(self, function: Callable[..., T]) -> Callable[..., T | None]:
        """Decorator: main process only."""
        return self.state.on_main_process(function)

    def on_local_main_process(self, function: Callable[..., T]) -> Callable[..., T | None]:
        """Decorator: local main process only."""
        return self.state.on_local_main_process(function)

    def on_last_process(self, function: Callable[..., T]) -> Callable[..., T | None]:
        """Decorator: last process only."""
        return self.state.on_last_process(function)

    def on_process(self, function: Callable[..., T] | None = None, process_index: int = 0) -> Any:
        """Decorator: the given rank only."""
        return self.state.on_process(function, process_index)

    def skip_first_batches(self, dataloader: Any, num_batches: int = 0) -> Any:
        """The rest of the epoch after ``num_batches`` batches."""
        return skip_first_batches(dataloader, num_batches)

    # ------------------------------------------------------------------ checkpoints and trackers
    @property
    def checkpoints(self) -> Any:
        """The checkpoint manager (created on first use)."""
        if self._checkpoints is None:
            from accel.checkpoint import Checkpointer

            self._checkpoints = Checkpointer(self)
        return self._checkpoints

    def save(self, obj: Any, f: str | Path, safe_serialization: bool = False) -> None:
        """Save an object on the main process, atomically."""
        self.checkpoints.save(obj, f, safe_serialization)

    def save_model(
        self,
        model: torch.nn.Module,
        save_directory: str | Path,
        max_shard_size: int | str = "10GB",
        safe_serialization: bool = True,
    ) -> None:
        """Write the full model as safetensors (sharded above ``max_shard_size``)."""
        self.checkpoints.save_model(model, save_directory, max_shard_size, safe_serialization)

    def save_state(self, output_dir: str | Path | None = None, **kwargs: Any) -> str:
        """Checkpoint everything needed to resume exactly; returns the directory."""
        return str(self.checkpoints.save_state(output_dir, **kwargs))

    def load_state(self, input_dir: str | Path | None = None, **kwargs: Any) -> str:
        """Restore a checkpoint written by :meth:`save_state`; returns the directory."""
        return str(self.checkpoints.load_state(input_dir, **kwargs))

    def register_for_checkpointing(self, *objects: Any) -> None:
        """Include objects with ``state_dict``/``load_state_dict`` in checkpoints."""
        bad = [type(o).__name__ for o in objects if not (hasattr(o, "state_dict") and hasattr(o, "load_state_dict"))]
        if bad:
            raise PrepareError(f"register_for_checkpointing(): {', '.join(bad)} lack state_dict()/load_state_dict()")
        self._custom_objects.extend(objects)

    @property
    def trackers(self) -> Any:
        """The tracker set (created on first use)."""
        if self._trackers is None:
            from accel.tracking import Trackers

            self._trackers = Trackers(self._log_with, self.logging_dir, self.is_main_process)
        return self._trackers

    def init_trackers(
        self, project_name: str, config: dict[str, Any] | None = None, init_kwargs: dict[str, Any] | None = None
    ) -> None:
        """Start the trackers named in ``log_with`` (main process only)."""
        self.trackers.start(project_name, config, init_kwargs or {})

    def get_tracker(self, name: str, unwrap: bool = False) -> Any:
        """A started tracker by name."""
        return self.trackers.get(name, unwrap)

    def log(self, values: dict[str, Any], step: int | None = None, log_kwargs: dict[str, Any] | None = None) -> None:
        """Log scalars to every tracker (main process only)."""
        self.trackers.log(values, step)

    def end_training(self) -> None:
        """Close trackers and wait for every process."""
        if self._trackers is not None:
            self._trackers.finish()
        self.wait_for_everyone()

    def free_memory(self, *objects: Any) -> list[None]:
        """Drop references to prepared objects and release cached device memory."""
        self._models.clear()
        self._optimizers.clear()
        self._schedulers.clear()
        self._dataloaders.clear()
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return [None for _ in objects]

    clear = free_memory

    def __repr__(self) -> str:
        return f"Accelerator({self.state!r}, mixed_precision={self.mixed_precision}, strategy={self.strategy.name})"


def _handlers(handlers: list[KwargsHandler]) -> dict[type, KwargsHandler]:
    found: dict[type, KwargsHandler] = {}
    for handler in handlers:
        if not isinstance(handler, KwargsHandler):
            raise ConfigError(f"kwargs_handlers: {type(handler).__name__} is not a *Kwargs handler object")
        if type(handler) in found:
            raise ConfigError(f"kwargs_handlers: {type(handler).__name__} given twice; pass one of each kind")
        found[type(handler)] = handler
    return found


H = TypeVar("H", bound=KwargsHandler)


def _pick(handlers: dict[type, KwargsHandler], kind: type[H]) -> H | None:
    found = handlers.get(kind)
    return found if isinstance(found, kind) else None


def _accumulation(steps: int | None, plugin: GradientAccumulationPlugin | None) -> GradientAccumulationPlugin:
    if plugin is not None and steps not in (None, 1):
        raise ConfigError("pass gradient_accumulation_steps or gradient_accumulation_plugin, not both")
    if plugin is not None:
        return plugin
    value: object = steps if steps is not None else env.get_int(env.GRADIENT_ACCUMULATION_STEPS) or 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"gradient_accumulation_steps={value!r}: expected an integer >= 1")
    return GradientAccumulationPlugin(num_steps=value)


def _is_scheduler(obj: Any) -> bool:
    return isinstance(obj, (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau))


def _has_tensor(data: Any) -> bool:
    found = False

    def mark(t: torch.Tensor) -> torch.Tensor:
        nonlocal found
        found = True
        return t

    ops.apply(mark, data)
    return found


def _shared_seed(device: torch.device) -> int:
    """A data-order seed drawn from torch's generator on rank 0 (so ``set_seed`` controls it), same on all ranks."""
    seed = torch.randint(0, 2**31 - 1, (1,), dtype=torch.int64)
    return int(ops.broadcast(seed.to(device) if device.type != "cpu" else seed).item())
