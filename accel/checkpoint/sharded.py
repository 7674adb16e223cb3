"""Sharded models and optimizers (FSDP2) through ``torch.distributed.checkpoint``.

Every rank writes only its own shards into ``<checkpoint>/sharded/`` with torch's safetensors
storage (``HuggingFaceStorageWriter(save_distributed=True)``): tensors in safetensors files, the
position of every shard in their metadata, no pickle anywhere. Non-tensor optimizer state
(``param_groups``, hyper-parameters) goes to ``optimizer.json`` as a skeleton whose tensor
references point into the DCP store. Loading plans reads for the *current* sharding, so a
checkpoint saved on N ranks loads on M ranks, or into an unsharded model in one process.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from accel.checkpoint import atomic, codec, parts
from accel.checkpoint.contents import Contents, StagedStates
from accel.exceptions import CheckpointError

SHARDED_DIR = "sharded"
_STORAGE = "torch.distributed.checkpoint.hf_storage"


def stage(contents: Contents) -> ShardedStates:
    """This rank's shards of every model and optimizer (no copy: DCP reads them when writing)."""
    if importlib.util.find_spec(_STORAGE) is None:
        raise CheckpointError("FSDP checkpoints need torch.distributed.checkpoint's safetensors storage (torch>=2.8)")
    return ShardedStates(*_gather(contents))


def _owner(models: tuple[torch.nn.Module, ...], optimizer: torch.optim.Optimizer) -> torch.nn.Module:
    ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
    owners = [m for m in models if any(id(p) in ids for p in m.parameters())]
    if len(owners) == 1:
        return owners[0]
    return torch.nn.ModuleList(owners)


def _gather(contents: Contents) -> tuple[dict[str, torch.Tensor], list[Any]]:
    flat: dict[str, torch.Tensor] = {}
    for i, model in enumerate(contents.models):
        for key, value in get_model_state_dict(model).items():
            flat[f"model_{i}.{key}"] = value  # type: ignore[assignment]
    skeletons = []
    for j, opt in enumerate(contents.optimizers):
        encoder = codec.Encoder(f"optimizer {j}")
        owner = _owner(contents.models, opt.optimizer)
        skeletons.append(encoder.encode(get_optimizer_state_dict(owner, opt.optimizer)))
        flat.update({f"optimizer_{j}.{name}": t for name, t in encoder.tensors.items()})
    return flat, skeletons


@dataclass(frozen=True)
class ShardedStates(StagedStates):
    """This rank's shards of every model and optimizer, and the optimizers' JSON skeletons."""

    shards: dict[str, torch.Tensor]
    skeletons: list[Any]

    def write(self, directory: Path, main: bool) -> None:
        """Collective: every rank writes its shards."""
        from torch.distributed.checkpoint.hf_storage import HuggingFaceStorageWriter
        from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

        writer = HuggingFaceStorageWriter(str(directory / SHARDED_DIR), save_distributed=True)
        dcp_save(self.shards, storage_writer=writer)
        if main:
            for j, skeleton in enumerate(self.skeletons):
                atomic.write_text(directory / parts.indexed("optimizer", j, ".json"), json.dumps(skeleton))


def load(contents: Contents, directory: Path, strict: bool = True) -> None:
    """Collective: fill every prepared model and optimizer from the shards, for the current sharding."""
    from torch.distributed.checkpoint.hf_storage import HuggingFaceStorageReader
    from torch.distributed.checkpoint.state_dict_loader import load as dcp_load

    store = directory / SHARDED_DIR
    reader = HuggingFaceStorageReader(str(store))
    saved = reader.read_metadata().state_dict_metadata
    template, _ = _gather(contents)
    wanted: dict[str, torch.Tensor] = {}
    for i in range(len(contents.models)):
        keys = {k for k in template if k.startswith(f"model_{i}.")}
        stored = {k for k in saved if k.startswith(f"model_{i}.")}
        _check(store, f"model_{i}.", keys, stored, strict)
        wanted.update({k: template[k] for k in keys & stored})
    skeletons = []
    for j in range(len(contents.optimizers)):
        path = directory / parts.indexed("optimizer", j, ".json")
        try:
            skeletons.append(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise CheckpointError(f"{path} is missing") from None
        stored = {k for k in saved if k.startswith(f"optimizer_{j}.")}
        keys = {k for k in template if k.startswith(f"optimizer_{j}.")}
        _check(store, f"optimizer_{j}.", keys, stored, True)
        wanted.update({k: template[k] for k in stored})
    with warnings.catch_warnings():  # DCP warns whenever it runs without a process group, which is intended here
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        dcp_load(wanted, storage_reader=HuggingFaceStorageReader(str(store)), no_dist=not dist.is_initialized())
    for i, model in enumerate(contents.models):
        prefix = f"model_{i}."
        state = {k[len(prefix) :]: v for k, v in wanted.items() if k.startswith(prefix)}
        set_model_state_dict(model, state)  # type: ignore[arg-type]
    for j, opt in enumerate(contents.optimizers):
        prefix = f"optimizer_{j}."
        tensors = {k[len(prefix) :]: v for k, v in wanted.items() if k.startswith(prefix)}
        opt_state = codec.decode(skeletons[j], tensors, f"optimizer {j} in {store}")
        set_optimizer_state_dict(_owner(contents.models, opt.optimizer), opt.optimizer, opt_state)


def _check(store: Path, prefix: str, expected: set[str], stored: set[str], strict: bool) -> None:
    missing = sorted(k[len(prefix) :] for k in expected - stored)
    unexpected = sorted(k[len(prefix) :] for k in stored - expected) if strict else []
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s): {', '.join(missing[:5])}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {', '.join(unexpected[:5])}")
    if problems:
        raise CheckpointError(f"{store} does not match {prefix.rstrip('.')}: {'; '.join(problems)}")
