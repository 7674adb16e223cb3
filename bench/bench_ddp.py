"""2-process DDP on CPU (gloo), steady state: raw torchrun + DDP vs ``accel launch`` vs ``accelerate launch``.

usage: python bench/bench_ddp.py [--rounds 3] [--blocks 7] [--smoke] [--json OUT]

Each round launches ``bench/ddp_worker.py`` four times, the order rotating round by round:
``torchrun --standalone --nproc-per-node 2`` with the plain DDP loop (the limit), ``accel launch
--num_processes 2`` with accel's loop, and ``accelerate launch --cpu --multi_gpu --num_processes 2``
(from the peer venv, :mod:`bench.peer`) with Accelerate's loop. Every launch measures every
configuration (tiny ``Linear(10, 1)`` and the 4 x 1024 MLP, accumulation 1 and 4). Inside the
framework launches the plain DDP loop also runs, micro-step by micro-step interleaved, on the same
process group: the in-process ratio isolates the library from launcher and machine drift. A fourth
launch (torchrun, the plain loop against a second copy of itself) is the control: its in-process
ratio is the method's noise floor on this machine. Every rank runs one intra-op
thread (``OMP_NUM_THREADS=1``, as torchrun sets for several ranks).
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
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402
import peer  # noqa: E402

WORKER = HERE / "ddp_worker.py"
CONFIGS = ["tiny:1", "tiny:4", "mlp:1", "mlp:4"]


def commands(peer_python: str | None) -> dict[str, list[str]]:
    py = sys.executable
    cmds = {
        "raw": [py, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"],
        "twin": [py, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"],
        "accel": [py, "-m", "accel", "launch", "--quiet", "--num_processes", "2"],
    }
    if peer_python:
        cmds["accelerate"] = [
            peer_python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        ]  # fmt: skip
    return cmds


def launch(cmd: list[str], impl: str, configs: list[str], blocks: int, out: Path) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    argv = [*cmd, str(WORKER), "--impl", impl, "--out", str(out), "--blocks", str(blocks)]
    argv += ["--configs", ",".join(configs)]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{impl} launch failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return dict(json.loads(out.read_text()))


def run(rounds: int, blocks: int, configs: list[str], peer_python: str | None) -> dict[str, Any]:
    cmds = commands(peer_python)
    names = list(cmds)
    per: dict[str, dict[str, dict[str, list[float]]]] = {n: {c: {} for c in configs} for n in names}
    loads: list[float] = [common.load()]
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for impl in order:
                res = launch(cmds[impl], impl, configs, blocks, Path(tmp) / f"{impl}.json")
                for c in configs:
                    for loop, v in res[c].items():
                        per[impl][c].setdefault(loop, []).append(v["median"])
            loads.append(common.load())
    return {"rounds": rounds, "blocks": blocks, "per": per, "load": loads}


def table(data: dict[str, Any]) -> str:
    per = data["per"]
    lines = [
        "| model | accum | launcher + loop | µs / micro-step | ratio to raw | in-process ratio to plain DDP |",
        "|---|---|---|---|---|---|",
    ]
    for c in per["raw"]:
        model, accum = c.split(":")
        raw = statistics.median(per["raw"][c]["plain"])
        lines.append(f"| {model} | {accum} | torchrun + plain DDP (limit) | {common.spread(per['raw'][c]['plain'])} "
                     "| 1.000 | |")  # fmt: skip
        for impl in [n for n in per if n != "raw"]:
            own = per[impl][c]["framework"]
            paired = [f / p for f, p in zip(own, per[impl][c]["plain"], strict=True)]
            label = {
                "twin": "torchrun + plain DDP, 2nd copy (control)",
                "accel": "`accel launch` + accel",
                "accelerate": "`accelerate launch` + Accelerate",
            }[impl]
            lines.append(
                f"| {model} | {accum} | {label} | {common.spread(own)} | {statistics.median(own) / raw:.3f} "
                f"| {statistics.median(paired):.3f} [{min(paired):.3f}-{max(paired):.3f}] |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="one round, 2 blocks, tiny model only")
    parser.add_argument("--peer-python", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rounds, blocks, configs = (1, 2, ["tiny:1", "tiny:4"]) if args.smoke else (args.rounds, args.blocks, CONFIGS)
    data = run(rounds, blocks, configs, args.peer_python or peer.python())
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    print(f"DDP steady state, 2 CPU ranks: {rounds} rounds x {blocks} blocks; load {common.load_range(data['load'])}\n")
    print(table(data))


if __name__ == "__main__":
    main()
