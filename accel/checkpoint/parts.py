"""Each piece of training state to and from its file(s) in a checkpoint directory.

Full (unsharded) models go to ``model.safetensors``, ``model_1.safetensors``…, optimizers to
``optimizer.safetensors``…, schedulers to ``scheduler.safetensors``…, registered objects to
``custom_checkpoint_<i>.safetensors``, each holding its tensors plus the rest of its state dict as a
JSON skeleton in the safetensors metadata (see :mod:`accel.checkpoint.codec`). Every rank writes
``random_states_<rank>.safetensors``: its RNG states, its DataLoader positions and step counters.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from accel import rng
from accel.checkpoint import codec, tensorfile
from accel.checkpoint.contents import Contents
from accel.exceptions import CheckpointError


def indexed(stem: str, index: int, suffix: str = ".safetensors") -> str:
    """``model.safetensors`` for index 0, ``model_1.safetensors`` after (Accelerate's names)."""
    return f"{stem}{'' if index == 0 else f'_{index}'}{suffix}"


def rank_file(rank: int) -> str:
    """Name of a rank's RNG and position file."""
    return f"random_states_{rank}.safetensors"


def save_object(path: Path, state: Any, sync: bool = True) -> None:
    """Write any state dict (tensors + JSON skeleton); fsynced unless not ``sync``."""
    tensors, metadata = codec.pack(state, path.name)
    tensorfile.write(path, tensors, metadata, sync)


def load_object(path: Path) -> Any:
    """Read a file written by :func:`save_object`."""
    tensors, metadata = tensorfile.read(path)
    return codec.unpack(tensors, metadata, str(path))


def load_into(obj: Any, path: Path, what: str) -> None:
    """``obj.load_state_dict`` from ``path``; errors name the file."""
    state = load_object(path)
    try:
        obj.load_state_dict(state)
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
        raise CheckpointError(f"{path}: cannot load it into the {what} ({type(exc).__name__}: {exc})") from None


def save_model_file(path: Path, state: dict[str, torch.Tensor]) -> None:
    """A model's full state dict as a plain safetensors file (readable by any safetensors loader)."""
    tensorfile.write(path, state, {"format": "pt"})


def check_model_keys(path: Path, found: dict[str, dict[str, Any]], expected: dict[str, torch.Tensor]) -> None:
    """CheckpointError listing missing / unexpected keys and shape differences (``found``: the file's header)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [
        f"{k}: file {tuple(found[k]['shape'])} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in found and tuple(found[k]["shape"]) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s) the model has: {', '.join(missing[:5])}")
    if unexpected:
        problems.append(f"{len(unexpected)} key(s) the model lacks: {', '.join(unexpected[:5])}")
    if shapes:
        problems.append(f"shape differs for {'; '.join(shapes[:5])}")
    if problems:
        raise CheckpointError(f"{path} does not match the model: {'; '.join(problems)}")


def rank_state(contents: Contents, rank: int) -> dict[str, Any]:
    """What each rank saves for itself: RNG states, data positions, step counters."""
    tensors, values = rng.capture()
    return {
        "rank": rank,
        "rng_tensors": tensors,
        "rng_values": values,
        "dataloaders": [dl.state_dict() for dl in contents.dataloaders],
        "accumulator": contents.counters.state_dict(),
        "optimizer_steps": [opt.steps for opt in contents.optimizers],
    }


def restore_rank_state(contents: Contents, state: dict[str, Any], exact: bool) -> None:
    """Apply :func:`rank_state` (RNG only when ``exact``: same rank of the same world size)."""
    contents.counters.load_state_dict(state.get("accumulator", {}))
    for opt, steps in zip(contents.optimizers, state.get("optimizer_steps", []), strict=False):
        opt.steps = int(steps)
    if exact:
        # set_rng_state needs tensors that own their memory (not views into the file buffer)
        rng.restore({k: v.clone() for k, v in state["rng_tensors"].items()}, state["rng_values"])
    else:
        warnings.warn(
            "the checkpoint was written by a different number of processes: random number generators are "
            "not restored, so the run continues correctly but not bit-for-bit like an uninterrupted one",
            stacklevel=4,
        )


def convert_position(state: dict[str, int], old_world: int, new_world: int, split: bool, where: str) -> dict[str, int]:
    """A DataLoader position recorded on ``old_world`` ranks, expressed for ``new_world`` ranks."""
    if old_world == new_world or split or state["position"] == 0:
        return dict(state)
    global_batches = state["position"] * old_world
    if global_batches % new_world:
        raise CheckpointError(
            f"{where}: the DataLoader stopped after {state['position']} batches on each of {old_world} ranks "
            f"({global_batches} in all), which {new_world} ranks cannot continue evenly; resume on "
            f"{old_world} ranks or from a checkpoint saved at an epoch boundary"
        )
    return {**state, "position": global_batches // new_world}
