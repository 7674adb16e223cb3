"""accel-matrix against a real engine: an Alpine cell's honest status, and a user's project in a cell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from docker_helpers import require_docker

pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]
DEMO = ROOT / "examples" / "matrix-demo"


def matrix_cli(*args: str, timeout: float = 3000) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "accel.matrix", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def test_alpine_cell_reports_each_step(tmp_path: Path) -> None:
    require_docker()
    proc = matrix_cli("check", "--cells", "py3.12-alpine-cpu", "--report-dir", str(tmp_path), "--repo", "accel-test")
    data = json.loads((tmp_path / "COMPATIBILITY.json").read_text())
    row = next(c for c in data["cells"] if c["cell"] == "py3.12-alpine-cpu")
    assert row["status"].startswith(("not built (base: python:3.12-alpine3.22", "unsupported (upstream: torch")), row
    assert "musllinux_1_2_x86_64" in row["wheels"] and "asked " in row["wheels"]
    assert "wheels found: pyyaml==" in row["notes"] and "missing: torch" in row["notes"]
    assert "py3.12-alpine-cpu: base image python:3.12-alpine3.22 ..." in proc.stdout
    assert proc.returncode == 1, "a cell that was asked for and did not pass makes the exit non-zero"
    assert len(data["cells"]) == 16 and data["unsupported"]


@pytest.mark.long
def test_users_project_runs_in_a_cell(tmp_path: Path) -> None:
    require_docker()
    args = ["run", "--cells", "py3.11-cpu", "--project", str(DEMO), "--report-dir", str(tmp_path)]
    proc = matrix_cli(*args, "--repo", "accel-test", "--", "pytest", "-q", "tests/")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "accel-matrix-matrix-demo.json").read_text())
    (row,) = data["cells"]
    assert (row["cell"], row["status"], row["tests"]) == ("py3.11-cpu", "pass", "2 passed")
    assert data["meta"]["command"] == "pytest -q tests/"
    md = (tmp_path / "accel-matrix-matrix-demo.md").read_text()
    assert "| py3.11-cpu | 3.11 | debian-bookworm | cpu | 2.13.0+cpu | pass | 2 passed |" in md
    images = subprocess.run(["docker", "images", "-q", "accel-test-project"], capture_output=True, text=True)
    assert images.stdout.strip() == "", "the project image is removed without --keep-images"
