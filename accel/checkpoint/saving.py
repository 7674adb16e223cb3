"""A checkpoint save in three steps: stage, write, publish.

- :func:`stage` takes every state to be saved (this rank's RNG, data positions and counters first,
  then the strategy's model and optimizer states with model tensors on the CPU, the schedulers,
  the registered objects and the manifest), without touching the disk;
- :func:`write` puts them into the staging directory ``.tmp-<name>`` (every file fsynced);
- :func:`publish` completes the manifest, renames the directory into place, points ``latest`` at
  it and prunes old automatic checkpoints.

Each step ends with every rank at the same point; the steps only share the :class:`Snapshot`.
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
    """Everything one rank writes for one checkpoint; the main process also holds the shared parts."""

    rank: int
    own: dict[str, Any]
    states: StagedStates
    schedulers: list[Any]
    custom_objects: list[Any]
    manifest: Manifest | None


def stage(state: PartialState, fmt: StateFormat, contents: Contents, manifest: ManifestFactory) -> Snapshot:
    """Take the states to save (a collective when the format's staging is one)."""
    own = parts.rank_state(contents, state.process_index)  # first, before anything else can touch an RNG
    main = state.is_main_process
    states = fmt.stage(contents, main)
    if not main:
        return Snapshot(state.process_index, own, states, [], [], None)
    return Snapshot(
        rank=state.process_index,
        own=own,
        states=states,
        schedulers=[sched.scheduler.state_dict() for sched in contents.schedulers],
        custom_objects=[obj.state_dict() for obj in contents.custom_objects],
        manifest=manifest(contents, fmt.sharded, own["dataloaders"]),
    )


def write(state: PartialState, snapshot: Snapshot, final: Path) -> Path:
    """Write the snapshot into the staging directory of ``final`` (collective); returns that directory."""
    main = state.is_main_process
    if main:
        atomic.fresh_staging(final)
    state.wait_for_everyone()
    tmp = atomic.staging(final)
    parts.save_object(tmp / parts.rank_file(snapshot.rank), snapshot.own)
    snapshot.states.write(tmp, main)
    for i, scheduler in enumerate(snapshot.schedulers):
        parts.save_object(tmp / parts.indexed("scheduler", i), scheduler)
    for i, custom in enumerate(snapshot.custom_objects):
        parts.save_object(tmp / f"custom_checkpoint_{i}.safetensors", custom)
    state.wait_for_everyone()
    return tmp


def publish(state: PartialState, snapshot: Snapshot, final: Path, project: ProjectConfiguration) -> None:
    """Manifest, rename into place, ``latest`` pointer, pruning (main process); then count the save."""
    if snapshot.manifest is not None:
        tmp = atomic.staging(final)
        snapshot.manifest.record_files(tmp)
        atomic.write_text(tmp / atomic.MANIFEST, snapshot.manifest.to_json())
        atomic.publish(tmp, final)
        atomic.write_latest(final.parent, final.name)
        if project.automatic_checkpoint_naming and project.total_limit:
            atomic.prune(final.parent, project.total_limit, final)
    project.iteration += 1
    state.wait_for_everyone()
