"""Asynchronous saves: stage the state into CPU memory in the caller, write and publish it in a thread.

``save_state(..., async_save=True)`` (or ``ProjectConfiguration(async_save=True)``) blocks the
training loop only while the tensors are copied into CPU buffers (:class:`Stager`); a background
thread (:class:`Writer`) then writes and fsyncs the files into the staging directory and publishes
the checkpoint with the same renames as a blocking save. So a crash or kill during the write
leaves the staging directory behind, never a partial checkpoint, and ``latest`` still names the
previous one.

* ``async_save="overlap"`` leaves the copy of the weights and optimizer state to the thread too,
  and holds the next optimizer step until it is done (:mod:`accel.checkpoint.overlap`).
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

from accel.checkpoint import atomic, codec, overlap, parts, saving, tensorfile
from accel.exceptions import CheckpointError

if TYPE_CHECKING:
    from accel.checkpoint.contents import Contents
    from accel.checkpoint.manifest import Manifest
    from accel.state import PartialState


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


def finish(staged: Staged, manifest: Manifest, final: Path, prune_to: int | None) -> None:
    """Background thread: complete the deferred copies, write the files into the staging directory, publish."""
    try:
        staged.fill()
    finally:
        if staged.ready is not None:
            staged.ready.set()  # the optimizers may step again (also when the copy failed)
    tmp = atomic.staging(final)
    for job in staged.jobs:
        tensorfile.write(tmp / job.name, job.tensors, job.metadata)
    for path in tmp.iterdir():  # the ranks' own files, written without fsync before save_state returned
        if path.name.startswith("random_states_"):
            atomic.fsync_file(path)
    saving.complete(manifest, final, prune_to)


@dataclass
class Staged:
    """Files staged for the background thread; ``deferred``: (buffer, source) copies still to make."""

    jobs: list[FileJob]
    deferred: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    ready: threading.Event | None = None  # set once the deferred copies are made

    def fill(self) -> None:
        """Make the deferred copies (in the background thread)."""
        cuda = any(src.device.type == "cuda" for _, src in self.deferred)
        for buf, src in self.deferred:
            buf.copy_(src, non_blocking=src.device.type == "cuda")
        if cuda:
            torch.cuda.synchronize()
        self.deferred = []


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

    def stage(self, jobs: list[FileJob], defer: frozenset[int] = frozenset()) -> Staged:
        """The same jobs over CPU copies of their tensors (the originals may change right after).

        Tensors whose storage is in ``defer`` get their buffer now and their copy later
        (:meth:`Staged.fill`, in the background thread; :mod:`accel.checkpoint.overlap`).
        """
        staged, used, device = [], set(), False
        deferred: list[tuple[torch.Tensor, torch.Tensor]] = []
        for job in jobs:
            copies = {}
            for name, tensor in job.tensors.items():
                key = (job.name, name)
                buf = self._buffer(key, tensor)
                source = tensor.detach()
                if defer and source.untyped_storage().data_ptr() in defer:
                    deferred.append((buf, source))
                else:
                    device = device or tensor.device.type != "cpu"
                    buf.copy_(source, non_blocking=tensor.device.type == "cuda")
                copies[name] = buf
                used.add(key)
            staged.append(FileJob(job.name, copies, dict(job.metadata)))
        if device and torch.cuda.is_available():
            torch.cuda.synchronize()
        for key in set(self._buffers) - used:
            del self._buffers[key]
        return Staged(staged, deferred)

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


class AsyncSaves:
    """A checkpointer's asynchronous saves: staging buffers, the writer thread, the step guard."""

    def __init__(self, state: PartialState) -> None:
        self.state = state
        self.stager = Stager()
        self.writer = Writer()
        self.guard = overlap.StepGuard()
        self._pending = False  # a save was started and not yet waited for

    def start(
        self, snapshot: saving.Snapshot, contents: Contents, overlapped: bool, final: Path, prune_to: int | None
    ) -> None:
        """Stage the main process's files, write this rank's own, leave the rest to the thread."""
        manifest = snapshot.manifest
        if manifest is not None:
            if overlapped:
                self.guard.attach(contents)
            staged = self.stager.stage(main_jobs(snapshot), overlap.storages(contents) if overlapped else frozenset())
            if staged.deferred:
                staged.ready = self.guard.hold()
        saving.write_rank(self.state, snapshot, final)
        if manifest is not None:
            self.writer.submit(final, lambda: finish(staged, manifest, final, prune_to))
        self._pending = True

    def wait(self) -> None:
        """Wait for the save in flight (a collective when one was started); raise its failure on every rank."""
        pending, self._pending = self._pending, False
        if not pending:
            return
        error: CheckpointError | None = None
        try:
            self.writer.wait()
        except CheckpointError as exc:
            error = exc
        if self.state.num_processes > 1:
            failed = torch.tensor([int(error is not None)], device=self.state.device)
            torch.distributed.all_reduce(failed, op=torch.distributed.ReduceOp.MAX)
            if error is None and failed.item():
                error = CheckpointError("the asynchronous save failed on the main process; it was not published")
        if error is not None:
            raise error
