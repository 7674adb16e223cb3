"""A state dict as tensors plus a JSON skeleton: no pickle, nothing ``weights_only`` could reject.

:func:`encode` walks a nested state (dicts, lists, tuples, numbers, strings, tensors, numpy values)
and returns a JSON-able skeleton in which every tensor is replaced by a reference into a flat
``{name: tensor}`` dict (stored as safetensors). Numpy scalars become Python numbers and numpy
arrays become tensors that decode back to arrays, so an optimizer holding ``lr=np.float64(1e-3)``
saves and resumes. Anything else is refused with a :class:`CheckpointError` naming where it is.

Skeleton markers (a dict whose keys are strings not starting with ``__`` is stored as itself)::

    {"__tensor__": name}   {"__ndarray__": name}   {"__tuple__": [...]}   {"__items__": [[k, v], ...]}
    {"__dtype__": "float32"}   {"__device__": "cuda:0"}   {"__bytes__": base64}
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import torch

from accel.exceptions import CheckpointError

_SKELETON_KEY = "accel.skeleton"


class Encoder:
    """Collects tensors while encoding; ``where`` names the object in error messages."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.tensors: dict[str, torch.Tensor] = {}

    def _name(self, path: str) -> str:
        name, n = path or "value", 1
        while name in self.tensors:
            name, n = f"{path}#{n}", n + 1
        return name

    def encode(self, value: Any, path: str = "") -> Any:
        """The skeleton of ``value``; its tensors are added to :attr:`tensors`."""
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, np.generic):
            return self.encode(value.item(), path)
        if isinstance(value, (int, float)):
            return int(value) if isinstance(value, int) else float(value)
        if isinstance(value, torch.Tensor):
            name = self._name(path)
            self.tensors[name] = value.detach()
            return {"__tensor__": name}
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise CheckpointError(f"{self.where}: numpy array of Python objects at {path or 'top level'!r}")
            name = self._name(path)
            self.tensors[name] = torch.from_numpy(np.ascontiguousarray(value))
            return {"__ndarray__": name}
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{path}.{i}".lstrip(".")) for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{path}.{i}".lstrip(".")) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return self._dict(value, path)
        if isinstance(value, torch.dtype):
            return {"__dtype__": str(value).removeprefix("torch.")}
        if isinstance(value, torch.device):
            return {"__device__": str(value)}
        if isinstance(value, (bytes, bytearray)):
            return {"__bytes__": base64.b64encode(bytes(value)).decode()}
        raise CheckpointError(
            f"{self.where}: cannot store a {type(value).__module__}.{type(value).__qualname__} at "
            f"{path or 'top level'!r}; state_dict() values must be tensors, numbers, strings, None, "
            "lists, tuples or dicts (convert the object to one of these in its state_dict())"
        )

    def _dict(self, value: dict[Any, Any], path: str) -> Any:
        plain = all(isinstance(k, str) and not k.startswith("__") for k in value)
        if plain:
            return {k: self.encode(v, f"{path}.{k}".lstrip(".")) for k, v in value.items()}
        return {
            "__items__": [[self.encode(k, path), self.encode(v, f"{path}.{k}".lstrip("."))] for k, v in value.items()]
        }


def decode(skeleton: Any, tensors: dict[str, torch.Tensor], where: str = "checkpoint") -> Any:
    """Rebuild the value encoded by :class:`Encoder`."""
    if isinstance(skeleton, list):
        return [decode(v, tensors, where) for v in skeleton]
    if not isinstance(skeleton, dict):
        return skeleton
    if len(skeleton) == 1:
        (marker, payload), *_ = skeleton.items()
        if marker in ("__tensor__", "__ndarray__"):
            if payload not in tensors:
                raise CheckpointError(f"{where}: tensor {payload!r} is missing from the file")
            tensor = tensors[payload]
            return tensor.numpy() if marker == "__ndarray__" else tensor
        if marker == "__tuple__":
            return tuple(decode(v, tensors, where) for v in payload)
        if marker == "__items__":
            return {_hashable(decode(k, tensors, where)): decode(v, tensors, where) for k, v in payload}
        if marker == "__dtype__":
            return getattr(torch, payload)
        if marker == "__device__":
            return torch.device(payload)
        if marker == "__bytes__":
            return base64.b64decode(payload)
    return {k: decode(v, tensors, where) for k, v in skeleton.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


def pack(value: Any, where: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and safetensors metadata holding the skeleton of ``value``."""
    encoder = Encoder(where)
    skeleton = encoder.encode(value)
    return encoder.tensors, {"format": "pt", _SKELETON_KEY: json.dumps(skeleton)}


def unpack(tensors: dict[str, torch.Tensor], metadata: dict[str, str], where: str) -> Any:
    """Inverse of :func:`pack`."""
    raw = metadata.get(_SKELETON_KEY)
    if raw is None:
        raise CheckpointError(f"{where}: no {_SKELETON_KEY!r} entry in the safetensors metadata")
    try:
        skeleton = json.loads(raw)
    except ValueError as exc:
        raise CheckpointError(f"{where}: the stored structure is not valid JSON ({exc})") from None
    return decode(skeleton, tensors, where)
