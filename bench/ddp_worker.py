"""One rank of the DDP steady-state benchmark (run under torchrun, ``accel launch`` or ``accelerate launch``).

usage: ddp_worker.py --impl raw|accel|accelerate --out result.json [--blocks N] [--configs tiny:1,mlp:4]

Every rank builds the same model and data for each configuration (model, accumulation steps) and
runs two loops over the same process group, their micro-steps alternating one by one (the order
flips every accumulation window, so a scheduling hiccup of the shared machine hits both alike):

* the plain loop, what a user writes by hand: ``DistributedDataParallel``, a ``DistributedSampler``,
  ``model.no_sync()`` on the non-final micro-steps, ``loss / k``, a step every k micro-batches;
* with ``--impl accel`` or ``accelerate``, the framework's documented loop (``prepare``,
  ``accumulate``, ``backward``) on its own copy of the model.

With ``--impl raw`` only the plain loop runs (it is the limit); ``--impl twin`` runs it against a
second copy of itself, a control that shows the method's own bias. Each micro-step is timed from the
batch fetch to the end of its (possible) optimizer step; k consecutive micro-steps form a window.
Rank 0 writes, per loop and configuration, the median over windows of µs per micro-step to
``--out`` (JSON), and ``paired``: the framework's median over the plain loop's in the same process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

BATCH = 64
STEPS = {"tiny": 120, "mlp": 8}  # micro-steps per epoch and rank; a run is --blocks epochs


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


def plain_steps(model_name: str, accum: int) -> Iterator[None]:
    """The hand-written DDP loop, one micro-step per ``next()``, epoch after epoch."""
    model, data = build(model_name, dist.get_world_size())
    ddp = DistributedDataParallel(model)
    loader = DataLoader(data, batch_size=BATCH, sampler=DistributedSampler(data, shuffle=False))
    opt = torch.optim.SGD(ddp.parameters(), lr=1e-3)
    while True:
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
            yield


def framework_steps(impl: str, model_name: str, accum: int) -> Iterator[None]:
    """The framework's documented loop, one micro-step per ``next()``."""
    if impl == "accel":
        from accel import Accelerator
    else:
        from accelerate import Accelerator  # type: ignore[no-redef]
    acc = Accelerator(gradient_accumulation_steps=accum, cpu=True)
    model, data = build(model_name, acc.num_processes)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model, opt, loader = acc.prepare(model, opt, DataLoader(data, batch_size=BATCH))
    while True:
        for x, y in loader:
            with acc.accumulate(model):
                loss = torch.nn.functional.mse_loss(model(x), y)
                acc.backward(loss)
                opt.step()
                opt.zero_grad()
            yield


def measure(impl: str, model_name: str, accum: int, blocks: int) -> dict[str, Any]:
    """Micro-steps of the loops alternate one by one (the order flips every window); µs per micro-step."""
    loops = {"plain": plain_steps(model_name, accum)}
    if impl == "twin":  # a control: the plain loop against a second copy of itself
        loops["framework"] = plain_steps(model_name, accum)
    elif impl != "raw":
        loops["framework"] = framework_steps(impl, model_name, accum)
    steps = STEPS[model_name] * blocks
    for _ in range(STEPS[model_name]):  # warm up: allocator, DDP buckets, gloo connections
        for loop in loops.values():
            next(loop)
    dist.barrier()
    samples: dict[str, list[float]] = {name: [] for name in loops}
    names = list(loops)
    clock = time.perf_counter
    for step in range(steps):
        # the order flips every window: the loop that reaches a window's all-reduce first waits for
        # the other rank's skew, the second finds the ranks in step, so each must be first as often
        for name in names if (step // accum) % 2 == 0 else names[::-1]:
            start = clock()
            next(loops[name])
            samples[name].append((clock() - start) * 1e6)
    # a window is k micro-steps; its mean per micro-step is the unit that compares across accumulation
    windows = {
        n: [statistics.fmean(v[i : i + accum]) for i in range(0, len(v) - accum + 1, accum)] for n, v in samples.items()
    }
    result: dict[str, Any] = {
        n: {"median": statistics.median(w), "mean": statistics.fmean(w)} for n, w in windows.items()
    }
    if "framework" in windows:
        result["paired"] = {"median": result["framework"]["median"] / result["plain"]["median"]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["raw", "twin", "accel", "accelerate"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--configs", default="tiny:1,tiny:4,mlp:1,mlp:4")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.impl in ("raw", "twin"):
        dist.init_process_group("gloo")
    results: dict[str, Any] = {}
    for item in args.configs.split(","):
        model_name, accum = item.split(":")
        if not dist.is_initialized():
            next(framework_steps(args.impl, "tiny", 1))  # the framework creates the process group
        results[item] = measure(args.impl, model_name, int(accum), args.blocks)
    results["threads"] = torch.get_num_threads()
    results["omp"] = os.environ.get("OMP_NUM_THREADS")
    if dist.get_rank() == 0:
        args.out.write_text(json.dumps(results))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
