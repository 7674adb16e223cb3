"""Asynchronous saves: stage the state into CPU memory in the caller, write and publish it in a thread.

``save_state(..., async_save=True)`` (or ``ProjectConfiguration(async_save=True)``) blocks the
training loop only while the tensors are copied into CPU buffers (:class:`Stager`); a background
thread (:class:`Writer`) then writes and fsyncs the files into the staging directory and publishes
the checkpoint with the same renames as a blocking save. So a crash or kill during the write
leaves the staging directory behind, never a partial checkpoint, and ``latest`` still names the
previous one.

* One save is in flight at a time: the next ``save_state`` (or ``load_state``) first waits for it.
* The buffers stay allocated between saves (one CPU copy of the saved state, as
  ``torch.distributed.checkpoint.async_save`` keeps), so later saves copy into memory the kernel
  has already mapped; on a GPU they are pinned and filled with non-blocking copies.
* The thread is not a daemon: the interpreter waits for it before exiting, also after an exception.
* It runs no collective: every rank writes its small per-rank file before ``save_state`` returns
  (without fsync: the thread fsyncs those files before publishing), and only the main process's
  files (model, optimizer, scheduler, registered objects) go to the thread. A failure there is
  raised (on every rank) by the next ``wait_for_checkpoint()``, ``save_state()`` or ``load_state()``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from accel.checkpoint import atomic, codec, parts, saving, tensorfile
from accel.exceptions import CheckpointError

if TYPE_CHECKING:
    from accel.checkpoint.manifest import Manifest


@dataclass
class FileJob:
    """One file of a checkpoint: its name in the checkpoint directory, tensors and string metadata."""

    name: str
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)


def main_jobs(snapshot: saving.Snapshot) -> list[FileJob]:
    """The main process's files of a snapshot (models, optimizers, schedulers, registered objects)."""
    from accel.checkpoint.full import FullStates

    states = snapshot.states
    if not isinstance(states, FullStates):
        raise CheckpointError("save_state(async_save=True) needs full state dicts; sharded (FSDP) saves block")
    jobs = [FileJob(parts.indexed("model", i), dict(m), {"format": "pt"}) for i, m in enumerate(states.models)]
    objects: list[tuple[str, Any]] = [(parts.indexed("optimizer", i), o) for i, o in enumerate(states.optimizers)]
    objects += [(parts.indexed("scheduler", i), s) for i, s in enumerate(snapshot.schedulers)]
    objects += [(f"custom_checkpoint_{i}.safetensors", c) for i, c in enumerate(snapshot.custom_objects)]
    for name, state in objects:
        tensors, metadata = codec.pack(state, name)
        jobs.append(FileJob(name, tensors, metadata))
    return jobs


def finish(jobs: list[FileJob], manifest: Manifest, final: Path, prune_to: int | None) -> None:
    """Background thread: write the staged files into the staging directory, then publish it."""
    tmp = atomic.staging(final)
    for job in jobs:
        tensorfile.write(tmp / job.name, job.tensors, job.metadata)
    for path in tmp.iterdir():  # the ranks' own files, written without fsync before save_state returned
        if path.name.startswith("random_states_"):
            atomic.fsync_file(path)
    saving.complete(manifest, final, prune_to)


class Stager:
    """Copies tensors into CPU buffers that are kept, by file and name, for the next save."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, str], torch.Tensor] = {}

    def _buffer(self, key: tuple[str, str], tensor: torch.Tensor) -> torch.Tensor:
        buf = self._buffers.get(key)
        if buf is None or buf.shape != tensor.shape or buf.dtype != tensor.dtype:
            pin = tensor.device.type == "cuda"
            buf = torch.empty(tensor.shape, dtype=tensor.dtype, device="cpu", pin_memory=pin)
            self._buffers[key] = buf
        return buf

    def stage(self, jobs: list[FileJob]) -> list[FileJob]:
        """The same jobs over CPU copies of their tensors (the originals may change right after)."""
        staged, used, device = [], set(), False
        for job in jobs:
            copies = {}
            for name, tensor in job.tensors.items():
                key = (job.name, name)
                buf = self._buffer(key, tensor)
                device = device or tensor.device.type != "cpu"
                buf.copy_(tensor.detach(), non_blocking=tensor.device.type == "cuda")
                copies[name] = buf
                used.add(key)
            staged.append(FileJob(job.name, copies, dict(job.metadata)))
        if device and torch.cuda.is_available():
            torch.cuda.synchronize()
        for key in set(self._buffers) - used:
            del self._buffers[key]
        return staged

    @property
    def nbytes(self) -> int:
        """Bytes of CPU memory the buffers hold."""
        return sum(b.numel() * b.element_size() for b in self._buffers.values())


class Writer:
    """Runs one save at a time in a background thread; remembers its failure for the next wait."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._target: Path | None = None

    @property
    def in_flight(self) -> bool:
        """True while a save is being written."""
        return self._thread is not None and self._thread.is_alive()

    def submit(self, target: Path, work: Callable[[], None]) -> None:
        """Start ``work`` (writing ``target``) in the background, after the previous save is done."""
        self.wait()
        self._target = target
        self._thread = threading.Thread(target=self._run, args=(work,), name="accel-checkpoint-writer")
        self._thread.start()

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as exc:  # kept and raised in the training thread by wait()
            self._error = exc

    def wait(self) -> None:
        """Block until the save in flight is published; raise CheckpointError if it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise CheckpointError(
                f"the asynchronous save of {self._target} failed, so it was not published "
                f"({type(error).__name__}: {error}); the previous checkpoint is intact"
            ) from error
