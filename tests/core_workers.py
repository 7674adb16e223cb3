"""Module-level workers for the multi-process core tests (spawned by ``dist_run``)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from accel import Accelerator, DataLoaderConfiguration, FullyShardedDataParallelPlugin
from accel.utils import set_seed


def make_data(n: int, features: int = 6) -> TensorDataset:
    """A fixed regression data set."""
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(n, features, generator=g)
    y = x @ torch.randn(features, 1, generator=g) + 0.1 * torch.randn(n, 1, generator=g)
    return TensorDataset(x, y, torch.arange(n))


def make_model(features: int = 6) -> torch.nn.Module:
    """A small MLP with a fixed initialisation."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(features, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def flat(model: torch.nn.Module) -> torch.Tensor:
    """All parameters as one vector."""
    full = [p.full_tensor() if hasattr(p, "full_tensor") else p for p in model.parameters()]
    return torch.cat([p.detach().reshape(-1).cpu() for p in full])


def train(
    n: int,
    batch_size: int,
    steps: int = 1,
    epochs: int = 1,
    shuffle: bool = True,
    mixed_precision: str = "no",
    num_items: bool = False,
    fsdp: bool = False,
    even_batches: bool = True,
) -> dict[str, Any]:
    """Train with accel; return final parameters and the sample ids each rank saw."""
    set_seed(0)
    acc = Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=steps,
        dataloader_config=DataLoaderConfiguration(data_seed=99, even_batches=even_batches),
        fsdp_plugin=FullyShardedDataParallelPlugin() if fsdp else None,
    )
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(make_data(n), batch_size=batch_size, shuffle=shuffle)
    model, opt, loader = acc.prepare(model, opt, loader)
    all_reduces = _count_all_reduces(model)
    seen: list[int] = []
    optimizer_steps = 0
    for _ in range(epochs):
        for x, y, ids in loader:
            seen.extend(ids.tolist())
            with acc.accumulate(model):
                out = model(x)
                if num_items:
                    loss = torch.nn.functional.mse_loss(out, y, reduction="sum")
                    acc.backward(loss, num_items=len(y))
                else:
                    acc.backward(torch.nn.functional.mse_loss(out, y))
                opt.step()
                opt.zero_grad()
                optimizer_steps += int(acc.sync_gradients)
    params = flat(model)
    result = {
        "params": params,
        "seen": seen,
        "rank": acc.process_index,
        "world": acc.num_processes,
        "type": acc.distributed_type.value,
        "optimizer_steps": optimizer_steps,
        "mixed_precision": acc.mixed_precision,
        "all_reduces": all_reduces["calls"],
    }
    acc.state.destroy_process_group()
    return result


def _count_all_reduces(model: torch.nn.Module) -> dict[str, int]:
    """Count DDP gradient all-reduces (one bucket per backward for these small models)."""
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    counter = {"calls": 0}
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):

        def hook(state, bucket):  # type: ignore[no-untyped-def]  # DDP rejects non-GradBucket annotations
            counter["calls"] += 1
            return default_hooks.allreduce_hook(state, bucket)

        model.register_comm_hook(None, hook)
    return counter


def reference(order: list[int], global_batch: int, n: int) -> torch.Tensor:
    """Plain PyTorch on one process: SGD over global batches taken in ``order``."""
    torch.manual_seed(0)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = make_data(n)
    for start in range(0, len(order), global_batch):
        idx = torch.tensor(order[start : start + global_batch])
        x, y, _ = data[idx]
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    return flat(model)


def ops_suite() -> dict[str, Any]:
    """Collectives and gather_for_metrics on uneven data."""
    acc = Accelerator()
    rank = acc.process_index
    out: dict[str, Any] = {}
    out["gather_uneven"] = acc.gather(torch.arange(rank + 1)).tolist()
    out["gather_scalar"] = acc.gather(torch.tensor(float(rank))).tolist()
    out["reduce_sum"] = acc.reduce(torch.tensor([1.0, rank]), "sum").tolist()
    out["reduce_mean"] = acc.reduce(torch.tensor([2.0]), "mean").tolist()
    from accel.utils import reduce

    out["reduce_default"] = acc.reduce(torch.tensor([rank + 1.0])).tolist()  # Accelerator.reduce: sum
    out["utils_reduce_default"] = reduce(torch.tensor([rank + 1.0])).tolist()  # accel.utils.reduce: mean
    out["reduce_max"] = reduce(torch.tensor([rank + 1.0, -rank]), "max").tolist()
    out["pad"] = list(acc.pad_across_processes(torch.ones(rank + 1, 2)).shape)
    from accel.utils import broadcast, gather_object

    out["broadcast"] = broadcast(torch.tensor([rank + 5])).tolist()
    out["gather_object"] = gather_object([f"r{rank}"])
    loader = acc.prepare(DataLoader(torch.arange(5), batch_size=2))
    metrics: list[int] = []
    batches = 0
    for batch in loader:
        batches += 1
        metrics.extend(acc.gather_for_metrics(batch).tolist())
    out["metrics"] = metrics
    out["batches"] = batches
    with acc.split_between_processes(list(range(5))) as part:
        out["split"] = part
    acc.state.destroy_process_group()
    return out


def two_models(fsdp: bool) -> dict[str, Any]:
    """An encoder and a head prepared together, one optimizer over both; DDP kwargs honoured."""
    from accel import DistributedDataParallelKwargs

    set_seed(0)
    acc = Accelerator(
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        fsdp_plugin=FullyShardedDataParallelPlugin(auto_wrap_classes=(torch.nn.Linear,)) if fsdp else None,
        dataloader_config=DataLoaderConfiguration(data_seed=7),
    )
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
    head = torch.nn.Linear(8, 1)
    opt = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=1e-2)
    loader = DataLoader(make_data(32), batch_size=4, shuffle=True)
    encoder, head, opt, loader = acc.prepare(encoder, head, opt, loader)
    for x, y, _ in loader:
        with acc.accumulate(encoder, head):
            acc.backward(torch.nn.functional.mse_loss(head(encoder(x)), y))
            acc.clip_grad_norm_([*encoder.parameters(), *head.parameters()], 1.0)
            opt.step()
            opt.zero_grad()
    result = {
        "params": torch.cat([flat(encoder), flat(head)]),
        "find_unused": getattr(encoder, "find_unused_parameters", None),
        "type": acc.distributed_type.value,
    }
    acc.state.destroy_process_group()
    return result
