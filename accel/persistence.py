"""The checkpoint and tracker members of ``Accelerator``, each delegating to its own module.

``save_state`` / ``load_state`` / ``save_model`` / ``save`` go to :class:`accel.checkpoint.Checkpointer`,
``init_trackers`` / ``log`` to :class:`accel.tracking.Trackers`; both are created on first use, so a
script that never checkpoints or logs never imports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from accel import env
from accel.exceptions import PrepareError

if TYPE_CHECKING:
    from accel.accumulation import Accumulator
    from accel.checkpoint import Checkpointer
    from accel.checkpoint.contents import Contents
    from accel.plugins import ProjectConfiguration
    from accel.precision import Precision
    from accel.preparation import Preparation
    from accel.signals import Preemption
    from accel.state import PartialState
    from accel.strategies import Strategy


class PersistenceMembers:
    """Checkpoints and trackers; the owner provides the attributes below."""

    state: PartialState
    strategy: Strategy
    precision: Precision
    accumulator: Accumulator
    prepared: Preparation
    project_configuration: ProjectConfiguration
    _custom_objects: list[Any]
    _checkpoints: Checkpointer | None
    _preemption: Preemption | None = None
    _trackers: Any
    _log_with: str | list[str] | None

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
    def checkpoints(self) -> Checkpointer:
        """The checkpoint manager (created on first use)."""
        if self._checkpoints is None:
            from accel.checkpoint import Checkpointer

            self._checkpoints = Checkpointer(
                self.state,
                self.strategy,
                self.precision,
                self.project_configuration,
                self._checkpoint_contents,
                auto_resume=self.state.run_config.auto_resume is not False,
            )
        return self._checkpoints

    def _checkpoint_contents(self) -> Contents:
        """The record of everything prepared and registered, for one save or load."""
        from accel.checkpoint.contents import Contents

        p = self.prepared
        return Contents(
            models=tuple(p.models),
            optimizers=tuple(p.optimizers),
            schedulers=tuple(p.schedulers),
            dataloaders=tuple(p.dataloaders),
            custom_objects=tuple(p.custom_objects),
            counters=self.accumulator,
        )

    def _after_prepare(self) -> None:
        """After ``prepare`` / ``register_for_checkpointing``: auto-resume; under the launcher, save on signals."""
        checkpoints = self.checkpoints
        checkpoints.after_prepare()
        if checkpoints.auto_resume and self._preemption is None and env.is_set(env.TORCHELASTIC_RUN_ID):
            from accel.signals import Preemption

            self._preemption = Preemption(self, checkpoints)
            self._preemption.install()

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
        """Checkpoint everything needed to resume exactly; returns the directory.

        ``async_save=True``: return once the state is staged in CPU memory; the files are written and
        the checkpoint published in the background (:meth:`wait_for_checkpoint` waits for it).
        ``async_save="overlap"``: the weights and optimizer state are also copied in the background,
        during the next forward and backward; the next ``optimizer.step()`` waits for that copy.
        """
        return str(self.checkpoints.save_state(output_dir, **kwargs))

    def wait_for_checkpoint(self) -> None:
        """Block until the asynchronous ``save_state`` in flight is published (call it on every rank)."""
        if self._checkpoints is not None:
            self.checkpoints.wait_for_checkpoint()

    def load_state(self, input_dir: str | Path | None = None, **kwargs: Any) -> str:
        """Restore a checkpoint written by :meth:`save_state`; returns the directory."""
        return str(self.checkpoints.load_state(input_dir, **kwargs))

    def register_for_checkpointing(self, *objects: Any) -> None:
        """Include objects with ``state_dict``/``load_state_dict`` in checkpoints."""
        bad = [type(o).__name__ for o in objects if not (hasattr(o, "state_dict") and hasattr(o, "load_state_dict"))]
        if bad:
            raise PrepareError(f"register_for_checkpointing(): {', '.join(bad)} lack state_dict()/load_state_dict()")
        self._custom_objects.extend(objects)
        self._after_prepare()

    @property
    def trackers(self) -> Any:
        """The tracker set (created on first use)."""
        if self._trackers is None:
            from accel.tracking import Trackers

            self._trackers = Trackers(self._log_with, self.logging_dir, self.state.is_main_process)
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
        self.state.wait_for_everyone()
