"""A small harness for the container tests: the docker CLI and compose v2, driven by subprocess.

Builds go through docker/bootstrap.py, the same path a user takes, so a test run on a host with
no registry makes its own base images. Every container a test starts carries a label and a
name with this run's id, and :meth:`Docker.cleanup` removes them all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CELL = "py3.11-cpu"
IMAGE = f"accel:{CELL}"
SIZE_BUDGET = 1_000_000_000  # bytes: the CPU image must stay within 1.0 GB
LABEL = "org.accel.test-run"


def require_docker() -> None:
    """Skip (or, under CI=true, fail) when there is no usable Docker engine with compose v2."""
    problems = []
    if shutil.which("docker") is None:
        problems.append("no `docker` command on PATH")
    else:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
        if info.returncode != 0:
            problems.append(f"no Docker engine answers ({(info.stderr.strip() or 'docker info failed')[:200]})")
        compose = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if compose.returncode != 0:
            problems.append("no compose v2 plugin (`docker compose version` failed)")
    if not problems:
        return
    reason = "; ".join(problems) + " (.ci/install-docker sets both up on Debian)"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true and the container tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class Result:
    args: list[str]
    returncode: int
    output: str
    seconds: float

    def check(self, expected: int = 0) -> Result:
        assert self.returncode == expected, (
            f"`{' '.join(self.args)}` exited {self.returncode} (expected {expected}) after {self.seconds:.1f} s:\n"
            f"{self.output[-6000:]}"
        )
        return self


@dataclass
class Docker:
    """The docker CLI for one test session (one compose project, one label value)."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def project(self) -> str:
        return f"accel-test-{self.run_id}"

    def cmd(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 600) -> Result:
        full = {**os.environ, **(env or {})}
        start = time.monotonic()
        proc = subprocess.run(
            list(args), cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
        )
        return Result(list(args), proc.returncode, proc.stdout, time.monotonic() - start)

    def docker(self, *args: str, timeout: float = 600) -> Result:
        return self.cmd("docker", *args, timeout=timeout)

    def compose(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 600) -> Result:
        return self.cmd("docker", "compose", "-p", self.project, *args, env=env, timeout=timeout)

    def compose_run(
        self, service: str, *command: str, env: Mapping[str, str], options: Sequence[str] = (), timeout: float = 600
    ) -> Result:
        opts = ["-T", "--label", f"{LABEL}={self.run_id}", *options]
        return self.compose("run", *opts, service, *command, env=env, timeout=timeout)

    def build(self) -> Result:
        """Bases, wheelhouse and the image of the default cell, through docker/bootstrap.py."""
        return self.cmd(sys.executable, "docker/bootstrap.py", "--cell", CELL, timeout=1800).check()

    def image_size(self, image: str = IMAGE) -> int:
        return int(self.docker("image", "inspect", "-f", "{{.Size}}", image).check().output.strip())

    def labels(self, image: str = IMAGE) -> dict[str, str]:
        out = self.docker("image", "inspect", "-f", "{{json .Config.Labels}}", image).check().output
        return dict(json.loads(out))

    def logs(self, container: str) -> str:
        return self.docker("logs", container).output

    def wait_for_log(self, container: str, needle: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        logs = ""
        while time.monotonic() < deadline:
            logs = self.logs(container)
            if needle in logs:
                return logs
            state = self.docker("inspect", "-f", "{{.State.Status}}", container).output.strip()
            if state in {"exited", "dead"}:
                break
            time.sleep(0.5)
        raise AssertionError(f"{container} never printed {needle!r} within {timeout:.0f} s; logs:\n{logs[-4000:]}")

    def process_states(self, container: str) -> list[tuple[int, str, str]]:
        """(pid, command name, state letter) of every process in a running container, from /proc."""
        script = 'for f in /proc/[0-9]*/stat; do cat "$f" 2>/dev/null; echo; done'
        out = self.docker("exec", container, "sh", "-c", script).check().output
        states = []
        for line in out.splitlines():
            if not line.strip():
                continue
            pid, rest = line.split(" ", 1)
            name, after = rest.rsplit(")", 1)
            states.append((int(pid), name.lstrip("("), after.split()[0]))
        return states

    def cleanup(self) -> None:
        ids = self.docker("ps", "-aq", "--filter", f"label={LABEL}={self.run_id}").output.split()
        if ids:
            self.docker("rm", "-f", *ids)
        self.compose("down", "--remove-orphans", "--timeout", "5")
