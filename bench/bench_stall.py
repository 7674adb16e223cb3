"""Checkpoint stall: how long save_state blocks the training loop, blocking vs asynchronous, and load speed.

usage: python bench/bench_stall.py [--params 100e6] [--rounds 3] [--dir DIR] [--smoke] [--json OUT]

A ~100M-parameter model (24 x ``Linear(4096, 4096)``) with AdamW state (about 1.2 GB). Each
round, interleaved in the same directory:

* disk: the same number of bytes written sequentially in 64 MiB blocks + fsync (what
  ``dd bs=64M conv=fsync`` measures);
* blocking ``save_state``: the whole call blocks;
* ``save_state(async_save=True)``: the time until it returns (the stall: staging into CPU memory)
  and until ``wait_for_checkpoint()`` returns (written, fsynced, published); write throughput =
  bytes / (completion - return). Round 1's async save allocates the staging buffers, later rounds
  reuse them (steady state of a run that saves periodically);
* ``save_state(async_save="overlap")``: the same, with the weights and optimizer state copied by the
  background thread while the next training step's forward and backward run; the stall is the
  time until it returns plus the time that step's ``optimizer.step()`` waited for the copy
  (``checkpoints.saves.guard.waited``). An asynchronous save is followed by one training step
  (batch 8), timed against the median of three steps without a save; the write throughput is
  measured once with the writer alone (``async_save=True``, no step) and once beside that step;
* loads, every file dropped from the page cache first: ``load_state``; ``torch.load(weights_only=True)``
  of one ``torch.save`` file of model + optimizer state dicts, then ``load_state_dict``; and
  ``safetensors.torch.load_file`` of the model and of the optimizer's flattened tensors, then
  ``load_state_dict``. ``load_file`` maps the file and reads a page only when it is first touched, and
  the optimizer keeps the mapped tensors as its state (no copy), so the timed block also reads every
  optimizer tensor once (a sum): without it the optimizer's bytes (2/3 of the state) would be read
  later, by the first optimizer step, outside the timed block.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from bench_checkpoint import build, disk_write, drop_cache

from accel.checkpoint.atomic import fsync_dir


def flat_optimizer(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    sd = opt.state_dict()
    return {f"{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items() if isinstance(v, torch.Tensor)}


def unflat_optimizer(opt: torch.optim.Optimizer, flat: dict[str, torch.Tensor]) -> None:
    sd = opt.state_dict()
    for name, tensor in flat.items():
        i, k = name.split(".", 1)
        sd["state"][int(i)][k] = tensor
    opt.load_state_dict(sd)


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def train_step(acc: Any, model: Any, opt: Any) -> float:
    """One forward + backward + AdamW step of a batch of 8; its wall time."""
    start = time.perf_counter()
    x = torch.randn(8, 4096)
    acc.backward(model(x).pow(2).mean())
    opt.step()
    opt.zero_grad()
    return time.perf_counter() - start


def async_save(acc: Any, model: Any, opt: Any, ck: Path, mode: bool | str, step: bool) -> dict[str, float]:
    """An asynchronous save, with one training step right after it (as a loop would go on) or none."""
    start = time.perf_counter()
    acc.save_state(ck, async_save=mode)
    returned = time.perf_counter()
    step_s = train_step(acc, model, opt) if step else 0.0
    waited = acc.checkpoints.saves.guard.waited if mode == "overlap" else 0.0
    acc.wait_for_checkpoint()
    done = time.perf_counter()
    return {"returned": returned - start, "waited": waited, "next_step": step_s, "write": done - returned}


def one_round(acc: Any, model: Any, opt: Any, root: Path, r: int) -> dict[str, float]:
    inner, raw_opt = acc.unwrap_model(model), opt.optimizer
    out: dict[str, float] = {}
    ck = root / f"ckpt{r}"
    out["blocking_save"] = timed(lambda: acc.save_state(ck))
    size = sum(p.stat().st_size for p in ck.rglob("*") if p.is_file())
    shutil.rmtree(ck)
    out["disk_write"] = disk_write(root / "raw.bin", size)
    (root / "raw.bin").unlink()
    out["step"] = statistics.median(train_step(acc, model, opt) for _ in range(3))
    # the writer alone (its throughput against the disk's), then each mode with a training step beside it
    for mode, key, step in ((True, "async", False), (True, "async_step", True), ("overlap", "overlap", True)):
        shutil.rmtree(ck, ignore_errors=True)
        out |= {f"{key}_{k}": v for k, v in async_save(acc, model, opt, ck, mode, step).items()}
    out["async_blocked"] = out["async_returned"]
    out["overlap_blocked"] = out["overlap_returned"] + out["overlap_waited"]
    drop_cache(ck)
    out["load_state"] = timed(lambda: acc.load_state(ck))
    pt = root / "state.pt"
    torch.save({"model": inner.state_dict(), "optimizer": raw_opt.state_dict()}, pt)
    drop_cache(pt)

    def torch_load() -> None:
        state = torch.load(pt, weights_only=True)
        inner.load_state_dict(state["model"])
        raw_opt.load_state_dict(state["optimizer"])

    out["torch_load"] = timed(torch_load)
    pt.unlink()
    sm, so = root / "model.safetensors", root / "optimizer.safetensors"
    safetensors.torch.save_file(inner.state_dict(), str(sm))
    safetensors.torch.save_file(flat_optimizer(raw_opt), str(so))
    fsync_dir(root)
    drop_cache(sm), drop_cache(so)

    def st_load() -> None:
        inner.load_state_dict(safetensors.torch.load_file(sm))
        flat = safetensors.torch.load_file(so)
        unflat_optimizer(raw_opt, flat)
        for tensor in flat.values():  # fault the mapped pages in, as an eager load would have read them
            tensor.sum()

    out["safetensors_load"] = timed(st_load)
    sm.unlink(), so.unlink()
    shutil.rmtree(ck)
    out["bytes"] = size
    return out


def table(data: dict[str, Any]) -> str:
    rounds = data["rounds"]
    mb = rounds[0]["bytes"] / 1e6

    def col(key: str) -> list[float]:
        return [r[key] for r in rounds]

    steady = rounds[1:] or rounds
    blocked = statistics.median(r["async_blocked"] for r in steady)
    overlapped = statistics.median(r["overlap_blocked"] for r in steady)
    blocking = statistics.median(col("blocking_save"))
    disk = statistics.median(mb / r["disk_write"] for r in rounds)
    write = statistics.median(mb / r["async_write"] for r in rounds)
    load_s = statistics.median(col("load_state"))
    steady_blocked = common.spread([r["async_blocked"] for r in steady], "{:.3f}")
    disk_spread = common.spread([mb / r["disk_write"] for r in rounds])
    over = {k: common.spread([r[f"overlap_{k}"] for r in steady], "{:.3f}") for k in ("returned", "waited", "blocked")}
    overlap_mbs = statistics.median(mb / r["overlap_write"] for r in rounds)
    lines = [
        "| measurement | median [min-max] | note |",
        "|---|---|---|",
        f"| blocking `save_state` (s) | {common.spread(col('blocking_save'), '{:.2f}')} | {mb / blocking:.0f} MB/s |",
        f"| async: `save_state` returns, first save (s) | {rounds[0]['async_blocked']:.3f} | "
        "allocates the staging buffers |",
        f"| async: `save_state` returns, later saves (s) | {steady_blocked} | "
        f"**{blocked / blocking:.1%} of the blocking save** (target <= 10 %) |",
        f"| async: return -> published (s) | {common.spread(col('async_write'), '{:.2f}')} | "
        f"{write:.0f} MB/s write throughput |",
        f"| overlap: `save_state` returns, later saves (s) | "
        f"{over['returned']} | the weights are copied in the background |",
        f"| overlap: the next `optimizer.step()` waits for the copy (s) | "
        f"{over['waited']} | after forward + backward ran during it |",
        f"| overlap: blocked = returns + wait (s) | {over['blocked']} | "
        f"**{overlapped / blocking:.1%} of the blocking save** (target <= 10 %) |",
        f"| async, a training step beside the writer: return -> published (s) | "
        f"{common.spread(col('async_step_write'), '{:.2f}')} | "
        f"{statistics.median(mb / r['async_step_write'] for r in rounds):.0f} MB/s "
        "(the step and the writer share 2 cores) |",
        f"| overlap, the same: return -> published (s) | {common.spread(col('overlap_write'), '{:.2f}')} | "
        f"{overlap_mbs:.0f} MB/s, the deferred copy included |",
        f"| a training step alone (batch 8, forward + backward + AdamW) (s) | "
        f"{common.spread(col('step'), '{:.3f}')} | |",
        f"| the step right after `save_state`: async / overlap (s) | "
        f"{statistics.median(col('async_step_next_step')):.3f} / {statistics.median(col('overlap_next_step')):.3f} | "
        "the writer thread shares the 2 cores |",
        f"| disk: sequential write + fsync, same bytes (MB/s) | {disk_spread} | "
        f"async write = **{write / disk:.0%} of the disk** (target >= 80 %) |",
        f"| `load_state`, cold cache (s) | {common.spread(col('load_state'), '{:.2f}')} | {mb / load_s:.0f} MB/s |",
        f"| `torch.load(weights_only=True)` + `load_state_dict` (s) | {common.spread(col('torch_load'), '{:.2f}')} | "
        f"load_state / torch.load = {load_s / statistics.median(col('torch_load')):.2f} |",
        f"| safetensors `load_file` + `load_state_dict` (s) | {common.spread(col('safetensors_load'), '{:.2f}')} | "
        f"load_state / safetensors = {load_s / statistics.median(col('safetensors_load')):.2f} |",
    ]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=float, default=100e6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    params, rounds = (4e6, 2) if args.smoke else (args.params, args.rounds)
    root = Path(tempfile.mkdtemp(prefix="bench-stall-", dir=args.dir or Path.cwd()))
    load = [common.load()]
    try:
        acc, model, opt = build(params)
        n = sum(p.numel() for p in model.parameters())
        results = []
        for r in range(rounds):
            results.append(one_round(acc, model, opt, root, r))
            load.append(common.load())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    data = {"params": n, "rounds": results, "load": load}
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    print(f"{n / 1e6:.1f}M parameters + AdamW, {results[0]['bytes'] / 1e6:.0f} MB; {rounds} rounds; "
          f"load {common.load_range(load)}\n")  # fmt: skip
    print(table(data))


if __name__ == "__main__":
    main()
