"""Models and optimizers as full state dicts: the main process writes one file per object.

Used by the single-process and DDP strategies (every rank holds the whole model). Models go to
``model.safetensors``, ``model_1.safetensors``…, optimizers to ``optimizer.safetensors``… (see
:mod:`accel.checkpoint.parts`). Loading reads model tensors straight into the parameters when the
strategy allows it (``in_place``), and a checkpoint written sharded is read through
``torch.distributed.checkpoint`` for the current (unsharded) layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from accel.checkpoint import parts, tensorfile
from accel.checkpoint.contents import Contents, StagedStates, StateFormat
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


class FullFormat(StateFormat):
    """Full state dicts.

    Args:
        strategy: gathers and loads whole-model state dicts.
        in_place: read model tensors straight into the live parameters (False where parameters are sharded).
        optimizers: whether full optimizer states can be loaded (False for sharded strategies).
    """

    sharded = False

    def __init__(self, strategy: WholeModels, in_place: bool = True, optimizers: bool = True) -> None:
        self.strategy = strategy
        self.in_place = in_place
        self.optimizers = optimizers

    def stage(self, contents: Contents, main: bool) -> FullStates:
        if not (main or self.strategy.full_state_is_collective):
            return FullStates([], [])
        models = [self.strategy.full_state_dict(m) for m in contents.models]
        optimizers = [opt.optimizer.state_dict() for opt in contents.optimizers] if main else []
        return FullStates(models, optimizers)

    def load(self, contents: Contents, directory: Path, sharded: bool, strict: bool) -> None:
        if sharded:
            from accel.checkpoint import sharded as sharded_mod

            sharded_mod.load(contents, directory, strict)
            return
        for i, model in enumerate(contents.models):
            self._load_model(model, directory / parts.indexed("model", i), strict)
        if contents.optimizers and not self.optimizers:
            raise CheckpointError(
                f"{directory} holds full (unsharded) optimizer states, written with strategy "
                "ddp/single; resume it with the same strategy"
            )
        for i, opt in enumerate(contents.optimizers):
            parts.load_into(opt.optimizer, directory / parts.indexed("optimizer", i), f"optimizer {i}")

    def _load_model(self, model: torch.nn.Module, path: Path, strict: bool) -> None:
        current = self.strategy.unwrap(model).state_dict()
        if strict:
            header, _meta, _start = tensorfile.read_header(path)
            parts.check_model_keys(path, header, current)
        in_place = current if self.in_place else {}
        state, _meta = tensorfile.read(path, into=in_place)  # straight into the parameters when possible
        rest = {k: v for k, v in state.items() if in_place.get(k) is not v}
        if rest or not strict:
            self.strategy.load_full_state_dict(model, state, strict=strict)
