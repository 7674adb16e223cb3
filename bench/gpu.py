"""The GPU row: mixed-precision steps, a CUDA checkpoint round trip, and the CUDA image (one GPU, < 5 min).

usage: python bench/gpu.py [--out DIR] [--smoke] [--device cuda|cpu]

On one GPU, for a ~100M-parameter model (24 x ``Linear(2048, 2048)`` + GELU, batch 256, AdamW):

* bf16 (autocast) and fp16 (autocast + ``GradScaler``) steps under accel against the same loop
  written in plain PyTorch, blocks of steps interleaved in one process (CUDA-synchronised at block
  ends); median ms per step, ratio (target <= 1.02);
* ``save_state`` blocking and ``save_state(async_save=True)`` (time until it returns, and until
  ``wait_for_checkpoint()``), then ``load_state``, against ``torch.save`` / ``torch.load`` of the
  same model + optimizer state; the loaded weights must equal the saved ones;
* when ``docker info`` lists the nvidia runtime and ``accel:py3.11-cuda`` exists: the image's
  one-process job with ``--gpus all`` (wall time and exit status).

Writes ``gpu.md`` and ``gpu.json`` to ``--out`` (default: ``$OUT`` if set, else ``bench/results``).
``--device cpu --smoke`` runs the same code paths on the CPU with a small model (a check of the
script itself, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

from accel import Accelerator  # noqa: E402


def model_of(width: int, depth: int) -> torch.nn.Module:
    layers: list[torch.nn.Module] = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.GELU()]
    return torch.nn.Sequential(*layers)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(precision: str, device: torch.device, width: int, depth: int, batch: int) -> Callable[[], None]:
    torch.manual_seed(0)
    model = model_of(width, depth).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    x = torch.randn(batch, width, device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype):
            loss = model(x).float().pow(2).mean()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        opt.zero_grad()

    return step


def accel_loop(precision: str, device: torch.device, width: int, depth: int, batch: int) -> tuple[Any, ...]:
    torch.manual_seed(0)
    acc = Accelerator(mixed_precision=precision, cpu=device.type == "cpu")
    model = model_of(width, depth)
    model, opt = acc.prepare(model, torch.optim.AdamW(model.parameters(), lr=1e-4))
    x = torch.randn(batch, width, device=acc.device)

    def step() -> None:
        loss = model(x).float().pow(2).mean()
        acc.backward(loss)
        opt.step()
        opt.zero_grad()

    return step, acc, model, opt


def steps(device: torch.device, args: argparse.Namespace) -> tuple[dict[str, Any], tuple[Any, ...]]:
    result, keep = {}, ()
    for precision in ("bf16", "fp16"):
        if device.type == "cpu" and precision == "fp16":
            continue  # fp16 autocast + scaler is a GPU path
        plain = plain_loop(precision, device, args.width, args.depth, args.batch)
        framework, *keep = accel_loop(precision, device, args.width, args.depth, args.batch)
        loops = {"plain": plain, "accel": framework}
        samples: dict[str, list[float]] = {k: [] for k in loops}
        for fn in loops.values():
            for _ in range(3):
                fn()
        for block in range(args.blocks):
            for name in ["plain", "accel"] if block % 2 == 0 else ["accel", "plain"]:
                sync(device)
                start = time.perf_counter()
                for _ in range(args.steps):
                    loops[name]()
                sync(device)
                samples[name].append((time.perf_counter() - start) / args.steps * 1e3)
        med = {k: statistics.median(v) for k, v in samples.items()}
        result[precision] = {"ms": med, "samples": samples, "ratio": med["accel"] / med["plain"]}
    return result, tuple(keep)


def checkpoint(acc: Any, model: Any, opt: Any, root: Path) -> dict[str, float]:
    inner = acc.unwrap_model(model)
    before = {k: v.detach().clone() for k, v in inner.state_dict().items()}
    out: dict[str, float] = {}
    start = time.perf_counter()
    acc.save_state(root / "blocking")
    out["blocking_save_s"] = time.perf_counter() - start
    start = time.perf_counter()
    acc.save_state(root / "async", async_save=True)
    out["async_blocked_s"] = time.perf_counter() - start
    acc.wait_for_checkpoint()
    out["async_total_s"] = time.perf_counter() - start
    with torch.no_grad():
        for p in inner.parameters():
            p.add_(1.0)
    start = time.perf_counter()
    acc.load_state(root / "async")
    sync(acc.device)
    out["load_state_s"] = time.perf_counter() - start
    out["round_trip_exact"] = float(all(torch.equal(before[k], v) for k, v in inner.state_dict().items()))
    pt = root / "raw.pt"
    start = time.perf_counter()
    torch.save({"model": inner.state_dict(), "optimizer": opt.optimizer.state_dict()}, pt)
    out["torch_save_s"] = time.perf_counter() - start
    start = time.perf_counter()
    state = torch.load(pt, weights_only=True, map_location=acc.device)
    inner.load_state_dict(state["model"])
    opt.optimizer.load_state_dict(state["optimizer"])
    sync(acc.device)
    out["torch_load_s"] = time.perf_counter() - start
    out["bytes"] = sum(p.stat().st_size for p in (root / "async").rglob("*") if p.is_file())
    return out


def container() -> dict[str, Any]:
    info = subprocess.run(["docker", "info", "--format", "{{json .Runtimes}}"], capture_output=True, text=True)
    if info.returncode != 0 or "nvidia" not in info.stdout:
        return {"status": "not run: no Docker engine with the nvidia runtime on this machine"}
    image = subprocess.run(["docker", "image", "inspect", "accel:py3.11-cuda"], capture_output=True)
    if image.returncode != 0:
        return {"status": "not run: image accel:py3.11-cuda is not built on this machine"}
    start = time.perf_counter()
    cmd = ["docker", "run", "--rm", "--gpus", "all", "--shm-size", "2g", "accel:py3.11-cuda"]
    run = subprocess.run([*cmd, "--num_processes", "1", "/opt/accel/example/train.py", "--output_dir", "/tmp/out"],
                         capture_output=True, text=True, timeout=240)  # fmt: skip
    return {"status": f"exit {run.returncode}", "seconds": time.perf_counter() - start, "tail": run.stderr[-500:]}


def table(data: dict[str, Any]) -> str:
    lines = [
        f"Machine: {data['machine']}",
        "",
        "| precision | plain ms/step | accel ms/step | ratio |",
        "|---|---|---|---|",
    ]
    for precision, row in data["steps"].items():
        lines.append(f"| {precision} | {row['ms']['plain']:.2f} | {row['ms']['accel']:.2f} | {row['ratio']:.3f} |")
    c = data["checkpoint"]
    lines += ["", "| checkpoint | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in c.items() if k != "bytes"]
    lines += ["", f"CUDA image, 1 process, `--gpus all`: {data['container']['status']}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or HERE / "results"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench/gpu.py: no CUDA device here (use --device cpu --smoke to check the script)")
    small = args.smoke or device.type == "cpu"
    args.width, args.depth, args.batch = (256, 4, 32) if small else (2048, 24, 256)
    args.blocks, args.steps = (2, 2) if small else (7, 20)
    data: dict[str, Any] = {"machine": common.machine()}
    data["steps"], (acc, model, opt) = steps(device, args)
    root = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    try:
        data["checkpoint"] = checkpoint(acc, model, opt, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    data["container"] = {"status": "skipped (smoke)"} if small else container()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(data, indent=1))
    (args.out / "gpu.md").write_text(table(data) + "\n")
    print(table(data))


if __name__ == "__main__":
    main()
