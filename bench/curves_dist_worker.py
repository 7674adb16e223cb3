"""One rank of the distributed cost curves (run by ``curves_dist.py`` under ``accel launch``).

usage: curves_dist_worker.py --out result.json [--repeat 5] [--smoke]

* ``gather_for_metrics`` of a float32 tensor of n elements per rank, against the raw collective
  (``all_gather_single``; ``all_gather_into_tensor`` before torch 2.13) on the same group,
  alternating, median of ``--repeat``;
* ``prepare()`` of a model of p parameters (stacked ``Linear(1024, 1024)``) against wrapping the
  same model by hand in ``DistributedDataParallel`` (one process: ``model.to("cpu")``).
Rank 0 writes seconds per call to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from accel import Accelerator

ELEMENTS = [1_000, 10_000, 100_000, 1_000_000, 10_000_000]
PARAMS = [1e6, 10e6, 50e6, 100e6]


def timed(fn: Callable[[], Any]) -> float:
    if dist.is_initialized():
        dist.barrier()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def raw_gather(x: torch.Tensor) -> torch.Tensor:
    if not dist.is_initialized():
        return x.clone()
    out = torch.empty((x.shape[0] * dist.get_world_size(), *x.shape[1:]), dtype=x.dtype)
    gather_single = getattr(dist, "all_gather_single", None)  # torch >= 2.13; older: all_gather_into_tensor
    (gather_single or dist.all_gather_into_tensor)(out, x)
    return out


def gather_curve(acc: Accelerator, elements: list[int], repeat: int) -> dict[int, dict[str, float]]:
    result = {}
    for n in elements:
        x = torch.randn(n // 10, 10)
        samples: dict[str, list[float]] = {"accel": [], "raw": []}
        timed(lambda: acc.gather_for_metrics(x))  # noqa: B023
        for i in range(repeat):
            pair = [("accel", lambda: acc.gather_for_metrics(x)), ("raw", lambda: raw_gather(x))]  # noqa: B023
            for name, fn in pair if i % 2 == 0 else pair[::-1]:
                samples[name].append(timed(fn))
        result[n] = {k: statistics.median(v) for k, v in samples.items()}
    return result


def model_of(params: float) -> torch.nn.Module:
    layers = max(1, round(params / (1024 * 1024 + 1024)))
    return torch.nn.Sequential(*[torch.nn.Linear(1024, 1024) for _ in range(layers)])


def _raw_wrap(model: torch.nn.Module) -> torch.nn.Module:
    return DistributedDataParallel(model) if dist.is_initialized() else model.to("cpu")


def prepare_curve(acc: Accelerator, sizes: list[float], repeat: int) -> dict[float, dict[str, float]]:
    result = {}
    for params in sizes:
        samples: dict[str, list[float]] = {"accel": [], "raw": []}
        for i in range(repeat):
            accel_model, raw_model = model_of(params), model_of(params)
            fns = {"accel": lambda m=accel_model: acc.prepare_model(m), "raw": lambda m=raw_model: _raw_wrap(m)}
            for name in ["accel", "raw"] if i % 2 == 0 else ["raw", "accel"]:
                samples[name].append(timed(fns[name]))
            acc.free_memory()
        result[params] = {k: statistics.median(v) for k, v in samples.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    acc = Accelerator(cpu=True)
    elements = ELEMENTS[:2] if args.smoke else ELEMENTS
    sizes = PARAMS[:1] if args.smoke else PARAMS
    repeat = 2 if args.smoke else args.repeat
    result = {
        "world": acc.num_processes,
        "gather": gather_curve(acc, elements, repeat),
        "prepare": prepare_curve(acc, sizes, max(repeat // 2, 1)),
    }
    if acc.is_main_process:
        args.out.write_text(json.dumps(result))
    acc.wait_for_everyone()


if __name__ == "__main__":
    main()
