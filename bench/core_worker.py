"""One benchmark process: times a training loop of one implementation against plain PyTorch, interleaved.

Run by ``bench_core.py`` (possibly under another virtual environment, for the Accelerate peer).
Prints one JSON line: per-step times (µs) of alternating blocks of the plain loop and the loop under test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def build(model_name: str) -> tuple[torch.nn.Module, torch.utils.data.DataLoader[Any]]:
    torch.manual_seed(0)
    if model_name == "tiny":
        model: torch.nn.Module = torch.nn.Linear(10, 1)
        data = torch.utils.data.TensorDataset(torch.randn(64 * 100, 10), torch.randn(64 * 100, 1))
        return model, torch.utils.data.DataLoader(data, batch_size=64)
    layers: list[torch.nn.Module] = []
    for _ in range(4):
        layers += [torch.nn.Linear(1024, 1024), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(1024, 1))
    data = torch.utils.data.TensorDataset(torch.randn(64 * 8, 1024), torch.randn(64 * 8, 1))
    return model, torch.utils.data.DataLoader(data, batch_size=64)


def plain_loop(model_name: str, accum: int, precision: str) -> Callable[[], int]:
    model, loader = build(model_name)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    ctx: Callable[[], Any] = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext
    )

    def epoch() -> int:
        steps = 0
        for i, (x, y) in enumerate(loader):
            with ctx():
                out = model(x)
            loss = torch.nn.functional.mse_loss(out.float(), y)
            if accum > 1:
                loss = loss / accum
            loss.backward()
            if (i + 1) % accum == 0:
                opt.step()
                opt.zero_grad()
            steps += 1
        return steps

    return epoch


def framework_loop(impl: str, model_name: str, accum: int, precision: str) -> Callable[[], int]:
    if impl == "accel":
        from accel import Accelerator
    else:
        from accelerate import Accelerator  # type: ignore[no-redef]
    acc = Accelerator(mixed_precision=precision, gradient_accumulation_steps=accum, cpu=True)
    model, loader = build(model_name)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model, opt, loader = acc.prepare(model, opt, loader)

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
    start = time.perf_counter()
    steps = epoch()
    return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["accel", "accelerate"], required=True)
    parser.add_argument("--model", choices=["tiny", "mlp"], default="tiny")
    parser.add_argument("--accum", type=int, default=1)
    parser.add_argument("--precision", choices=["no", "bf16"], default="no")
    parser.add_argument("--blocks", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    plain = plain_loop(args.model, args.accum, args.precision)
    other = framework_loop(args.impl, args.model, args.accum, args.precision)
    plain(), other()  # warm up
    raw_us, impl_us = [], []
    for block in range(args.blocks):
        order = (plain, other) if block % 2 == 0 else (other, plain)
        for fn in order:
            (raw_us if fn is plain else impl_us).append(timed(fn))
    print(json.dumps({"raw_us": statistics.median(raw_us), "impl_us": statistics.median(impl_us)}))


if __name__ == "__main__":
    main()
