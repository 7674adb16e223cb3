"""Exporting weights: ``Accelerator.save`` and ``Accelerator.save_model``.

``save_model`` gathers the full model (FSDP shards included) and the main process writes
``model.safetensors``, or ``model-00001-of-0000N.safetensors`` files plus
``model.safetensors.index.json`` above ``max_shard_size`` (the layout Hugging Face loaders read).
Every file is written beside its destination and renamed into place.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from accel.checkpoint import atomic, tensorfile
from accel.exceptions import CheckpointError

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(value: int | str) -> int:
    """``"10GB"`` → bytes (decimal units; KiB/MiB/GiB binary)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    unit = found.group(2).upper() if found else None
    if found is None or unit not in _UNITS:
        raise CheckpointError(f"max_shard_size={value!r}: expected bytes or a size such as '500MB' or '10GB'")
    return int(float(found.group(1)) * _UNITS[unit])


def _replace(path: Path, write: Any) -> None:
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    atomic.fsync_dir(path.parent)


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """A safetensors file replaced atomically."""
    _replace(path, lambda tmp: tensorfile.write(tmp, tensors, {"format": "pt"}))


def write_torch(path: Path, obj: Any) -> None:
    """``torch.save`` replaced atomically (for objects the caller chose to pickle)."""

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())

    _replace(path, save)


def save_object(obj: Any, f: str | Path, safe_serialization: bool) -> None:
    """Main-process body of ``Accelerator.save``."""
    path = Path(f)
    if safe_serialization:
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise CheckpointError(f"save({path}, safe_serialization=True) needs a dict of tensors")
        write_safetensors(path, obj)
    else:
        write_torch(path, obj)


def shard(state: dict[str, torch.Tensor], limit: int) -> list[dict[str, torch.Tensor]]:
    """Split a state dict into pieces of at most ``limit`` bytes (a larger tensor gets its own piece)."""
    pieces: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if pieces[-1] and size + nbytes > limit:
            pieces.append({})
            size = 0
        pieces[-1][key] = tensor
        size += nbytes
    return pieces


def save_full(state: dict[str, torch.Tensor], directory: Path, max_shard_size: int | str, safe: bool) -> None:
    """Write a full state dict as one file or as shards with an index."""
    limit = parse_size(max_shard_size)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in state.items()}
    stem, suffix = ("model", ".safetensors") if safe else ("pytorch_model", ".bin")
    pieces = shard(state, limit)
    if len(pieces) == 1:
        names = [f"{stem}{suffix}"]
    else:
        names = [f"{stem}-{i + 1:05d}-of-{len(pieces):05d}{suffix}" for i in range(len(pieces))]
    for name, piece in zip(names, pieces, strict=True):
        if safe:
            write_safetensors(directory / name, piece)
        else:
            write_torch(directory / name, piece)
    if len(pieces) > 1:
        index = {
            "metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
            "weight_map": {key: name for name, piece in zip(names, pieces, strict=True) for key in piece},
        }
        atomic.write_text(directory / f"{stem}{suffix}.index.json", json.dumps(index, indent=2) + "\n")
