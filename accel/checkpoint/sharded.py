"""Sharded models and optimizers (FSDP2) through ``torch.distributed.checkpoint``.

Every rank writes only its own shards into ``<checkpoint>/sharded/`` with torch's safetensors
storage (``HuggingFaceStorageWriter(save_distributed=True)``): tensors in safetensors files, the
position of every shard in their metadata, no pickle anywhere. Non-tensor optimizer state
(``param_groups``, hyper-parameters) goes to ``optimizer.json`` as a skeleton whose tensor
references point into the DCP store. Loading plans reads for the *current* sharding, so a
checkpoint saved on N ranks loads on M ranks, or into an unsharded model in one process.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.hf_storage import HuggingFaceStorageReader, HuggingFaceStorageWriter
from torch.distributed.checkpoint.state_dict import (
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

from accel.checkpoint import atomic, codec, parts
from accel.exceptions import CheckpointError

SHARDED_DIR = "sharded"


def _owner(acc: Any, optimizer: torch.optim.Optimizer) -> torch.nn.Module:
    ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
    owners = [m for m in acc._models if any(id(p) in ids for p in m.parameters())]
    if len(owners) == 1:
        return owners[0]  # type: ignore[no-any-return]
    return torch.nn.ModuleList(owners)


def _gather(acc: Any) -> tuple[dict[str, torch.Tensor], list[Any]]:
    flat: dict[str, torch.Tensor] = {}
    for i, model in enumerate(acc._models):
        for key, value in get_model_state_dict(model).items():
            flat[f"model_{i}.{key}"] = value  # type: ignore[assignment]
    skeletons = []
    for j, opt in enumerate(acc._optimizers):
        encoder = codec.Encoder(f"optimizer {j}")
        skeletons.append(encoder.encode(get_optimizer_state_dict(_owner(acc, opt.optimizer), opt.optimizer)))
        flat.update({f"optimizer_{j}.{name}": t for name, t in encoder.tensors.items()})
    return flat, skeletons


def save(acc: Any, directory: Path) -> None:
    """Collective: every rank writes its shards of every model and optimizer."""
    flat, skeletons = _gather(acc)
    dcp_save(flat, storage_writer=HuggingFaceStorageWriter(str(directory / SHARDED_DIR), save_distributed=True))
    if acc.is_main_process:
        for j, skeleton in enumerate(skeletons):
            atomic.write_text(directory / parts.indexed("optimizer", j, ".json"), json.dumps(skeleton))


def load(acc: Any, directory: Path, strict: bool = True) -> None:
    """Collective: fill every prepared model and optimizer from the shards, for the current sharding."""
    store = directory / SHARDED_DIR
    reader = HuggingFaceStorageReader(str(store))
    saved = reader.read_metadata().state_dict_metadata
    template, _ = _gather(acc)
    wanted: dict[str, torch.Tensor] = {}
    for i in range(len(acc._models)):
        keys = {k for k in template if k.startswith(f"model_{i}.")}
        stored = {k for k in saved if k.startswith(f"model_{i}.")}
        _check(store, f"model_{i}.", keys, stored, strict)
        wanted.update({k: template[k] for k in keys & stored})
    skeletons = []
    for j in range(len(acc._optimizers)):
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
    for i, model in enumerate(acc._models):
        prefix = f"model_{i}."
        state = {k[len(prefix) :]: v for k, v in wanted.items() if k.startswith(prefix)}
        set_model_state_dict(model, state)  # type: ignore[arg-type]
    for j, opt in enumerate(acc._optimizers):
        prefix = f"optimizer_{j}."
        tensors = {k[len(prefix) :]: v for k, v in wanted.items() if k.startswith(prefix)}
        state = codec.decode(skeletons[j], tensors, f"optimizer {j} in {store}")
        set_optimizer_state_dict(_owner(acc, opt.optimizer), opt.optimizer, state)


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
