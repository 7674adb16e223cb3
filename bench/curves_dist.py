"""Cost curves over world sizes 1, 2, 4 (CPU, gloo): gather_for_metrics, prepare(), launch -> first step.

usage: python bench/curves_dist.py [--rounds 3] [--smoke] [--json OUT]

* gather_for_metrics vs tensor size at each world size, against ``all_gather_single``, and
  prepare() vs model size against a hand-made ``DistributedDataParallel``: one ``accel launch
  --num_processes W`` of ``curves_dist_worker.py`` per world size;
* launch -> first optimizer step (``cli_first_step.py``) under ``torchrun --standalone`` and
  ``accel launch`` for 1, 2 and 4 processes, interleaved round by round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402
from bench_cli import WORKER as FIRST_STEP  # noqa: E402
from bench_cli import _timed  # noqa: E402

WORLDS = [1, 2, 4]
ENV = dict(os.environ, PYTHONPATH=str(HERE.parent))


def accel_launch(nproc: int) -> list[str]:
    return [sys.executable, "-m", "accel", "launch", "--quiet", "--cpu", "--num_processes", str(nproc)]


def torchrun(nproc: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]


def collectives(worlds: list[int], smoke: bool, tmp: Path) -> dict[int, Any]:
    result = {}
    for world in worlds:
        out = tmp / f"dist{world}.json"
        cmd = [*accel_launch(world), str(HERE / "curves_dist_worker.py"), "--out", str(out)]
        proc = subprocess.run(cmd + (["--smoke"] if smoke else []), capture_output=True, text=True, env=ENV)
        if proc.returncode != 0:
            raise SystemExit(f"curves_dist_worker failed on {world} processes:\n{proc.stderr[-3000:]}")
        result[world] = json.loads(out.read_text())
    return result


def first_steps(worlds: list[int], rounds: int, tmp: Path) -> dict[str, dict[int, list[float]]]:
    marker = tmp / "first_step"
    launchers = {"torchrun": torchrun, "accel": accel_launch}
    result: dict[str, dict[int, list[float]]] = {name: {w: [] for w in worlds} for name in launchers}
    _timed([*accel_launch(2), str(FIRST_STEP), str(marker)], marker)  # warm the file cache
    for r in range(rounds):
        for world in worlds:
            names = list(launchers) if (r + world) % 2 == 0 else list(reversed(launchers))
            for name in names:
                first, _total = _timed([*launchers[name](world), str(FIRST_STEP), str(marker)], marker)
                result[name][world].append(first)
    return result


def tables(data: dict[str, Any]) -> str:
    lines = ["| elements per rank | " + " | ".join(f"{w} proc: accel ms (raw)" for w in data["gather"]) + " |"]
    lines.append("|---" * (len(data["gather"]) + 1) + "|")
    sizes = next(iter(data["gather"].values()))["gather"]
    for n in sizes:
        cells = [
            f"{d['gather'][n]['accel'] * 1e3:.2f} ({d['gather'][n]['raw'] * 1e3:.2f})" for d in data["gather"].values()
        ]
        lines.append(f"| {int(n):,} | " + " | ".join(cells) + " |")
    lines += ["", "| parameters | " + " | ".join(f"{w} proc: prepare s (raw)" for w in data["gather"]) + " |"]
    lines.append("|---" * (len(data["gather"]) + 1) + "|")
    for p in next(iter(data["gather"].values()))["prepare"]:
        cells = [f"{d['prepare'][p]['accel']:.3f} ({d['prepare'][p]['raw']:.3f})" for d in data["gather"].values()]
        lines.append(f"| {float(p) / 1e6:.0f}M | " + " | ".join(cells) + " |")
    lines += ["", "| processes | torchrun s | accel launch s | ratio |", "|---|---|---|---|"]
    for w in data["first"]["accel"]:
        t, a = data["first"]["torchrun"][w], data["first"]["accel"][w]
        ratio = statistics.median(a) / statistics.median(t)
        lines.append(f"| {w} | {common.spread(t, '{:.2f}')} | {common.spread(a, '{:.2f}')} | {ratio:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    worlds = [1, 2] if args.smoke else WORLDS
    load = [common.load()]
    with tempfile.TemporaryDirectory() as tmp:
        gather = collectives(worlds, args.smoke, Path(tmp))
        load.append(common.load())
        first = first_steps(worlds, 1 if args.smoke else args.rounds, Path(tmp))
        load.append(common.load())
    data = json.loads(json.dumps({"gather": gather, "first": first, "load": load}))  # str keys, as in a file
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    print(f"load {common.load_range(load)}\n")
    print(tables(data))


if __name__ == "__main__":
    main()
