"""Container tests: the py3.11 CPU image, built the way a user builds it, run through compose.

They need a Docker engine with the compose v2 plugin (.ci/install-docker sets both up). Without
one they skip, except under CI=true, where they fail. The image is built once per session by
docker/bootstrap.py (offline base images and wheelhouse when no registry answers); rebuilding an
unchanged checkout takes seconds thanks to the layer cache.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_helpers import IMAGE, LABEL, ROOT, SIZE_BUDGET, Docker, require_docker

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


def test_compose_runs_as_accel_uid(docker: Docker, output: Path) -> None:
    """ACCEL_UID=1234: the entrypoint (started as root) hands /output to that uid and drops to it
    with no capabilities and no other groups; the job runs as it, with a home it can write."""
    env = env_for(output, ACCEL_UID="1234")
    probe = (
        "import os, pathlib; h = pathlib.Path.home(); (h / 'p').touch(); "
        "cap = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0]; "
        "print('ids', os.getuid(), os.getgid(), os.getgroups(), cap, h)"
    )
    try:
        train = docker.compose_run(
            "train", "train.py", "--output_dir", "/output", "--steps", "20", env=env, options=["--rm"]
        )
        who = docker.compose_run("train", "python", "-c", probe, env=env, options=["--rm"])
    finally:  # hand the folder back to the user running the tests
        owner = f"{os.getuid()}:{os.getgid()}"
        docker.docker(
            "run", "--rm", "-u", "0", "-v", f"{output}:/output", "--entrypoint", "chown", IMAGE, "-R", owner, "/output"
        )
    train.check()
    who.check()
    assert re.search(r"^ids 1234 1234 \[\] 0+ /", who.output, re.MULTILINE), who.output
    assert (output / "model" / "model.safetensors").is_file(), train.output


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a test runner started in the background ignores it


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_compose_run_stops_with_a_checkpoint(docker: Docker, output: Path, tmp_path: Path, signum: int) -> None:
    """docker/compose-run: Ctrl-C (SIGINT to the terminal's process group) or SIGTERM (a CI runner
    cancelling) to the client saves a checkpoint on every rank and exits 143; no container is left."""
    label = f"{LABEL}={docker.run_id}-{signum}"
    command = ["train.py", "--output_dir", "/output", "--steps", "100000", "--step_delay", "0.02", "--log_every", "10"]
    client_log = tmp_path / "client.log"
    env = {**os.environ, **env_for(output), "COMPOSE_PROJECT_NAME": docker.project}
    with client_log.open("wb") as log:
        client = subprocess.Popen(
            ["docker/compose-run", "--label", label, "train", *command],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_sigint_default,
        )
    try:
        deadline = time.monotonic() + 180
        while "step   10/" not in client_log.read_text():
            assert client.poll() is None and time.monotonic() < deadline, client_log.read_text()
            time.sleep(0.5)
        start = time.monotonic()
        if signum == signal.SIGINT:
            os.killpg(client.pid, signum)  # what Ctrl-C at a terminal does
        else:
            client.send_signal(signum)
        returncode = client.wait(timeout=120)
        stopped_in = time.monotonic() - start
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        for _ in range(30):  # --rm: the engine removes the container just after it exits
            left = docker.docker("ps", "-aq", "--filter", f"label={label}").output.split()
            if not left:
                break
            time.sleep(0.5)
        if left:
            docker.docker("rm", "-f", *left)
    out = client_log.read_text()
    print(f"\n[docker] compose-run stopped by {signal.Signals(signum).name} in {stopped_in:.1f} s, exit {returncode}")
    assert returncode == 128 + signal.SIGTERM, out
    assert not left, f"containers left running: {left}\n{out}"
    saved = re.search(r"SIGTERM: saved (/output/project/checkpoints/checkpoint_\d+)", out)
    assert saved, out
    assert (output / saved.group(1).removeprefix("/output/") / "manifest.json").is_file()
