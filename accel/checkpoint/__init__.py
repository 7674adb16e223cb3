"""Checkpoints: ``save_state`` / ``load_state`` that are atomic, pickle-free and resume exactly.

Layout of a checkpoint directory (every file loads without ``torch.load``)::

    manifest.json                      format version, world size, strategy, counts, steps, files + sizes
    model.safetensors, model_1…        full model weights (single process, DDP)
    optimizer.safetensors, …           optimizer state: tensors + JSON skeleton in the metadata
    sharded/ + optimizer.json, …       FSDP2: every rank's shards through torch.distributed.checkpoint
    scheduler.safetensors, …           LR scheduler state
    custom_checkpoint_<i>.safetensors  objects given to register_for_checkpointing
    random_states_<rank>.safetensors   each rank's RNG states, DataLoader positions, step counters

The checkpointer is given typed parts (process state, strategy, precision policy, project
configuration, and a :class:`~accel.checkpoint.contents.Contents` record of what was prepared);
the strategy's :class:`~accel.checkpoint.contents.StateFormat` stores models and optimizers.
A save is three steps (:mod:`accel.checkpoint.saving`): *stage* the states, *write* them into
``.tmp-<name>`` beside the destination (fsynced), *publish*: rename into place, then point
``latest`` in the same parent directory at it (:mod:`accel.checkpoint.atomic`).
With ``ProjectConfiguration(automatic_checkpoint_naming=True)`` checkpoints are
``<project_dir>/checkpoints/checkpoint_<n>`` and ``total_limit`` keeps the newest ones.

Auto-resume: after a worker-group restart by ``accel launch --max_restarts R``
(``TORCHELASTIC_RESTART_COUNT`` > 0), the checkpoint that ``<project_dir>/checkpoints/latest`` (or
``<project_dir>/latest``) names is loaded as soon as ``prepare()`` (or ``register_for_checkpointing``)
has produced as many models, optimizers, schedulers, DataLoaders and registered objects as it holds.
``ACCEL_AUTO_RESUME=0`` (``accel launch --no_auto_resume``) turns this off, and with it the save on
SIGTERM/SIGUSR1 (:mod:`accel.signals`). ``checkpoints.resumed_from`` tells the script it resumed;
a prepared DataLoader then continues mid-epoch by itself, and ``dl.state_dict()["epoch"]`` is the
epoch to continue from.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from accel import env
from accel.checkpoint import arrival, atomic, background, overlap, parts, saving
from accel.checkpoint import manifest as manifest_mod
from accel.checkpoint import model as model_mod
from accel.checkpoint.contents import Contents
from accel.checkpoint.manifest import Manifest
from accel.exceptions import CheckpointError

if TYPE_CHECKING:
    from accel.plugins import ProjectConfiguration
    from accel.precision import Precision
    from accel.state import PartialState
    from accel.strategies.base import Strategy

__all__ = ["CheckpointError", "Checkpointer", "Contents"]


class Checkpointer:
    """Saves and restores everything an :class:`~accel.Accelerator` has prepared or registered.

    Args:
        state: the process state (rank, world size, barriers).
        strategy: how models are spread; its ``checkpoint_format()`` stores models and optimizers.
        precision: the precision policy (its mode and fp16 scaler state are saved).
        project: where automatically named checkpoints go, and their numbering.
        contents: builds the record of what is prepared and registered right now.
        auto_resume: the run's setting (``accel launch --no_auto_resume`` turns it off).

    Attributes:
        resumed_from: the checkpoint last loaded (by ``load_state`` or auto-resume), else None.
        auto_resume: load the latest checkpoint after an elastic restart, and save on SIGTERM/SIGUSR1.
    """

    def __init__(
        self,
        state: PartialState,
        strategy: Strategy,
        precision: Precision,
        project: ProjectConfiguration,
        contents: Callable[[], Contents],
        auto_resume: bool = True,
    ) -> None:
        self.state = state
        self.strategy = strategy
        self.precision = precision
        self.project = project
        self.contents = contents
        self.resumed_from: Path | None = None
        self.auto_resume = auto_resume
        self._auto_done = False
        self._save_model_calls = 0
        self.saves = background.AsyncSaves(state)

    # ------------------------------------------------------------------ where
    @property
    def checkpoints_dir(self) -> Path:
        """``<project_dir>/checkpoints``."""
        return Path(self.project.project_dir or ".").absolute() / "checkpoints"

    def _target(self, output_dir: str | Path | None) -> Path:
        cfg = self.project
        if output_dir is not None:  # an explicit directory wins (Accelerate silently ignores it)
            return Path(output_dir).absolute()
        if cfg.automatic_checkpoint_naming:
            final = self.checkpoints_dir / f"checkpoint_{cfg.iteration}"
            if (final / atomic.MANIFEST).exists():
                raise CheckpointError(
                    f"{final} already exists; set ProjectConfiguration(iteration=...) past it, "
                    "or use another project_dir"
                )
            return final
        raise CheckpointError(
            "save_state() needs an output_dir, or ProjectConfiguration(automatic_checkpoint_naming=True)"
        )

    def find_latest(self) -> Path | None:
        """The newest complete checkpoint of this project (``latest`` pointer first), or None."""
        project = self.checkpoints_dir.parent
        for parent in (self.checkpoints_dir, project):
            pointed = atomic.read_latest(parent)
            if pointed is not None and (atomic.resolve(pointed) / atomic.MANIFEST).is_file():
                return atomic.resolve(pointed)
        found = atomic.numbered(self.checkpoints_dir)
        return found[-1] if found else None

    def _source(self, input_dir: str | Path | None) -> Path:
        if input_dir is None:
            found = self.find_latest()
            if found is None:
                raise CheckpointError(
                    f"load_state(): no checkpoint in {self.checkpoints_dir} (no 'latest' pointer and no "
                    "checkpoint_<n>); pass the checkpoint directory"
                )
            return found
        path = Path(input_dir).absolute()
        if not (path / atomic.MANIFEST).exists() and (path / atomic.LATEST).is_file():
            path = atomic.read_latest(path) or path  # the parent of checkpoints: follow its pointer
        return atomic.resolve(path)

    # ------------------------------------------------------------------ save
    def _writes(self, whole_model: bool = True) -> bool:
        """Whether this process writes: the main one, or with ``save_on_each_node`` the first of each node.

        Raises:
            CheckpointError: ``save_on_each_node`` where only the main process holds the whole model.
        """
        if not self.project.save_on_each_node:
            return self.state.is_main_process
        if whole_model and self.strategy.full_state_is_collective:
            raise CheckpointError(
                f"ProjectConfiguration(save_on_each_node=True) does not work with strategy {self.strategy.name}: "
                "the whole model is only gathered on the main process; save to storage every node sees and "
                "leave save_on_each_node off"
            )
        return self.state.is_local_main_process

    def save(self, obj: Any, f: str | Path, safe_serialization: bool = False) -> None:
        """Write ``obj`` to ``f`` atomically, on the main process (each node's first with ``save_on_each_node``)."""
        if self._writes(whole_model=False):
            model_mod.save_object(obj, f, safe_serialization)

    def save_model(
        self,
        model: torch.nn.Module,
        save_directory: str | Path,
        max_shard_size: int | str = "10GB",
        safe_serialization: bool = True,
    ) -> None:
        """Write the full model from the main process.

        Single process and DDP: no collective, so Accelerate's ``if accelerator.is_main_process:
        accelerator.save_model(...)`` works (other ranks do nothing). FSDP: gathering the full state
        is a collective; a call that not every rank makes is a :class:`CheckpointError`, never a hang.
        """
        strategy, main = self.strategy, self._writes()
        if strategy.full_state_is_collective and self.state.num_processes > 1:
            self._save_model_calls += 1
            arrival.expect_all(f"save_model/{self._save_model_calls}", "save_model()", strategy.name)
        elif not main:
            return
        state = strategy.full_state_dict(model)
        if main:
            model_mod.save_full(state, Path(save_directory), max_shard_size, safe_serialization)

    def save_state(
        self,
        output_dir: str | Path | None = None,
        safe_serialization: bool = True,
        async_save: bool | str | None = None,
        **_: Any,
    ) -> Path:
        """Write a checkpoint of everything prepared and registered; returns its directory.

        With ``async_save`` (default: ``ProjectConfiguration.async_save``) the call returns once the
        state is copied to CPU memory and every rank's own file is written; the main process writes
        the rest and publishes the checkpoint in the background (:mod:`accel.checkpoint.background`).
        ``"overlap"`` also leaves the copy of the weights and optimizer state to the background,
        and the next optimizer step waits for it (:mod:`accel.checkpoint.overlap`).
        """
        if safe_serialization is not True:
            raise CheckpointError(
                "save_state(safe_serialization=False) is not supported: checkpoints are always safetensors + JSON "
                "(they load without pickle); drop the argument"
            )
        self.saves.wait()  # one save in flight at a time
        final = self._target(output_dir)
        fmt = self.strategy.checkpoint_format()
        asynchronous = self.project.async_save if async_save is None else async_save
        overlap.check_mode(asynchronous, "save_state(async_save=...)")
        if asynchronous and fmt.sharded:
            raise CheckpointError(
                f"save_state(async_save=True) is not supported with strategy {self.strategy.name} (sharded "
                "checkpoints); call save_state() without async_save"
            )
        contents = self.contents()
        snapshot = saving.stage(self.state, fmt, contents, self._manifest, self._writes())
        if not asynchronous:
            saving.write(self.state, snapshot, final)
            saving.publish(self.state, snapshot, final, self.project)
            return final
        self.saves.start(snapshot, contents, asynchronous == "overlap", final, saving.prune_limit(self.project))
        self.project.iteration += 1
        return final

    def wait_for_checkpoint(self) -> None:
        """Wait until the asynchronous save in flight is published (on every rank: a collective).

        A failure of the background write raises :class:`CheckpointError` on every rank.
        """
        self.saves.wait()

    def _manifest(self, contents: Contents, sharded: bool, dataloaders: list[dict[str, int]]) -> Manifest:
        return Manifest(
            world_size=self.state.num_processes,
            strategy=self.strategy.name,
            counts=contents.counts(),
            step=contents.counters.step,
            iteration=self.project.iteration + 1,
            sharded=sharded,
            mixed_precision=self.precision.mode,
            scaler=self.precision.state_dict(),
            dataloaders=dataloaders,
        )

    # ------------------------------------------------------------------ load
    def load_state(self, input_dir: str | Path | None = None, strict: bool = True, **_: Any) -> Path:
        """Restore a checkpoint written by :meth:`save_state`; returns its directory."""
        self.saves.wait()
        contents = self.contents()
        directory = self._source(input_dir)
        manifest = manifest_mod.read(directory)
        manifest.verify_files(directory)
        manifest_mod.check_counts(manifest, contents.counts(), directory)
        self.strategy.checkpoint_format().load(contents, directory, manifest.sharded, strict)
        for i, sched in enumerate(contents.schedulers):
            parts.load_into(sched.scheduler, directory / parts.indexed("scheduler", i), f"scheduler {i}")
        for i, obj in enumerate(contents.custom_objects):
            parts.load_into(obj, directory / f"custom_checkpoint_{i}.safetensors", f"registered object {i}")
        if manifest.scaler and self.precision.mode == "fp16":
            self.precision.load_state_dict(manifest.scaler)
        self._load_rank(contents, directory, manifest)
        cfg = self.project
        if cfg.automatic_checkpoint_naming and atomic.number(directory) is not None:
            cfg.iteration = max(cfg.iteration, manifest.iteration)
        self.resumed_from = directory
        return directory

    def _load_rank(self, contents: Contents, directory: Path, manifest: Manifest) -> None:
        world, rank = self.state.num_processes, self.state.process_index
        exact = manifest.world_size == world
        path = directory / parts.rank_file(rank if exact else 0)
        state = parts.load_object(path)
        parts.restore_rank_state(contents, state, exact)
        for i, dl in enumerate(contents.dataloaders):
            saved = state["dataloaders"][i]
            split = bool(getattr(getattr(dl, "sharded", None), "split_batches", False))
            where = f"{path} (DataLoader {i})"
            dl.load_state_dict(parts.convert_position(saved, manifest.world_size, world, split, where))

    # ------------------------------------------------------------------ hooks
    def after_prepare(self) -> None:
        """Called by the Accelerator after ``prepare`` / ``register_for_checkpointing``: auto-resume."""
        if not self.auto_resume:
            return
        restarts = env.get_int(env.TORCHELASTIC_RESTART_COUNT) or 0
        if restarts > 0 and not self._auto_done:
            found = self.find_latest()
            if found is None:
                self._auto_done = True
            elif manifest_mod.read(found).counts == self.contents().counts():
                self._auto_done = True
                self.load_state(found)
                self.state.print(f"accel: restart {restarts}: resumed from {found}")
