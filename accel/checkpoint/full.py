"""Models and optimizers as full state dicts: the main process writes one file per object.

Models go to ``model.safetensors``, ``model_1.safetensors``…, optimizers to
``optimizer.safetensors``… (see :mod:`accel.checkpoint.parts`). Loading reads model tensors straight
into the parameters when the strategy allows it (``in_place``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from accel.checkpoint import parts, tensorfile
from accel.checkpoint.contents import Contents, StagedStates
from accel.exceptions import CheckpointError


class WholeModels(Protocol):
    """What a strategy provides for full state dicts."""

    full_state_is_collective: bool

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module: ...

    def full_state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]: ...

    def load_full_state_dict(
        self, model: torch.nn.Module, state: dict[str, torch.Tensor], strict: bool = True
    ) -> Any: ...


@dataclass(frozen=True)
class FullStates(StagedStates):
    """Full model state dicts (CPU) and optimizer state dicts, held by the main process."""

    models: list[dict[str, torch.Tensor]]
    optimizers: list[dict[str, Any]]

    def write(self, directory: Path, main: bool) -> None:
        if not main:
            return
        for i, state in enumerate(self.models):
            parts.save_model_file(directory / parts.indexed("model", i), state)
        for i, opt_state in enumerate(self.optimizers):
            parts.save_object(directory / parts.indexed("optimizer", i), opt_state)


def stage(strategy: WholeModels, contents: Contents, main: bool) -> FullStates:
    """Whole-model state dicts on the CPU and optimizer state dicts, for the main process to write."""
    if not (main or strategy.full_state_is_collective):
        return FullStates([], [])
    models = [strategy.full_state_dict(m) for m in contents.models]
    optimizers = [opt.optimizer.state_dict() for opt in contents.optimizers] if main else []
    return FullStates(models, optimizers)


def load(
    strategy: WholeModels, contents: Contents, directory: Path, strict: bool, in_place: bool, optimizers: bool
) -> None:
    """Fill the models (and, when ``optimizers``, the optimizers) from full state dict files."""
    for i, model in enumerate(contents.models):
        _load_model(strategy, model, directory / parts.indexed("model", i), strict, in_place)
    if contents.optimizers and not optimizers:
        raise CheckpointError(
            f"{directory} holds full (unsharded) optimizer states, written with strategy "
            "ddp/single; resume it with the same strategy"
        )
    for i, opt in enumerate(contents.optimizers):
        parts.load_into(opt.optimizer, directory / parts.indexed("optimizer", i), f"optimizer {i}")


def _load_model(strategy: WholeModels, model: torch.nn.Module, path: Path, strict: bool, in_place: bool) -> None:
    current = strategy.unwrap(model).state_dict()
    if strict:
        header, _meta, _start = tensorfile.read_header(path)
        parts.check_model_keys(path, header, current)
    into = current if in_place else {}
    state, _meta = tensorfile.read(path, into=into)  # straight into the parameters when possible
    rest = {k: v for k, v in state.items() if into.get(k) is not v}
    if rest or not strict:
        strategy.load_full_state_dict(model, state, strict=strict)
