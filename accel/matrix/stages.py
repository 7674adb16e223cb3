"""What runs inside a cell's containers: install time, import time, the example job, the test suite, CUDA checks."""

from __future__ import annotations

import json
import statistics
import tempfile
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from accel.matrix.context import wheelhouse
from accel.matrix.engine import StageError, checked, run
from accel.matrix.model import Cell

if TYPE_CHECKING:
    from docker import DockerClient

IMPORT_SAMPLES = 5
SUITE_TIMEOUT_S = 3600
SHARDS = 4
# The suite a cell runs: everything but the container tests (no engine inside) and the long suite.
SUITE_ARGS = ("-p", "no:cacheprovider", "-m", "not docker", "-q", "--junitxml=/results/junit.xml")


@dataclass(frozen=True)
class SuiteResult:
    passed: int
    failed: int
    skipped: int
    failing: tuple[str, ...]
    seconds: float

    @property
    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


def install_time(client: DockerClient, root: Path, cell: Cell) -> float:
    """Seconds to fill a fresh venv from the wheelhouse as the image build does (the cell's lock,
    hash-checked, no index), in the base image, with no network."""
    lock = root / "docker" / "locks" / cell.id
    if (lock / "requirements.txt").is_file():
        args = "'--require-hashes', '--no-deps', '-r', '/req/requirements.txt'"
    else:
        lock, args = root / "docker", f"'-r', '/req/requirements.txt', 'torch=={cell.torch}'"
    script = (
        "import subprocess, sys, time\n"
        "subprocess.run([sys.executable, '-m', 'venv', '/tmp/v'], check=True)\n"
        "t = time.perf_counter()\n"
        f"subprocess.run(['/tmp/v/bin/pip', 'install', '-q', '--no-index', '--find-links', '/wheels', {args}],\n"
        "    check=True)\n"
        "print(round(time.perf_counter() - t, 2))\n"
    )
    volumes = {
        str(wheelhouse(root, cell)): {"bind": "/wheels", "mode": "ro"},
        str(lock): {"bind": "/req", "mode": "ro"},
    }
    code, logs, _ = run(client, cell.base, ["python3", "-c", script], "install", network_mode="none", volumes=volumes)
    return float(checked(code, logs, "install").strip().splitlines()[-1])


def import_time(client: DockerClient, image: str) -> float:
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
    code, logs, _ = run(client, image, ["python", "-c", script], "import", entrypoint=[], network_mode="none")
    samples = [float(s) for s in json.loads(checked(code, logs, "import").strip().splitlines()[-1])]
    return float(statistics.median(samples))


def torch_build(client: DockerClient, image: str) -> str:
    """The torch version inside the image, e.g. ``2.14.1+cu130``."""
    command = ["python", "-c", "import torch; print(torch.__version__)"]
    code, logs, _ = run(client, image, command, "import", entrypoint=[], network_mode="none")
    return checked(code, logs, "import").strip().splitlines()[-1]


def two_process_job(client: DockerClient, image: str) -> float:
    """The built-in example on 2 CPU processes through the entrypoint; its metrics must say 2."""
    with tempfile.TemporaryDirectory(prefix="accel-matrix-") as tmp:
        Path(tmp).chmod(0o777)
        command = ["--num_processes", "2", "--cpu", "--mixed_precision", "no"]
        command += ["/opt/accel/example/train.py", "--output_dir", "/output"]
        volumes = {tmp: {"bind": "/output", "mode": "rw"}}
        code, logs, seconds = run(
            client, image, command, "job", network_mode="host", volumes=volumes, shm_size="2g", init=True
        )
        checked(code, logs, "job")
        metrics_file = Path(tmp) / "metrics.json"
        if not metrics_file.is_file():
            raise StageError("job", "the example wrote no metrics.json")
        processes = json.loads(metrics_file.read_text()).get("num_processes")
        if processes != 2:
            raise StageError("job", f"ran on {processes} processes, not 2")
    return seconds


def shards(root: Path, count: int) -> list[list[str]]:
    """The suite's test files dealt round-robin into ``count`` shards (largest files first)."""
    files = sorted((root / "tests").glob("test_*.py"), key=lambda p: (-p.stat().st_size, p.name))
    dealt: list[list[str]] = [[] for _ in range(max(1, min(count, len(files))))]
    for number, path in enumerate(files):
        dealt[number % len(dealt)].append(f"tests/{path.name}")
    return dealt


def run_suite(
    client: DockerClient, root: Path, image: str, timeout: float = SUITE_TIMEOUT_S, parallel: int = SHARDS
) -> SuiteResult:
    """accel's own suite (unit + real gloo multi-process tests) in the image's dev target.

    The test files run as ``parallel`` pytest processes in containers side by side (each test
    uses free ports and its own temporary directory); their JUnit reports are added up.
    """
    with tempfile.TemporaryDirectory(prefix="accel-matrix-suite-") as tmp:
        Path(tmp).chmod(0o777)
        volumes = {str(root): {"bind": "/src", "mode": "ro"}, tmp: {"bind": "/results", "mode": "rw"}}
        environment = {"CI": "", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}

        def shard(number_files: tuple[int, list[str]]) -> tuple[int, str, float]:
            number, files = number_files
            args = [arg.replace("junit.xml", f"junit-{number}.xml") for arg in SUITE_ARGS]
            return run(
                client,
                image,
                ["pytest", *args, *files],
                "tests",
                timeout=timeout,
                entrypoint=[],
                working_dir="/src",
                network_mode="host",
                volumes=volumes,
                environment=environment,
                shm_size="2g",
                init=True,
            )

        parts = shards(root, parallel)
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            outcomes = list(pool.map(shard, enumerate(parts)))
        results = []
        for number, (code, logs, seconds) in enumerate(outcomes):
            junit = Path(tmp) / f"junit-{number}.xml"
            if not junit.is_file():
                tail = " | ".join(logs.strip().splitlines()[-3:])[-300:]
                raise StageError("tests", f"pytest wrote no report (exit code {code}): {tail}")
            results.append(parse_junit(junit.read_text(), seconds))
        return SuiteResult(
            sum(r.passed for r in results),
            sum(r.failed for r in results),
            sum(r.skipped for r in results),
            tuple(name for r in results for name in r.failing),
            max(r.seconds for r in results),
        )


def parse_junit(text: str, seconds: float) -> SuiteResult:
    """Counts and failing test ids, each with the first line of its failure message, from pytest's JUnit XML."""
    tree = ET.fromstring(text)
    suites = [tree] if tree.tag == "testsuite" else list(tree.iter("testsuite"))
    passed = failed = skipped = 0
    failing: list[str] = []
    for suite in suites:
        for case in suite.iter("testcase"):
            kinds = {child.tag for child in case}
            name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
            if kinds & {"failure", "error"}:
                failed += 1
                problem = next(child for child in case if child.tag in ("failure", "error"))
                reason = (problem.get("message") or "").strip().splitlines()
                failing.append(f"{name} ({reason[0][:160]})" if reason else name)
            elif "skipped" in kinds:
                skipped += 1
            else:
                passed += 1
    return SuiteResult(passed, failed, skipped, tuple(failing), seconds)


def cuda_checks(client: DockerClient, image: str) -> str:
    """bf16 and fp16 training steps and a CUDA checkpoint round trip on the host's GPUs."""
    import docker.types

    gpus = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    code, logs, _ = run(
        client,
        image,
        ["python", "-m", "accel.matrix.gpu_check"],
        "cuda",
        entrypoint=[],
        device_requests=gpus,
        shm_size="2g",
        network_mode="host",
    )
    return checked(code, logs, "cuda").strip().splitlines()[-1]
