"""Random number generators: seeding, synchronising across ranks, and capturing for checkpoints.

Captured states are plain tensors and JSON-able values, so checkpoints load with
``torch.load(weights_only=True)`` and without pickle.
"""

from __future__ import annotations

import enum
import random
from typing import Any

import numpy as np
import torch

from accel import ops
from accel.exceptions import ConfigError


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


class RNGType(str, enum.Enum):
    """Generators :func:`synchronize_rng_states` can align (names as in Accelerate)."""

    TORCH = "torch"
    CUDA = "cuda"
    XPU = "xpu"
    NPU = "npu"
    MLU = "mlu"
    MUSA = "musa"
    SDAA = "sdaa"
    HPU = "hpu"
    XLA = "xla"
    GENERATOR = "generator"


def check_rng_types(rng_types: list[str] | None, where: str) -> list[str]:
    """The names of ``rng_types`` (strings or :class:`RNGType`); ConfigError naming ``where`` for unknown ones."""
    names = [str(getattr(t, "value", t)) for t in rng_types or []]
    unknown = [n for n in names if n not in RNGType._value2member_map_]
    if unknown:
        choices = ", ".join(t.value for t in RNGType)
        raise ConfigError(f"{where}(rng_types={unknown}): unknown type; expected some of {choices}")
    return names


def _broadcast_state(state: torch.Tensor) -> torch.Tensor:
    """Rank 0's copy of a CPU state tensor (through the device when the backend needs it, e.g. nccl)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return state
    if dist.get_backend() == "nccl":
        return ops.broadcast(state.cuda()).cpu()  # type: ignore[no-any-return]
    return ops.broadcast(state.clone())  # type: ignore[no-any-return]


def synchronize_rng_states(rng_types: list[str] | None = None, generator: torch.Generator | None = None) -> None:
    """Make every rank's generators of ``rng_types`` equal to rank 0's (a collective: call it on every rank).

    ``"torch"`` is the CPU generator, ``"cuda"``/``"xpu"``/... the device generators (skipped where that
    device is absent), ``"generator"`` the ``generator`` passed in (e.g. a DataLoader's).
    """
    names = check_rng_types(rng_types or ["torch"], "synchronize_rng_states")
    for name in names:
        if name == "torch":
            torch.set_rng_state(_broadcast_state(torch.get_rng_state()))
        elif name == "generator":
            if generator is None:
                raise ConfigError('synchronize_rng_states(["generator"]) needs generator=<the torch.Generator>')
            generator.set_state(_broadcast_state(generator.get_state()))
        elif name == "cuda" and torch.cuda.is_available():
            torch.cuda.set_rng_state(_broadcast_state(torch.cuda.get_rng_state()))
        elif name not in ("cuda", "xla"):
            device = getattr(torch, name, None)
            if device is not None and callable(getattr(device, "is_available", None)) and device.is_available():
                device.set_rng_state(_broadcast_state(device.get_rng_state()))


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
