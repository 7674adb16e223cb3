"""Build, measure and run each selected cell with docker-py; then write the report."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from accel.matrix import report
from accel.matrix.cells import probe_torch
from accel.matrix.model import Cell, Matrix, MatrixError, find_root, load

if TYPE_CHECKING:
    from docker import DockerClient

IMPORT_SAMPLES = 5
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LABEL = "org.accel.matrix"


@dataclass
class Outcome:
    """What the runner learned about one cell (a row of the report)."""

    cell: str
    python: str
    os: str
    libc: str
    variant: str
    torch: str
    status: str
    wheels: str = ""
    build_s: float | None = None
    install_s: float | None = None
    import_s: float | None = None
    image_bytes: int | None = None
    job_s: float | None = None
    notes: str = ""


class StageError(Exception):
    """A stage of a cell failed; ``stage`` names it in the status word."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


def log(message: str) -> None:
    sys.stdout.write(f"[matrix] {message}\n")
    sys.stdout.flush()


def outcome_for(cell: Cell, status: str, wheels: str = "", notes: str = "") -> Outcome:
    return Outcome(cell.id, cell.python, cell.os, cell.libc, cell.variant, cell.torch, status, wheels, notes=notes)


def not_built_reason(cell: Cell) -> str:
    if cell.variant == "cuda":
        return (
            "not built (not selected: the CUDA stack is ~3 GB to download and ~5.4 GB installed per cell; "
            f"select it with --cell {cell.id})"
        )
    return f"not built (not selected; select it with --cell {cell.id})"


def unavailable_status(cell: Cell) -> str:
    if cell.libc == "musl":
        return "unsupported (upstream: PyTorch publishes no musllinux wheel and no sdist)"
    return f"not built (no torch {cell.torch} wheel for {cell.abi} on the indexes this host reaches)"


def run_cell(client: DockerClient, matrix: Matrix, cell: Cell) -> Outcome:
    probe = probe_torch(cell)
    log(f"{cell.id}: {probe.detail}")
    if not probe.available:
        return outcome_for(cell, unavailable_status(cell), probe.detail)
    result = outcome_for(cell, "pass", probe.detail)
    try:
        bootstrap(matrix.root, cell)
        result.install_s = install_time(client, matrix.root, cell)
        result.build_s, result.image_bytes = build(client, matrix.root, cell)
        result.import_s = import_time(client, cell)
        result.job_s = two_process_job(client, cell)
    except StageError as exc:
        result.status = f"fail ({exc.stage}: {exc.reason})"
        if exc.stage == "base":
            result.status = f"not built ({exc.reason})"
    return result


def bootstrap(root: Path, cell: Cell) -> None:
    """Base images and wheelhouse via docker/bootstrap.py (the path users take)."""
    log(f"{cell.id}: bootstrap (base image, wheelhouse)")
    proc = subprocess.run(
        [sys.executable, "docker/bootstrap.py", "--cell", cell.id, "debian", "python", "wheels"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise StageError("base", f"base image or wheelhouse could not be made here: {tail[0][:200]}")


def install_time(client: DockerClient, root: Path, cell: Cell) -> float:
    """Seconds to fill a fresh venv from the wheelhouse, in the base image with no network."""
    script = (
        "import subprocess, sys, time\n"
        "subprocess.run([sys.executable, '-m', 'venv', '/tmp/v'], check=True)\n"
        "t = time.perf_counter()\n"
        "subprocess.run(['/tmp/v/bin/pip', 'install', '-q', '--no-index', '--find-links', '/wheels',\n"
        f"    '-r', '/req/requirements.txt', 'torch=={cell.torch}'], check=True)\n"
        "print(round(time.perf_counter() - t, 2))\n"
    )
    volumes = {
        str(root / ".cache" / "wheelhouse" / cell.id): {"bind": "/wheels", "mode": "ro"},
        str(root / "docker"): {"bind": "/req", "mode": "ro"},
    }
    out = run_container(client, cell.base, ["python3", "-c", script], "install", network_mode="none", volumes=volumes)
    seconds = float(out.strip().splitlines()[-1])
    log(f"{cell.id}: install {seconds:.1f} s")
    return seconds


def build(client: DockerClient, root: Path, cell: Cell) -> tuple[float, int]:
    import docker.errors

    from accel.matrix.report import git_revision

    log(f"{cell.id}: docker-py build of {cell.dockerfile} -> {cell.image}")
    args = {"PYTHON_VERSION": cell.python, "VARIANT": cell.variant, "TORCH_VERSION": cell.torch}
    args["VCS_REF"] = git_revision(root)
    args["WHEELHOUSE"] = f".cache/wheelhouse/{cell.id}"
    start = time.monotonic()
    try:
        with tempfile.TemporaryFile() as tar:
            write_context(root, cell, tar)
            image, _ = client.images.build(
                fileobj=tar,
                custom_context=True,
                dockerfile=cell.dockerfile,
                tag=cell.image,
                buildargs=args,
                target="runtime" if cell.dockerfile == "Dockerfile" else None,
                network_mode="host",
                rm=True,
                forcerm=True,
                pull=False,
                labels={LABEL: "1"},
            )
    except docker.errors.BuildError as exc:
        text = "".join(str(chunk.get("stream", "")) for chunk in exc.build_log)
        lines = [line.strip() for line in ANSI.sub("", text).splitlines() if line.strip()]
        tail = [line for line in lines if not line.startswith(("Removing intermediate", "---> "))][-2:]
        raise StageError("build", " / ".join(tail)[-240:]) from None
    seconds = time.monotonic() - start
    size = int(image.attrs["Size"])
    log(f"{cell.id}: built in {seconds:.1f} s, {size / 1e9:.3f} GB")
    return seconds, size


def write_context(root: Path, cell: Cell, tar: IO[bytes]) -> None:
    """The cell's build context (sources + only its own wheelhouse), written by docker/bootstrap.py."""
    spec = importlib.util.spec_from_file_location("accel_docker_bootstrap", root / "docker" / "bootstrap.py")
    if spec is None or spec.loader is None:
        raise StageError("build", "docker/bootstrap.py cannot be loaded")
    bootstrap_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bootstrap_module)
    raw = bootstrap_module.find_cell(bootstrap_module.load_matrix(), cell.id)
    bootstrap_module.write_context(raw, tar)
    tar.seek(0)


def import_time(client: DockerClient, cell: Cell) -> float:
    """Median wall time of ``import torch, accel`` over fresh interpreters in the image."""
    script = (
        "import json, subprocess, sys, time\n"
        "samples = []\n"
        f"for _ in range({IMPORT_SAMPLES}):\n"
        "    t = time.perf_counter()\n"
        "    subprocess.run([sys.executable, '-c', 'import torch, accel'], check=True)\n"
        "    samples.append(time.perf_counter() - t)\n"
        "print(json.dumps(samples))\n"
    )
    out = run_container(client, cell.image, ["python", "-c", script], "import", network_mode="none")
    samples = [float(s) for s in json.loads(out.strip().splitlines()[-1])]
    median = statistics.median(samples)
    log(f"{cell.id}: import torch, accel: median {median:.2f} s of {', '.join(f'{s:.2f}' for s in samples)}")
    return median


def two_process_job(client: DockerClient, cell: Cell) -> float:
    """The built-in example on 2 CPU processes; its metrics must say 2 processes."""
    with tempfile.TemporaryDirectory(prefix="accel-matrix-") as tmp:
        Path(tmp).chmod(0o777)
        command = ["--num_processes", "2", "--cpu", "--mixed_precision", "no"]
        command += ["/opt/accel/example/train.py", "--output_dir", "/output"]
        start = time.monotonic()
        run_container(
            client,
            cell.image,
            command,
            "job",
            network_mode="host",
            volumes={tmp: {"bind": "/output", "mode": "rw"}},
            shm_size="2g",
            init=True,
            use_entrypoint=True,
        )
        seconds = time.monotonic() - start
        metrics_file = Path(tmp) / "metrics.json"
        if not metrics_file.is_file():
            raise StageError("job", "the example wrote no metrics.json")
        metrics = json.loads(metrics_file.read_text())
        if metrics.get("num_processes") != 2:
            raise StageError("job", f"ran on {metrics.get('num_processes')} processes, not 2")
    log(f"{cell.id}: 2-process job in {seconds:.1f} s")
    return seconds


def run_container(
    client: DockerClient,
    image: str,
    command: list[str],
    stage: str,
    use_entrypoint: bool = False,
    timeout: float = 900,
    **kwargs: Any,
) -> str:
    """Run to completion; return stdout+stderr; raise StageError on a non-zero exit or a timeout."""
    import requests.exceptions

    if not use_entrypoint and image.startswith("accel:"):
        kwargs["entrypoint"] = []
    container = client.containers.run(image, command, detach=True, labels={LABEL: "1"}, **kwargs)
    try:
        try:
            status = container.wait(timeout=timeout)
        except requests.exceptions.ConnectionError:
            raise StageError(stage, f"no exit within {timeout:.0f} s") from None
        logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
        code = int(status.get("StatusCode", -1))
        if code != 0:
            tail = " | ".join(logs.strip().splitlines()[-3:])[-300:]
            raise StageError(stage, f"exit code {code}: {tail}")
        return logs
    finally:
        container.remove(force=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m accel.matrix", description="build and test the cell matrix")
    parser.add_argument("--cell", action="append", default=[], help="build this cell (repeatable)")
    parser.add_argument("--all", action="store_true", help="build every cell")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the accel checkout (default: cwd)")
    parser.add_argument("--no-report", action="store_true", help="print only; do not write COMPATIBILITY.*")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        matrix = load(find_root(args.root.resolve()))
        for cell_id in args.cell:
            matrix.find(cell_id)
    except MatrixError as exc:
        sys.stderr.write(f"accel.matrix: {exc}\n")
        return exc.exit_code
    selected = {c.id for c in matrix.cells if args.all or (c.id in args.cell if args.cell else c.ci)}
    import docker

    client = docker.from_env(timeout=900)
    outcomes: list[Outcome] = []
    for cell in matrix.cells:
        start = time.monotonic()
        if cell.id in selected:
            outcome = run_cell(client, matrix, cell)
        else:
            probe = probe_torch(cell)
            log(f"{cell.id}: {probe.detail}")
            outcome = outcome_for(cell, unavailable_status(cell) if not probe.available else not_built_reason(cell))
            outcome.wheels = probe.detail
        log(f"{cell.id}: {outcome.status} ({time.monotonic() - start:.1f} s)")
        outcomes.append(outcome)
    if not args.no_report:
        written = report.write(matrix.root, [asdict(o) for o in outcomes], client)
        log(f"wrote {', '.join(str(p.relative_to(matrix.root)) for p in written)}")
    failed = [o for o in outcomes if o.status.startswith("fail")]
    return 1 if failed else 0
