"""Checkpoint I/O against the disk's sequential bandwidth.

usage: python bench/bench_checkpoint.py [--dir DIR] [--params 100e6] [--repeat 3]

Measures, in DIR (default: a temporary directory on the same disk as the current one):
  * the disk: write N bytes in 64 MiB blocks + fsync; read them back after dropping them from
    the page cache (posix_fadvise DONTNEED), i.e. what `dd conv=fsync` / `dd iflag=direct` show;
  * save_state of a ~100M-parameter model with AdamW state (about 1.2 GB; fsync included);
  * load_state of the same checkpoint, its files dropped from the page cache first.
Prints MB/s (10^6 bytes) and the ratio to the disk, median of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from accel import Accelerator

BLOCK = 64 * 2**20


def drop_cache(path: Path) -> None:
    """Evict a file's (clean) pages from the page cache, so that the next read hits the disk."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def disk_write(path: Path, size: int) -> float:
    """Seconds to write ``size`` bytes sequentially and fsync."""
    block = os.urandom(BLOCK)
    start = time.perf_counter()
    with open(path, "wb", buffering=0) as handle:
        left = size
        while left > 0:
            left -= handle.write(block[: min(left, BLOCK)])
        os.fsync(handle.fileno())
    return time.perf_counter() - start


def disk_read(path: Path) -> float:
    """Seconds to read a file that is not in the page cache."""
    drop_cache(path)
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(view):
            pass
    return time.perf_counter() - start


def build(params: float) -> tuple[Accelerator, torch.nn.Module, torch.optim.Optimizer]:
    """A stack of 4096x4096 linear layers with one AdamW step taken (so the state exists)."""
    width = 4096
    layers = max(1, round(params / (width * width + width)))
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    opt.step()
    acc = Accelerator(cpu=True)
    model, opt = acc.prepare(model, opt)
    return acc, model, opt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--params", type=float, default=100e6)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ckpt-", dir=args.dir or Path.cwd()))
    try:
        acc, model, _opt = build(args.params)
        n_params = sum(p.numel() for p in model.parameters())
        saves, loads, writes, reads = [], [], [], []
        size = 0
        for i in range(args.repeat):
            ckpt = root / f"ckpt{i}"
            start = time.perf_counter()
            acc.save_state(ckpt)
            saves.append(time.perf_counter() - start)
            size = sum(p.stat().st_size for p in ckpt.rglob("*") if p.is_file())
            drop_cache(ckpt)
            start = time.perf_counter()
            acc.load_state(ckpt)
            loads.append(time.perf_counter() - start)
            shutil.rmtree(ckpt)
            raw = root / "raw.bin"
            writes.append(disk_write(raw, size))
            reads.append(disk_read(raw))
            raw.unlink()
        mb = size / 1e6

        def rate(times: list[float]) -> tuple[float, str]:
            return mb / statistics.median(times), f"[{mb / max(times):.0f}-{mb / min(times):.0f}]"

        (w, wr), (r, rr), (s, sr), (lo, lr) = rate(writes), rate(reads), rate(saves), rate(loads)
        print(f"model: {n_params / 1e6:.1f}M parameters + AdamW state; checkpoint {mb:.0f} MB in {root.parent}")
        print(f"median of {args.repeat} interleaved runs, MB/s [slowest-fastest]\n")
        print("| run | disk write+fsync | disk read (cold) | save_state | load_state |\n|---|---|---|---|---|")
        print(
            f"| {args.repeat} repeats | {w:.0f} {wr} | {r:.0f} {rr} | {s:.0f} {sr} ({s / w:.0%}) "
            f"| {lo:.0f} {lr} ({lo / r:.0%}) |"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
