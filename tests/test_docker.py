"""Container tests: the py3.11 CPU image, built the way a user builds it, run through compose.

They need a Docker engine with the compose v2 plugin (.ci/install-docker sets both up). Without
one they skip, except under CI=true, where they fail. The image is built once per session by
docker/bootstrap.py (offline base images and wheelhouse when no registry answers); rebuilding an
unchanged checkout takes seconds thanks to the layer cache.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_helpers import IMAGE, SIZE_BUDGET, Docker, require_docker

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    require_docker()
    harness = Docker()
    start = time.monotonic()
    build = harness.build()
    print(f"\n[docker] image {IMAGE} ready in {time.monotonic() - start:.1f} s")
    print("\n".join(line for line in build.output.splitlines() if line.startswith("[bootstrap]")))
    try:
        yield harness
    finally:
        harness.cleanup()


@pytest.fixture
def output(tmp_path: Path) -> Path:
    out = tmp_path / "output"
    out.mkdir()
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(output: Path, **extra: str) -> dict[str, str]:
    return {"ACCEL_OUTPUT_DIR": str(output), **extra}


def test_compose_run_train_writes_a_model(docker: Docker, output: Path) -> None:
    result = docker.compose_run("train", env=env_for(output), options=["--rm"]).check()
    print(result.output)
    assert "example: 2 processes" in result.output
    model = output / "model" / "model.safetensors"
    assert model.is_file() and model.stat().st_size > 0, sorted(p.name for p in output.rglob("*"))
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["num_processes"] == 2
    assert metrics["eval_mse"] < 1.0
    assert any((output / "project" / "checkpoints").iterdir())
    print(f"[docker] compose run train: {result.seconds:.1f} s, eval mse {metrics['eval_mse']:.4f}")


def test_accel_env_reports_the_baked_config(docker: Docker) -> None:
    out = docker.docker("run", "--rm", "--network", "host", IMAGE, "accel", "env").check().output
    assert "/etc/accel/config.yaml (ACCEL_CONFIG_FILE)" in out, out
    assert re.search(r"num_processes\s+2\s+file /etc/accel/config\.yaml", out), out


def test_image_runs_as_non_root(docker: Docker) -> None:
    out = docker.docker("run", "--rm", "--network", "host", IMAGE, "id", "-u").check().output
    assert out.strip().splitlines()[-1] != "0"
    config = docker.docker("image", "inspect", "-f", "{{.Config.User}}", IMAGE).check().output.strip()
    assert config and not config.startswith(("0", "root")), config


def test_image_labels(docker: Docker) -> None:
    labels = docker.labels()
    for key in ("version", "revision", "source"):
        assert labels.get(f"org.opencontainers.image.{key}"), labels
    assert labels["org.accel.variant"] == "cpu"


def test_image_size_within_budget(docker: Docker) -> None:
    size = docker.image_size()
    print(f"\n[docker] {IMAGE}: {size / 1e9:.3f} GB (budget {SIZE_BUDGET / 1e9:.1f} GB)")
    assert size <= SIZE_BUDGET


def test_user_code_and_exit_code_pass_through(docker: Docker, output: Path, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "fail.py").write_text(
        "import os, sys\n"
        # one write per line: the image runs Python unbuffered, so print's pieces of two ranks interleave
        "sys.stdout.write(f\"rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}\\n\")\n"
        "sys.exit(3 if os.environ['RANK'] == '1' else 0)\n"
    )
    code.chmod(0o755)
    result = docker.compose_run("train", "fail.py", env=env_for(output, ACCEL_CODE_DIR=str(code)), options=["--rm"])
    result.check(expected=3)
    assert "rank 1 of 2" in result.output


def test_stop_saves_a_checkpoint_and_passes_the_exit_code(docker: Docker, output: Path) -> None:
    name = f"{docker.project}-stop"
    command = ["train.py", "--output_dir", "/output", "--steps", "100000", "--step_delay", "0.02", "--log_every", "10"]
    docker.compose_run("train", *command, env=env_for(output), options=["-d", "--name", name]).check()
    try:
        docker.wait_for_log(name, "step   10/")
        states = docker.process_states(name)
        names = [n for _, n, _ in states]
        assert states[0][0] == 1 and names[0] == "docker-init", states  # compose init: true
        zombies = [s for s in states if s[2] == "Z"]
        assert not zombies, states
        pythons = [s for s in states if s[1].startswith(("python", "accel"))]
        assert len(pythons) >= 3, states  # the launcher and two ranks

        start = time.monotonic()
        docker.docker("stop", name, timeout=120).check()  # SIGTERM, then the container's stop timeout
        stopped_in = time.monotonic() - start
        exit_code = int(docker.docker("inspect", "-f", "{{.State.ExitCode}}", name).check().output.strip())
        logs = docker.logs(name)
    finally:
        docker.docker("rm", "-f", name)
    print(f"\n[docker] stop took {stopped_in:.1f} s, exit code {exit_code}")
    assert exit_code == 128 + 15, f"exit code {exit_code} (137 would mean SIGKILL after the grace period)\n{logs}"
    assert stopped_in < 45, logs
    saved = re.search(r"SIGTERM: saved (/output/project/checkpoints/checkpoint_\d+)", logs)
    assert saved, logs
    checkpoint = output / saved.group(1).removeprefix("/output/")
    assert (checkpoint / "manifest.json").is_file(), sorted(p.name for p in checkpoint.parent.iterdir())


def _two_nodes(docker: Docker, output: Path) -> tuple[Any, int, str]:
    env = env_for(output, ACCEL_RDZV_PORT=str(free_port()))
    node0 = f"{docker.project}-node0"
    opts = ["--profile", "multinode"]
    docker.compose(*opts, "run", "-T", "-d", "--name", node0, "node0", env=env).check()
    try:
        node1 = docker.compose(*opts, "run", "-T", "--rm", "node1", env=env, timeout=240)
        rc0 = int(docker.docker("wait", node0, timeout=120).check().output.strip())
        return node1, rc0, docker.logs(node0)
    finally:
        docker.docker("rm", "-f", node0)
        docker.compose(*opts, "rm", "-sf", env=env)


def test_two_nodes_on_one_host(docker: Docker, output: Path) -> None:
    """Two containers, one launcher each, meet over 127.0.0.1 (their launchers often share a pid)."""
    node1, rc0, logs0 = _two_nodes(docker, output)
    node1.check()
    assert rc0 == 0, logs0
    metrics = json.loads((output / "multinode" / "metrics.json").read_text())
    assert metrics["num_processes"] == 2
    assert (output / "multinode" / "model" / "model.safetensors").is_file()


def test_tests_service_runs_pytest_on_the_checkout(docker: Docker) -> None:
    """compose's `tests` service: the dev target (built by compose itself) with the checkout at /src."""
    docker.compose("build", "tests").check()
    code = "import accel, pytest; print(accel.__file__, pytest.__version__)"
    result = docker.compose("run", "-T", "--rm", "tests", "python", "-c", code).check()
    assert "/src/accel/__init__.py" in result.output
