"""The option objects ``Accelerator`` takes (names and fields as in Accelerate).

Each validates itself on construction and raises :class:`~accel.exceptions.ConfigError` naming the
field, what was given and what is allowed.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from accel.exceptions import ConfigError

if TYPE_CHECKING:
    from accel.config.run import RunConfig


def _check_int(owner: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{owner}({name}={value!r}): expected an integer >= {minimum}")


@dataclass
class DataLoaderConfiguration:
    """How prepared DataLoaders are sharded.

    Attributes:
        split_batches: each rank takes a slice of every batch (the batch size is global) instead of
            whole batches of its own.
        even_batches: pad the last round by repeating samples from the start, so that every rank gets
            the same number of batches; ``gather_for_metrics`` drops the padding again.
        use_seedable_sampler: shuffled order comes from a seed and the epoch, so it is reproducible
            and resumable (always on: ``False`` is refused).
        data_seed: seed of the shuffled order (default: drawn from torch's generator once).
        non_blocking: host-to-device copies of batches are non-blocking.
        dispatch_batches: only the main process reads the data and broadcasts each rank's batch
            (:mod:`accel.dispatch`); None means False for every dataset (each rank reads its own shard).
        use_stateful_dataloader: refused (True): prepared DataLoaders are resumable already.
    """

    split_batches: bool = False
    even_batches: bool = True
    use_seedable_sampler: bool = True
    data_seed: int | None = None
    non_blocking: bool = False
    dispatch_batches: bool | None = None
    use_stateful_dataloader: bool = False

    def __post_init__(self) -> None:
        if self.use_stateful_dataloader:
            raise ConfigError(
                "DataLoaderConfiguration(use_stateful_dataloader=True) is not supported: prepared DataLoaders "
                "have state_dict()/load_state_dict() built in and save_state records their position"
            )
        if self.use_seedable_sampler is not True:
            raise ConfigError(
                "DataLoaderConfiguration(use_seedable_sampler=False) is not supported: accel's shuffled order "
                "always comes from a seed and the epoch (set data_seed to choose it); drop the argument"
            )


@dataclass
class GradientAccumulationPlugin:
    """Gradient accumulation settings.

    Attributes:
        num_steps: micro-batches per optimizer step.
        adjust_scheduler: the scheduler steps once per real optimizer step (always on: ``False`` is refused).
        sync_with_dataloader: end the window at the end of a prepared DataLoader.
        sync_each_batch: all-reduce on every micro-batch (uses more bandwidth, less memory).
    """

    num_steps: int = 1
    adjust_scheduler: bool = True
    sync_with_dataloader: bool = True
    sync_each_batch: bool = False

    def __post_init__(self) -> None:
        _check_int("GradientAccumulationPlugin", "num_steps", self.num_steps, 1)
        if self.adjust_scheduler is not True:
            raise ConfigError(
                "GradientAccumulationPlugin(adjust_scheduler=False) is not supported: a prepared scheduler always "
                "steps once per real optimizer step; drop the argument"
            )


#: What ``async_save`` takes (``ProjectConfiguration`` and ``save_state``): a blocking save, a
#: background write of a state copied in the call, or that with the weights copied in the background too.
ASYNC_SAVE_MODES: tuple[bool | str, ...] = (False, True, "overlap")


@dataclass
class ProjectConfiguration:
    """Where checkpoints and logs go.

    Attributes:
        project_dir: root directory (default: current directory).
        logging_dir: tracker output (default: ``project_dir/logs``).
        automatic_checkpoint_naming: ``save_state()`` writes ``project_dir/checkpoints/checkpoint_<n>``.
        total_limit: keep at most this many automatic checkpoints (oldest removed).
        iteration: number of the next automatic checkpoint.
        save_on_each_node: the first process of every node writes what the main process writes
            (``save``, ``save_model``, ``save_state``), for node-local disks; not with FSDP.
        async_save: the default of ``save_state(async_save=...)``: False, True (write in the
            background) or ``"overlap"`` (also copy the weights while the next step runs).
    """

    project_dir: str | Path | None = None
    logging_dir: str | Path | None = None
    automatic_checkpoint_naming: bool = False
    total_limit: int | None = None
    iteration: int = 0
    save_on_each_node: bool = False
    async_save: bool | str = False

    def __post_init__(self) -> None:
        if self.async_save not in ASYNC_SAVE_MODES:
            raise ConfigError(f"ProjectConfiguration(async_save={self.async_save!r}): use False, True or 'overlap'")
        if self.total_limit is not None:
            _check_int("ProjectConfiguration", "total_limit", self.total_limit, 1)
        _check_int("ProjectConfiguration", "iteration", self.iteration, 0)

    def set_directories(self, project_dir: str | Path | None = None) -> None:
        """Set the project directory (and the logging directory when unset)."""
        self.project_dir = project_dir
        if self.logging_dir is None and project_dir is not None:
            self.logging_dir = Path(project_dir) / "logs"


class KwargsHandler:
    """Base of the ``*Kwargs`` handlers: ``to_kwargs()`` returns the fields changed from their defaults."""

    def to_kwargs(self) -> dict[str, Any]:
        """Fields that differ from the defaults."""
        default = type(self)()
        names = [f.name for f in fields(self)]  # type: ignore[arg-type]
        return {n: getattr(self, n) for n in names if getattr(self, n) != getattr(default, n)}


@dataclass
class DistributedDataParallelKwargs(KwargsHandler):
    """Options passed to ``torch.nn.parallel.DistributedDataParallel``."""

    dim: int = 0
    broadcast_buffers: bool = True
    bucket_cap_mb: int = 25
    find_unused_parameters: bool = False
    check_reduction: bool = False
    gradient_as_bucket_view: bool = False
    static_graph: bool = False


@dataclass
class InitProcessGroupKwargs(KwargsHandler):
    """Options for creating the process group (applied when accel creates it, i.e. world size > 1).

    Attributes:
        backend: ``gloo``, ``nccl``, ... (default: ``nccl`` on GPU, ``gloo`` on CPU).
        init_method: rendezvous URL (``tcp://host:port``, ``file:///path``, ``env://``); default: the launcher's.
        timeout: collective timeout.
    """

    backend: str | None = None
    init_method: str | None = None
    timeout: datetime.timedelta | None = None


@dataclass
class GradScalerKwargs(KwargsHandler):
    """Options of the fp16 gradient scaler."""

    init_scale: float = 65536.0
    growth_factor: float = 2.0
    backoff_factor: float = 0.5
    growth_interval: int = 2000
    enabled: bool = True


@dataclass
class FullyShardedDataParallelPlugin:
    """FSDP2 (``fully_shard``) settings.

    Attributes:
        reshard_after_forward: free gathered parameters after forward (ZeRO-3 like) or keep them (ZeRO-2 like).
        auto_wrap_classes: module classes (or their names) that become their own shard units.
        min_num_params: modules with at least this many parameters become shard units (0: off).
        cpu_ram_efficient_loading: ``True`` is refused (every rank loads the model, then it is sharded).
    """

    reshard_after_forward: bool = True
    auto_wrap_classes: tuple[type[Any] | str, ...] = field(default_factory=tuple)
    min_num_params: int = 0
    cpu_ram_efficient_loading: bool = False

    def __post_init__(self) -> None:
        if self.cpu_ram_efficient_loading:
            raise ConfigError(
                "FullyShardedDataParallelPlugin(cpu_ram_efficient_loading=True) is not supported: every rank "
                "builds the whole model, then fully_shard() shards it; drop the argument"
            )


def sort_handlers(handlers: list[KwargsHandler]) -> dict[type, KwargsHandler]:
    """Index ``kwargs_handlers`` by type; ConfigError for non-handlers and duplicates."""
    found: dict[type, KwargsHandler] = {}
    for handler in handlers:
        if not isinstance(handler, KwargsHandler):
            raise ConfigError(f"kwargs_handlers: {type(handler).__name__} is not a *Kwargs handler object")
        if type(handler) in found:
            raise ConfigError(f"kwargs_handlers: {type(handler).__name__} given twice; pass one of each kind")
        found[type(handler)] = handler
    return found


H = TypeVar("H", bound=KwargsHandler)


def pick_handler(handlers: dict[type, KwargsHandler], kind: type[H]) -> H | None:
    """The handler of ``kind``, if one was given."""
    found = handlers.get(kind)
    return found if isinstance(found, kind) else None


def resolve_accumulation(
    steps: int | None, plugin: GradientAccumulationPlugin | None, run: RunConfig | None = None
) -> GradientAccumulationPlugin:
    """Explicit argument or plugin > the launcher's value (``run``) > 1."""
    if plugin is not None and steps not in (None, 1):
        raise ConfigError("pass gradient_accumulation_steps or gradient_accumulation_plugin, not both")
    if plugin is not None:
        return plugin
    launched = run.gradient_accumulation_steps if run is not None else None
    value: object = steps if steps is not None else launched or 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"gradient_accumulation_steps={value!r}: expected an integer >= 1")
    return GradientAccumulationPlugin(num_steps=value)
