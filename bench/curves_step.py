"""Cost curves of one training step: overhead vs number of parameter tensors, and vs accumulation steps.

usage: python bench/curves_step.py [--blocks 9] [--smoke] [--json OUT]

One process, one intra-op thread. For every point a plain PyTorch loop and accel's loop over the
same model and data alternate block by block (as ``core_worker.py`` does), and the overhead is the
difference of their median µs per micro-step. Models for the tensor curve are ``n`` independent
``Linear(4, 4, bias=False)`` layers summed (``n`` parameter tensors, tiny compute), so the step is
almost all per-tensor work: autograd, the optimizer's loop over tensors, and whatever the framework adds.
Times are the CPU time of the training thread (``time.thread_time``; one intra-op thread, so all
of torch's work runs there): on a machine shared with other jobs wall time mostly measures how often
the process is descheduled, CPU time measures the work.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

TENSORS = [1, 10, 30, 100, 300, 1000]
ACCUM = [1, 2, 4, 8, 16]
BATCH = 16
# CPU time of this thread: on a machine shared with other jobs, wall time measures the scheduler
CLOCK = time.thread_time


class Many(torch.nn.Module):
    """``n`` parallel 4x4 linear maps whose outputs are summed: n parameter tensors."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(4, 4, bias=False) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([layer(x) for layer in self.layers]).sum(0)


def data(steps: int) -> torch.utils.data.DataLoader[Any]:
    ds = torch.utils.data.TensorDataset(torch.randn(BATCH * steps, 4), torch.randn(BATCH * steps, 4))
    return torch.utils.data.DataLoader(ds, batch_size=BATCH)


def plain(n: int, accum: int, steps: int) -> Callable[[], int]:
    torch.manual_seed(0)
    model, loader = Many(n), data(steps)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def epoch() -> int:
        for i, (x, y) in enumerate(loader):
            loss = torch.nn.functional.mse_loss(model(x), y)
            if accum > 1:
                loss = loss / accum
            loss.backward()
            if (i + 1) % accum == 0:
                opt.step()
                opt.zero_grad()
        return len(loader)

    return epoch


def framework(n: int, accum: int, steps: int) -> Callable[[], int]:
    from accel import Accelerator

    torch.manual_seed(0)
    acc = Accelerator(cpu=True, gradient_accumulation_steps=accum)
    model = Many(n)
    model, opt, loader = acc.prepare(model, torch.optim.SGD(model.parameters(), lr=1e-3), data(steps))

    def epoch() -> int:
        for x, y in loader:
            with acc.accumulate(model):
                loss = torch.nn.functional.mse_loss(model(x), y)
                acc.backward(loss)
                opt.step()
                opt.zero_grad()
        return len(loader)

    return epoch


def point(n: int, accum: int, blocks: int) -> dict[str, float]:
    steps = max(16, min(400, 4000 // n)) // accum * accum
    loops = {"plain": plain(n, accum, steps), "accel": framework(n, accum, steps)}
    for fn in loops.values():
        fn()
    samples: dict[str, list[float]] = {k: [] for k in loops}
    for b in range(blocks):
        for name in ["plain", "accel"] if b % 2 == 0 else ["accel", "plain"]:
            start = CLOCK()
            count = loops[name]()
            samples[name].append((CLOCK() - start) / count * 1e6)
    raw, own = statistics.median(samples["plain"]), statistics.median(samples["accel"])
    diffs = [a - p for a, p in zip(samples["accel"], samples["plain"], strict=True)]
    return {"plain_us": raw, "accel_us": own, "overhead_us": own - raw, "lo": min(diffs), "hi": max(diffs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    blocks = 2 if args.smoke else args.blocks
    tensors = [1, 100] if args.smoke else TENSORS
    accums = [1, 4] if args.smoke else ACCUM
    load = [common.load()]
    by_tensors = {n: point(n, 1, blocks) for n in tensors}
    load.append(common.load())
    by_accum = {k: point(10, k, blocks) for k in accums}
    load.append(common.load())
    result = {"tensors": by_tensors, "accum": by_accum, "load": load, "blocks": blocks}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    for title, rows in (("parameter tensors", by_tensors), ("accumulation steps (10 tensors)", by_accum)):
        print(f"\n| {title} | plain µs | accel µs | overhead µs [block min-max] |\n|---|---|---|---|")
        for x, r in rows.items():
            print(f"| {x} | {r['plain_us']:.0f} | {r['accel_us']:.0f} | {r['overhead_us']:+.1f} "
                  f"[{r['lo']:+.0f}..{r['hi']:+.0f}] |")  # fmt: skip


if __name__ == "__main__":
    main()
