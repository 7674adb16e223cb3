"""One rank of the DDP steady-state benchmark (run under torchrun, ``accel launch`` or ``accelerate launch``).

usage: ddp_worker.py --impl raw|accel|accelerate --out result.json [--blocks N] [--configs tiny:1,mlp:4]

Every rank builds the same model and data for each configuration (model, accumulation steps) and
alternates timed epochs ("blocks") of two loops over the same process group:

* the plain loop, what a user writes by hand: ``DistributedDataParallel``, a ``DistributedSampler``,
  ``model.no_sync()`` on the non-final micro-steps, ``loss / k``, a step every k micro-batches;
* with ``--impl accel`` or ``accelerate``, the framework's documented loop (``prepare``,
  ``accumulate``, ``backward``) on its own copy of the model.

With ``--impl raw`` only the plain loop runs (it is the limit). Rank 0 writes the median µs per
micro-step of each loop and configuration to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

BATCH = 64
STEPS = {"tiny": 120, "mlp": 8}  # micro-steps per block and rank


def build(model_name: str, world: int) -> tuple[torch.nn.Module, TensorDataset]:
    torch.manual_seed(0)
    n = BATCH * STEPS[model_name] * world
    if model_name == "tiny":
        return torch.nn.Linear(10, 1), TensorDataset(torch.randn(n, 10), torch.randn(n, 1))
    layers: list[torch.nn.Module] = []
    for _ in range(4):
        layers += [torch.nn.Linear(1024, 1024), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(1024, 1))
    return model, TensorDataset(torch.randn(n, 1024), torch.randn(n, 1))


def plain_loop(model_name: str, accum: int) -> Callable[[], int]:
    model, data = build(model_name, dist.get_world_size())
    ddp = DistributedDataParallel(model)
    loader = DataLoader(data, batch_size=BATCH, sampler=DistributedSampler(data, shuffle=False))
    opt = torch.optim.SGD(ddp.parameters(), lr=1e-3)

    def epoch() -> int:
        steps = 0
        for i, (x, y) in enumerate(loader):
            last = (i + 1) % accum == 0
            with contextlib.nullcontext() if last else ddp.no_sync():
                loss = torch.nn.functional.mse_loss(ddp(x), y)
                if accum > 1:
                    loss = loss / accum
                loss.backward()
            if last:
                opt.step()
                opt.zero_grad()
            steps += 1
        return steps

    return epoch


def framework_loop(impl: str, model_name: str, accum: int) -> Callable[[], int]:
    if impl == "accel":
        from accel import Accelerator
    else:
        from accelerate import Accelerator  # type: ignore[no-redef]
    acc = Accelerator(gradient_accumulation_steps=accum, cpu=True)
    model, data = build(model_name, acc.num_processes)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model, opt, loader = acc.prepare(model, opt, DataLoader(data, batch_size=BATCH))

    def epoch() -> int:
        steps = 0
        for x, y in loader:
            with acc.accumulate(model):
                loss = torch.nn.functional.mse_loss(model(x), y)
                acc.backward(loss)
                opt.step()
                opt.zero_grad()
            steps += 1
        return steps

    return epoch


def timed(epoch: Callable[[], int]) -> float:
    dist.barrier()
    start = time.perf_counter()
    steps = epoch()
    elapsed = time.perf_counter() - start
    return elapsed / steps * 1e6


def measure(impl: str, model_name: str, accum: int, blocks: int) -> dict[str, Any]:
    loops = {"plain": plain_loop(model_name, accum)}
    if impl != "raw":
        loops["framework"] = framework_loop(impl, model_name, accum)
    for fn in loops.values():
        fn()  # warm up: allocator, DDP buckets, gloo connections
    samples: dict[str, list[float]] = {name: [] for name in loops}
    names = list(loops)
    for block in range(blocks):
        for name in names if block % 2 == 0 else names[::-1]:
            samples[name].append(timed(loops[name]))
    return {name: {"median": statistics.median(v), "all": v} for name, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["raw", "accel", "accelerate"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--configs", default="tiny:1,tiny:4,mlp:1,mlp:4")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.impl == "raw":
        dist.init_process_group("gloo")
    results: dict[str, Any] = {}
    for item in args.configs.split(","):
        model_name, accum = item.split(":")
        if not dist.is_initialized():
            framework_loop(args.impl, "tiny", 1)  # the framework creates the process group
        results[item] = measure(args.impl, model_name, int(accum), args.blocks)
    results["threads"] = torch.get_num_threads()
    results["omp"] = os.environ.get("OMP_NUM_THREADS")
    if dist.get_rank() == 0:
        args.out.write_text(json.dumps(results))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
