"""Random number generators: seeding, synchronising across ranks, and capturing for checkpoints.

Captured states are plain tensors and JSON-able values, so checkpoints load with
``torch.load(weights_only=True)`` and without pickle.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from accel import ops


def set_seed(seed: int, device_specific: bool = False, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); ``device_specific`` adds the global rank to the seed."""
    if device_specific:
        import torch.distributed as dist

        seed += dist.get_rank() if dist.is_initialized() else 0
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)


def synchronize_rng_states(rng_types: list[str] | None = None) -> None:
    """Make every rank's torch (and CUDA) generator equal to rank 0's."""
    types = rng_types or ["torch"]
    if "torch" in types:
        state = ops.broadcast(torch.get_rng_state())
        torch.set_rng_state(state)
    if "cuda" in types and torch.cuda.is_available():
        cuda_state = ops.broadcast(torch.cuda.get_rng_state().cuda()).cpu()
        torch.cuda.set_rng_state(cuda_state)


def capture() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's RNG states as (tensors, JSON values)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{index}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy.keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss = random.getstate()
    values = {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {"kind": str(kind), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
    }
    return tensors, values


def restore(tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
    """Restore states captured by :func:`capture`."""
    torch.set_rng_state(tensors["torch"])
    cuda = sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k.split(".")[1]))
    if cuda and torch.cuda.is_available():
        for key in cuda[: torch.cuda.device_count()]:
            torch.cuda.set_rng_state(tensors[key], int(key.split(".")[1]))
    py = values["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npv = values["numpy"]
    keys = tensors["numpy.keys"].numpy().astype(np.uint32)
    np.random.set_state((npv["kind"], keys, npv["pos"], npv["has_gauss"], npv["cached"]))
