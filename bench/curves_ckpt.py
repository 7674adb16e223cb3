"""Checkpoint save/load time vs model size (10M -> 400M parameters), against raw torch and safetensors.

usage: python bench/curves_ckpt.py [--dir DIR] [--smoke] [--json OUT]

A stack of ``Linear(2048, 2048)`` layers with a plain SGD optimizer (no state), so the checkpoint
is the weights: 4 bytes per parameter. For each size, interleaved: ``save_state`` / ``load_state``,
``torch.save(state_dict)`` + fsync / ``torch.load(weights_only=True)`` + ``load_state_dict``, and
``safetensors.torch.save_file`` + fsync / ``load_file`` + ``load_state_dict``. Every load starts with
the files dropped from the page cache. Sizes below 100M repeat twice, larger ones once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from bench_checkpoint import drop_cache

from accel import Accelerator

SIZES = [10e6, 50e6, 100e6, 200e6, 400e6]
WIDTH = 2048


def fsynced(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


Pair = tuple[Callable[[], Any], Callable[[], Any]]


def ways(acc: Accelerator, model: torch.nn.Module, root: Path) -> dict[str, Pair]:
    inner = acc.unwrap_model(model)
    pt, st, ck = root / "raw.pt", root / "raw.safetensors", root / "ckpt"

    def torch_save() -> None:
        torch.save(inner.state_dict(), pt)
        fsynced(pt)

    def st_save() -> None:
        safetensors.torch.save_file(inner.state_dict(), str(st))
        fsynced(st)

    return {
        "accel": (lambda: acc.save_state(ck), lambda: (drop_cache(ck), acc.load_state(ck))),
        "torch": (torch_save, lambda: (drop_cache(pt), inner.load_state_dict(torch.load(pt, weights_only=True)))),
        "safetensors": (st_save, lambda: (drop_cache(st), inner.load_state_dict(safetensors.torch.load_file(st)))),
    }


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def point(params: float, repeat: int, root: Path) -> dict[str, Any]:
    layers = max(1, round(params / (WIDTH * WIDTH + WIDTH)))
    model = torch.nn.Sequential(*[torch.nn.Linear(WIDTH, WIDTH) for _ in range(layers)])
    acc = Accelerator(cpu=True)
    model, _opt = acc.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
    n = sum(p.numel() for p in model.parameters())
    samples: dict[str, dict[str, list[float]]] = {}
    impls = ways(acc, model, root)
    names = list(impls)
    for r in range(repeat):
        for name in names[r % 3 :] + names[: r % 3]:
            save, load = impls[name]
            samples.setdefault(name, {"save": [], "load": []})
            samples[name]["save"].append(timed(save))
            samples[name]["load"].append(timed(load))
    for p in root.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    med = {k: {op: statistics.median(v) for op, v in d.items()} for k, d in samples.items()}
    return {"params": n, "bytes": n * 4, "repeat": repeat, "median": med, "samples": samples}


def table(data: dict[str, Any]) -> str:
    lines = [
        "| parameters | MB | save_state s | torch.save s | safetensors save s "
        "| load_state s | torch.load s | safetensors load s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in data["points"]:
        m = row["median"]
        saves = " | ".join(f"{m[k]['save']:.2f}" for k in ("accel", "torch", "safetensors"))
        loads = " | ".join(f"{m[k]['load']:.2f}" for k in ("accel", "torch", "safetensors"))
        lines.append(f"| {row['params'] / 1e6:.0f}M | {row['bytes'] / 1e6:.0f} | {saves} | {loads} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    sizes = [2e6, 10e6] if args.smoke else SIZES
    root = Path(tempfile.mkdtemp(prefix="bench-ckpt-curve-", dir=args.dir or Path.cwd()))
    load, points = [common.load()], []
    try:
        for params in sizes:
            points.append(point(params, 1 if args.smoke or params >= 100e6 else 2, root))
            load.append(common.load())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    data = {"points": points, "load": load}
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    print(f"load {common.load_range(load)}\n")
    print(table(data))


if __name__ == "__main__":
    main()
