"""The container layer: cold build, image size, and `docker compose run train` -> first step vs the host.

usage: python bench/bench_containers.py [--rounds 5] [--image accel:py3.11-cpu-bench] [--no-build] [--smoke]

* cold build: ``docker build --no-cache`` of the py3.11 CPU cell (the runtime target) with the
  wheelhouse already filled (``python3 docker/bootstrap.py wheels``) and the base image present;
* size: the image, its base image, the venv inside it (``du``), against a bare venv holding only
  ``torch==2.13.0`` made on the host from the same wheels; overhead = image - base - bare venv;
* launch -> first optimizer step of the same 2-rank gloo job (``bench/cli_first_step.py``):
  ``docker compose run --rm train`` (compose project ``accel-bench``, the bench folder mounted as
  the code folder, the image's baked 2-process config) against ``accel launch --num_processes 2``
  on the host, interleaved round by round. The container writes the wall time of the end of
  rank 0's first step into the mounted output folder; host and container share the clock.
``--smoke`` only checks that the Docker CLI answers and prints what it would run.
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
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402

PROJECT = "accel-bench"


def sh(cmd: list[str], env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if check and proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


def cold_build(image: str) -> float:
    start = time.perf_counter()
    sh(["docker", "build", "--no-cache", "--network", "host", "--target", "runtime", "-t", image, "."])
    return time.perf_counter() - start


def image_size(image: str) -> int:
    return int(sh(["docker", "image", "inspect", "--format", "{{.Size}}", image]).stdout.strip())


def venv_size_in(image: str) -> int:
    out = sh(["docker", "run", "--rm", "--entrypoint", "du", image, "-sb", "/opt/accel/venv"]).stdout
    return int(out.split()[0])


def bare_torch_venv(tmp: Path) -> int:
    """Bytes of a fresh venv with only torch (and its dependencies) from the cell's wheelhouse."""
    venv = tmp / "bare"
    sh([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    wheels = ROOT / ".cache" / "wheelhouse" / "py3.11-cpu"
    target = next((venv / "lib").glob("python*")) / "site-packages"
    sh([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels),
        "--target", str(target), "torch==2.13.0+cpu"])  # fmt: skip
    return sum(p.stat().st_size for p in venv.rglob("*") if p.is_file() and not p.is_symlink())


def first_step(cmd: list[str], marker: Path, env: dict[str, str]) -> float:
    marker.unlink(missing_ok=True)
    start = time.time()
    sh(cmd, env=env)
    return float(marker.read_text()) - start


def first_steps(image: str, rounds: int, tmp: Path) -> dict[str, list[float]]:
    out = tmp / "output"
    out.mkdir(mode=0o777)
    os.chmod(out, 0o777)
    env = dict(os.environ, ACCEL_IMAGE=image, ACCEL_OUTPUT_DIR=str(out), ACCEL_CODE_DIR=str(HERE), PYTHONPATH=str(ROOT))
    compose = ["docker", "compose", "-p", PROJECT, "run", "--rm", "train", "cli_first_step.py", "/output/first_step"]
    host = [sys.executable, "-m", "accel", "launch", "--quiet", "--num_processes", "2", str(HERE / "cli_first_step.py")]
    cmds = {"compose": (compose, out / "first_step"), "host": ([*host, str(tmp / "first_step")], tmp / "first_step")}
    first_step(*cmds["compose"], env)  # warm the page cache for the image's layers and the host's files
    first_step(*cmds["host"], env)
    result: dict[str, list[float]] = {name: [] for name in cmds}
    for r in range(rounds):
        for name in list(cmds) if r % 2 == 0 else list(reversed(cmds)):
            result[name].append(first_step(*cmds[name], env))
    sh(["docker", "compose", "-p", PROJECT, "down", "--remove-orphans"], env=env, check=False)
    return result


def table(data: dict[str, Any]) -> str:
    mb = 1e6
    over = data["image"] - data["base"] - data["bare_venv"]
    f = data["first"]
    ratio = statistics.median(f["compose"]) / statistics.median(f["host"])
    paired = statistics.median(c / h for c, h in zip(f["compose"], f["host"], strict=True))
    return "\n".join([
        "| measurement | value |",
        "|---|---|",
        f"| cold build, py3.11 CPU cell, warm wheelhouse (s) | {data['build']:.0f} |" if data.get("build") else
        "| cold build (s) | not run (--no-build) |",
        f"| image size (MB) | {data['image'] / mb:.0f} |",
        f"| base image `python:3.11-slim-bookworm` (MB) | {data['base'] / mb:.0f} |",
        f"| venv inside the image (MB) | {data['venv'] / mb:.0f} |",
        f"| bare venv with only torch 2.13.0+cpu, same wheels (MB) | {data['bare_venv'] / mb:.0f} |",
        f"| overhead: image - base - bare torch venv (MB) | {over / mb:+.0f} |",
        f"| `docker compose run train` -> first step (s) | {common.spread(f['compose'], '{:.2f}')} |",
        f"| same job on the host, `accel launch` (s) | {common.spread(f['host'], '{:.2f}')} |",
        f"| ratio container / host | {ratio:.3f} (paired median {paired:.3f}) |",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image", default="accel:py3.11-cpu-bench")
    parser.add_argument("--no-build", action="store_true", help="use the image as it is (no cold build)")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.smoke:
        version = sh(["docker", "version", "--format", "{{.Server.Version}}"], check=False).stdout.strip()
        print(f"containers (smoke): docker engine {version or 'not reachable'}; would build {args.image}")
        return
    load = [common.load()]
    data: dict[str, Any] = {"build": None if args.no_build else cold_build(args.image)}
    load.append(common.load())
    with tempfile.TemporaryDirectory(dir=ROOT / ".cache") as tmp:
        data["bare_venv"] = bare_torch_venv(Path(tmp))
        data["first"] = first_steps(args.image, args.rounds, Path(tmp))
        shutil.rmtree(Path(tmp) / "output", ignore_errors=True)
    load.append(common.load())
    data |= {"image": image_size(args.image), "base": image_size("python:3.11-slim-bookworm")}
    data |= {"venv": venv_size_in(args.image), "load": load}
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    print(f"containers: {args.rounds} interleaved rounds; load {common.load_range(load)}\n")
    print(table(data))


if __name__ == "__main__":
    main()
