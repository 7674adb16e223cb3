"""Training-step overhead and import time: accel and Accelerate against plain PyTorch, as ratios.

Each configuration runs in fresh processes that alternate blocks of the plain loop and the
framework's loop (so both share the process, the allocator and the CPU state); accel and the
Accelerate peer are interleaved round by round. Accelerate lives in its own virtual environment
(``--peer-python``, default the venv of :mod:`peer`; make it with ``python bench/peer.py --create``),
never in accel's dependencies.

    python bench/bench_core.py [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer  # noqa: E402

WORKER = Path(__file__).resolve().parent / "core_worker.py"
CONFIGS = [
    ("tiny", 1, "no"),
    ("tiny", 4, "no"),
    ("tiny", 1, "bf16"),
    ("mlp", 1, "no"),
    ("mlp", 4, "no"),
    ("mlp", 1, "bf16"),
]


def run_worker(python: str, impl: str, model: str, accum: int, precision: str, blocks: int) -> dict[str, float]:
    cmd = [python, str(WORKER), "--impl", impl, "--model", model, "--accum", str(accum)]
    cmd += ["--precision", precision, "--blocks", str(blocks)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def import_times(python: str, statements: list[str], repeat: int) -> list[float]:
    """Median wall time of a fresh interpreter running each statement, the statements interleaved."""
    samples: dict[str, list[float]] = {st: [] for st in statements}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for _ in range(repeat):
        for statement in statements:
            start = time.perf_counter()
            subprocess.run([python, "-c", statement], check=True, env=env)
            samples[statement].append(time.perf_counter() - start)
    return [statistics.median(samples[st]) for st in statements]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=15)
    parser.add_argument("--peer-python", default=peer.python() or "")
    parser.add_argument("--quick", action="store_true", help="one round, tiny model only")
    args = parser.parse_args()
    peer_python = args.peer_python if args.peer_python and Path(args.peer_python).exists() else None
    impls = [("accel", sys.executable)] + ([("accelerate", peer_python)] if peer_python else [])
    configs = CONFIGS[:1] if args.quick else CONFIGS
    rounds = 1 if args.quick else args.rounds
    results: dict[tuple[str, str, int, str], list[dict[str, float]]] = {}
    for _ in range(rounds):
        for model, accum, precision in configs:
            for impl, python in impls:
                key = (impl, model, accum, precision)
                blocks = args.blocks if model == "tiny" else max(args.blocks // 2, 3)
                results.setdefault(key, []).append(run_worker(python, impl, model, accum, precision, blocks))
    print(f"Training step (median µs/step; {rounds} rounds x {args.blocks} blocks; 1 thread)\n")
    print("| model | accum | precision | impl | plain µs | impl µs | overhead µs | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for (impl, model, accum, precision), runs in results.items():
        raw = statistics.median(r["raw_us"] for r in runs)
        own = statistics.median(r["impl_us"] for r in runs)
        print(
            f"| {model} | {accum} | {precision} | {impl} | {raw:.1f} | {own:.1f} | {own - raw:+.1f} | {own / raw:.3f} |"
        )
    repeat = 3 if args.quick else 15
    torch_s, accel_s = import_times(sys.executable, ["import torch", "from accel import Accelerator"], repeat)
    print("\nImport (median wall time of a fresh interpreter)\n")
    print("| statement | seconds | ratio to import torch |")
    print("|---|---|---|")
    print(f"| import torch | {torch_s:.3f} | 1.000 |")
    print(f"| from accel import Accelerator | {accel_s:.3f} | {accel_s / torch_s:.3f} |")
    if peer_python:
        peer_torch, peer_s = import_times(peer_python, ["import torch", "import accelerate"], repeat)
        print(f"| import accelerate (peer venv) | {peer_s:.3f} | {peer_s / peer_torch:.3f} |")


if __name__ == "__main__":
    main()
