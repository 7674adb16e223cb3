"""A checkpoint save in three steps: stage, write, publish.

- :func:`stage` takes every state to be saved (this rank's RNG, data positions and counters first,
  then the strategy's model and optimizer states with model tensors on the CPU, the schedulers,
  the registered objects and the manifest), without touching the disk;
- :func:`write` puts them into the staging directory ``.tmp-<name>`` (every file fsynced);
- :func:`publish` completes the manifest, renames the directory into place, points ``latest`` at
  it and prunes old automatic checkpoints.

Each step ends with every rank at the same point; the steps only share the :class:`Snapshot`.
An asynchronous save (:mod:`accel.checkpoint.background`) runs :func:`write_rank` instead of
:func:`write`, and the main process's files and :func:`complete` in a background thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accel.checkpoint import atomic, parts
from accel.checkpoint.contents import Contents, StagedStates, StateFormat
from accel.checkpoint.manifest import Manifest

if TYPE_CHECKING:
    from accel.plugins import ProjectConfiguration
    from accel.state import PartialState

#: Builds the manifest from the contents, whether the format is sharded, and the data positions.
ManifestFactory = Callable[[Contents, bool, list[dict[str, int]]], Manifest]


@dataclass(frozen=True)
class Snapshot:
    """Everything one rank writes for one checkpoint; a writer (the main process) also holds the shared parts."""

    rank: int
    writer: bool
    own: dict[str, Any]
    states: StagedStates
    schedulers: list[Any]
    custom_objects: list[Any]
    manifest: Manifest | None


def stage(
    state: PartialState, fmt: StateFormat, contents: Contents, manifest: ManifestFactory, writer: bool
) -> Snapshot:
    """Take the states to save (a collective when the format's staging is one).

    ``writer``: this process writes the shared files (the main process; with ``save_on_each_node`` the
    first process of every node).
    """
    own = parts.rank_state(contents, state.process_index)  # first, before anything else can touch an RNG
    states = fmt.stage(contents, writer)
    if not writer:
        return Snapshot(state.process_index, False, own, states, [], [], None)
    return Snapshot(
        rank=state.process_index,
        writer=True,
        own=own,
        states=states,
        schedulers=[sched.scheduler.state_dict() for sched in contents.schedulers],
        custom_objects=[obj.state_dict() for obj in contents.custom_objects],
        manifest=manifest(contents, fmt.sharded, own["dataloaders"]),
    )


def write(state: PartialState, snapshot: Snapshot, final: Path) -> Path:
    """Write the snapshot into the staging directory of ``final`` (collective); returns that directory."""
    if snapshot.writer:
        atomic.fresh_staging(final)
    state.wait_for_everyone()
    tmp = atomic.staging(final)
    parts.save_object(tmp / parts.rank_file(snapshot.rank), snapshot.own)
    snapshot.states.write(tmp, snapshot.writer)
    for i, scheduler in enumerate(snapshot.schedulers):
        parts.save_object(tmp / parts.indexed("scheduler", i), scheduler)
    for i, custom in enumerate(snapshot.custom_objects):
        parts.save_object(tmp / f"custom_checkpoint_{i}.safetensors", custom)
    state.wait_for_everyone()
    return tmp


def write_rank(state: PartialState, snapshot: Snapshot, final: Path) -> Path:
    """Only this rank's own file into a fresh staging directory (collective), for an asynchronous save.

    The file is not fsynced here (an fsync can wait seconds behind other writers on a busy disk): the
    main process's background thread fsyncs every staged file before it publishes.
    """
    if state.is_main_process:
        atomic.fresh_staging(final)
    state.wait_for_everyone()
    tmp = atomic.staging(final)
    parts.save_object(tmp / parts.rank_file(snapshot.rank), snapshot.own, sync=False)
    state.wait_for_everyone()
    return tmp


def complete(manifest: Manifest, final: Path, prune_to: int | None) -> None:
    """Main process: finish the manifest, rename into place, point ``latest`` at it, prune (no collective)."""
    tmp = atomic.staging(final)
    manifest.record_files(tmp)
    atomic.write_text(tmp / atomic.MANIFEST, manifest.to_json())
    atomic.publish(tmp, final)
    atomic.write_latest(final.parent, final.name)
    if prune_to:
        atomic.prune(final.parent, prune_to, final)


def prune_limit(project: ProjectConfiguration) -> int | None:
    """How many automatic checkpoints to keep after a save (None: keep all)."""
    return project.total_limit if project.automatic_checkpoint_naming else None


def publish(state: PartialState, snapshot: Snapshot, final: Path, project: ProjectConfiguration) -> None:
    """Manifest, rename into place, ``latest`` pointer, pruning (writers); then count the save."""
    if snapshot.manifest is not None:
        complete(snapshot.manifest, final, prune_limit(project))
    project.iteration += 1
    state.wait_for_everyone()
