"""CLI start-up and launch overhead: `accel --help`, and launch -> first training step vs plain torchrun.

usage: python bench/bench_cli.py [--rounds N] [--help-runs N]

`accel --help` is timed as a fresh process (the console script when installed, else `python -m
accel`). Launch overhead runs the same 2-process CPU (gloo) DDP script under `torchrun --standalone
--nproc-per-node 2` and `accel launch --num_processes 2`, interleaved round by round (the order
alternates) so that machine noise hits both alike, and measures the time from starting the command
to the end of rank 0's first optimizer step, and to the command's exit. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "cli_first_step.py"


def _timed(cmd: list[str], marker: Path | None = None) -> tuple[float, float]:
    """Run ``cmd``; return (seconds to the first step marker, seconds to exit)."""
    if marker is not None:
        marker.unlink(missing_ok=True)
    start = time.time()
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    end = time.time()
    if result.returncode != 0:
        raise SystemExit(f"benchmark command failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr}")
    first = float(marker.read_text()) - start if marker is not None else end - start
    return first, end - start


def _help_command() -> list[str]:
    script = shutil.which("accel") or str(Path(sys.executable).parent / "accel")
    return [script, "--help"] if Path(script).exists() else [sys.executable, "-m", "accel", "--help"]


def _summary(values: list[float], unit: float = 1.0, fmt: str = "{:.2f}") -> str:
    med, low, high = statistics.median(values), min(values), max(values)
    return f"{fmt.format(med * unit)} [{fmt.format(low * unit)}-{fmt.format(high * unit)}]"


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--help-runs", type=int, default=20)
    args = parser.parse_args()
    help_cmd = _help_command()
    _timed(help_cmd)  # warm the file cache
    helps = [_timed(help_cmd)[1] for _ in range(args.help_runs)]
    python_m = [_timed([sys.executable, "-m", "accel", "--help"])[1] for _ in range(args.help_runs)]
    bare = [_timed([sys.executable, "-c", "pass"])[1] for _ in range(args.help_runs)]

    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "first_step"
        commands = {
            "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"],
            "accel": [sys.executable, "-m", "accel", "launch", "--quiet", "--num_processes", "2"],
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        _timed([*commands["accel"], str(WORKER), str(marker)], marker)  # warm-up, not counted
        for round_index in range(args.rounds):
            order = list(commands) if round_index % 2 == 0 else list(reversed(commands))
            for name in order:
                results[name].append(_timed([*commands[name], str(WORKER), str(marker)], marker))

    first = {name: [r[0] for r in runs] for name, runs in results.items()}
    total = {name: [r[1] for r in runs] for name, runs in results.items()}
    ratio_first = statistics.median(first["accel"]) / statistics.median(first["torchrun"])
    ratio_total = statistics.median(total["accel"]) / statistics.median(total["torchrun"])
    paired = [a / t for a, t in zip(first["accel"], first["torchrun"], strict=True)]
    print(f"CLI and launch: {args.rounds} interleaved rounds, {args.help_runs} help runs; median [min-max]")
    print()
    print("| measurement | accel | torchrun | ratio accel/torchrun |")
    print("|---|---|---|---|")
    print(f"| `{Path(help_cmd[0]).name} --help` (ms) | {_summary(helps, 1000, '{:.0f}')} | | |")
    print(f"| `python -m accel --help` (ms) | {_summary(python_m, 1000, '{:.0f}')} | | |")
    print(f"| `python -c pass` (ms, interpreter floor) | {_summary(bare, 1000, '{:.0f}')} | | |")
    print(
        f"| launch -> first step, 2 CPU ranks (s) | {_summary(first['accel'])} | {_summary(first['torchrun'])} "
        f"| {ratio_first:.3f} (paired median {statistics.median(paired):.3f}) |"
    )
    exits = f"{_summary(total['accel'])} | {_summary(total['torchrun'])}"
    print(f"| launch -> exit, 2 CPU ranks (s) | {exits} | {ratio_total:.3f} |")


if __name__ == "__main__":
    main()
