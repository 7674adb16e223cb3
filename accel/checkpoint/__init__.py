"""Checkpoints: ``save_state`` / ``load_state`` that are atomic, pickle-free and resume exactly.

Layout of a checkpoint directory (every file loads without ``torch.load``)::

    manifest.json                      format version, world size, strategy, counts, steps, files + sizes
    model.safetensors, model_1…        full model weights (single process, DDP)
    optimizer.safetensors, …           optimizer state: tensors + JSON skeleton in the metadata
    sharded/ + optimizer.json, …       FSDP2: every rank's shards through torch.distributed.checkpoint
    scheduler.safetensors, …           LR scheduler state
    custom_checkpoint_<i>.safetensors  objects given to register_for_checkpointing
    random_states_<rank>.safetensors   each rank's RNG states, DataLoader positions, step counters

A save is assembled in ``.tmp-<name>`` beside its destination, fsynced, renamed into place, and
then ``latest`` in the same parent directory is pointed at it (:mod:`accel.checkpoint.atomic`).
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

import importlib.util
from pathlib import Path
from typing import Any

from accel import env
from accel.checkpoint import arrival, atomic, parts, tensorfile
from accel.checkpoint import manifest as manifest_mod
from accel.checkpoint import model as model_mod
from accel.checkpoint.manifest import Manifest
from accel.exceptions import CheckpointError

__all__ = ["CheckpointError", "Checkpointer"]


class Checkpointer:
    """Saves and restores everything an :class:`~accel.Accelerator` has prepared or registered.

    Attributes:
        resumed_from: the checkpoint last loaded (by ``load_state`` or auto-resume), else None.
        auto_resume: load the latest checkpoint after an elastic restart, and save on SIGTERM/SIGUSR1.
    """

    def __init__(self, accelerator: Any) -> None:
        self.acc = accelerator
        self.resumed_from: Path | None = None
        self.auto_resume = env.get_bool(env.AUTO_RESUME) is not False
        self._auto_done = False
        self.preemption: Any = None
        self._save_model_calls = 0

    # ------------------------------------------------------------------ where
    @property
    def checkpoints_dir(self) -> Path:
        """``<project_dir>/checkpoints``."""
        return Path(self.acc.project_configuration.project_dir or ".").absolute() / "checkpoints"

    def _target(self, output_dir: str | Path | None) -> Path:
        cfg = self.acc.project_configuration
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
    def save(self, obj: Any, f: str | Path, safe_serialization: bool = False) -> None:
        """Write ``obj`` to ``f`` on the main process, atomically (safetensors for a dict of tensors)."""
        if self.acc.is_main_process:
            model_mod.save_object(obj, f, safe_serialization)

    def save_model(
        self,
        model: Any,
        save_directory: str | Path,
        max_shard_size: int | str = "10GB",
        safe_serialization: bool = True,
    ) -> None:
        """Write the full model from the main process.

        Single process and DDP: no collective, so Accelerate's ``if accelerator.is_main_process:
        accelerator.save_model(...)`` works (other ranks do nothing). FSDP: gathering the full state
        is a collective; a call that not every rank makes is a :class:`CheckpointError`, never a hang.
        """
        strategy = self.acc.strategy
        if strategy.full_state_is_collective and self.acc.num_processes > 1:
            self._save_model_calls += 1
            arrival.expect_all(f"save_model/{self._save_model_calls}", "save_model()", strategy.name)
        elif not self.acc.is_main_process:
            return
        state = strategy.full_state_dict(model)
        if self.acc.is_main_process:
            model_mod.save_full(state, Path(save_directory), max_shard_size, safe_serialization)

    def _counts(self) -> dict[str, int]:
        acc = self.acc
        return {
            "models": len(acc._models),
            "optimizers": len(acc._optimizers),
            "schedulers": len(acc._schedulers),
            "dataloaders": len(acc._dataloaders),
            "custom_objects": len(acc._custom_objects),
        }

    def _sharded(self) -> bool:
        if self.acc.strategy.name != "fsdp":
            return False
        if importlib.util.find_spec("torch.distributed.checkpoint.hf_storage") is None:
            raise CheckpointError(
                "FSDP checkpoints need torch.distributed.checkpoint's safetensors storage (torch>=2.8)"
            )
        return True

    def save_state(self, output_dir: str | Path | None = None, safe_serialization: bool = True, **_: Any) -> Path:
        """Write a checkpoint of everything prepared and registered; returns its directory."""
        acc = self.acc
        final = self._target(output_dir)
        own = parts.rank_state(acc)  # first, before anything else can touch an RNG
        if acc.is_main_process:
            atomic.fresh_staging(final)
        acc.wait_for_everyone()
        tmp = atomic.staging(final)
        parts.save_object(tmp / parts.rank_file(acc.process_index), own)
        sharded = self._sharded()
        if sharded:
            from accel.checkpoint import sharded as sharded_mod

            sharded_mod.save(acc, tmp)
        full_models = [] if sharded else [acc.strategy.full_state_dict(m) for m in acc._models]
        if acc.is_main_process:
            self._save_main(tmp, full_models, sharded)
        acc.wait_for_everyone()
        cfg = acc.project_configuration
        if acc.is_main_process:
            manifest = Manifest(
                world_size=acc.num_processes,
                strategy=acc.strategy.name,
                counts=self._counts(),
                step=acc.step,
                iteration=cfg.iteration + 1,
                sharded=sharded,
                mixed_precision=acc.mixed_precision,
                scaler=acc.precision.state_dict(),
                dataloaders=own["dataloaders"],
            )
            manifest.record_files(tmp)
            atomic.write_text(tmp / atomic.MANIFEST, manifest.to_json())
            atomic.publish(tmp, final)
            atomic.write_latest(final.parent, final.name)
            if cfg.automatic_checkpoint_naming and cfg.total_limit:
                atomic.prune(final.parent, cfg.total_limit, final)
        cfg.iteration += 1
        acc.wait_for_everyone()
        return final

    def _save_main(self, tmp: Path, full_models: list[dict[str, Any]], sharded: bool) -> None:
        acc = self.acc
        for i, state in enumerate(full_models):
            parts.save_model_file(tmp / parts.indexed("model", i), state)
        if not sharded:
            for i, opt in enumerate(acc._optimizers):
                parts.save_object(tmp / parts.indexed("optimizer", i), opt.optimizer.state_dict())
        for i, sched in enumerate(acc._schedulers):
            parts.save_object(tmp / parts.indexed("scheduler", i), sched.scheduler.state_dict())
        for i, obj in enumerate(acc._custom_objects):
            parts.save_object(tmp / f"custom_checkpoint_{i}.safetensors", obj.state_dict())

    # ------------------------------------------------------------------ load
    def load_state(self, input_dir: str | Path | None = None, strict: bool = True, **_: Any) -> Path:
        """Restore a checkpoint written by :meth:`save_state`; returns its directory."""
        acc = self.acc
        directory = self._source(input_dir)
        manifest = manifest_mod.read(directory)
        manifest.verify_files(directory)
        manifest_mod.check_counts(manifest, self._counts(), directory)
        if manifest.sharded:
            from accel.checkpoint import sharded as sharded_mod

            sharded_mod.load(acc, directory, strict)
        else:
            self._load_full(directory, strict)
        for i, sched in enumerate(acc._schedulers):
            parts.load_into(sched.scheduler, directory / parts.indexed("scheduler", i), f"scheduler {i}")
        for i, obj in enumerate(acc._custom_objects):
            parts.load_into(obj, directory / f"custom_checkpoint_{i}.safetensors", f"registered object {i}")
        if manifest.scaler and acc.mixed_precision == "fp16":
            acc.precision.load_state_dict(manifest.scaler)
        self._load_rank(directory, manifest)
        cfg = acc.project_configuration
        if cfg.automatic_checkpoint_naming and atomic.number(directory) is not None:
            cfg.iteration = max(cfg.iteration, manifest.iteration)
        self.resumed_from = directory
        return directory

    def _load_full(self, directory: Path, strict: bool) -> None:
        acc = self.acc
        for i, model in enumerate(acc._models):
            path = directory / parts.indexed("model", i)
            current = acc.strategy.unwrap(model).state_dict()
            if strict:
                header, _meta, _start = tensorfile.read_header(path)
                parts.check_model_keys(path, header, current)
            in_place = current if acc.strategy.name != "fsdp" else {}
            state, _meta = tensorfile.read(path, into=in_place)  # straight into the parameters when possible
            rest = {k: v for k, v in state.items() if in_place.get(k) is not v}
            if rest or not strict:
                acc.strategy.load_full_state_dict(model, state, strict=strict)
        if acc.strategy.name == "fsdp" and acc._optimizers:
            raise CheckpointError(
                f"{directory} holds full (unsharded) optimizer states, written with strategy "
                "ddp/single; resume it with the same strategy"
            )
        for i, opt in enumerate(acc._optimizers):
            parts.load_into(opt.optimizer, directory / parts.indexed("optimizer", i), f"optimizer {i}")

    def _load_rank(self, directory: Path, manifest: Manifest) -> None:
        acc = self.acc
        exact = manifest.world_size == acc.num_processes
        path = directory / parts.rank_file(acc.process_index if exact else 0)
        state = parts.load_object(path)
        parts.restore_rank_state(acc, state, exact)
        for i, dl in enumerate(acc._dataloaders):
            saved = state["dataloaders"][i]
            split = bool(getattr(getattr(dl, "sharded", None), "split_batches", False))
            where = f"{path} (DataLoader {i})"
            dl.load_state_dict(parts.convert_position(saved, manifest.world_size, acc.num_processes, split, where))

    # ------------------------------------------------------------------ hooks
    def after_prepare(self) -> None:
        """Called by the Accelerator after ``prepare`` / ``register_for_checkpointing``: auto-resume, signals."""
        if not self.auto_resume:
            return
        restarts = env.get_int(env.TORCHELASTIC_RESTART_COUNT) or 0
        if restarts > 0 and not self._auto_done:
            found = self.find_latest()
            if found is None:
                self._auto_done = True
            elif manifest_mod.read(found).counts == self._counts():
                self._auto_done = True
                self.load_state(found)
                self.acc.print(f"accel: restart {restarts}: resumed from {found}")
        if self.preemption is None and env.is_set(env.TORCHELASTIC_RUN_ID):
            from accel.signals import Preemption

            self.preemption = Preemption(self.acc, self)
            self.preemption.install()
