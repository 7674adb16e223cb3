"""Launches leave nothing in the temp folder: no ``torchelastic_*`` log folders, no ``pytorch-errorfile-*``.

Each case runs in a subprocess whose TMPDIR is a fresh folder, so that only its own files count.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEFTOVERS = ("torchelastic_", "pytorch-errorfile-", "accel-launch-")

pytestmark = [pytest.mark.e2e, pytest.mark.multiprocess]


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "ACCEL_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYTEST_CURRENT_TEST", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    result = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    left = sorted(p.name for p in scratch.iterdir() if p.name.startswith(LEFTOVERS))
    return result, left


FAILING_RANK = "import os, sys\nsys.exit(3) if os.environ['RANK'] == '1' else None\n"


def test_accel_launch_leaves_no_temp_files(tmp_path: Path) -> None:
    (tmp_path / "fail.py").write_text(FAILING_RANK)
    result, left = _run(
        tmp_path, "-m", "accel", "launch", "--num_processes", "2", "--main_process_port", "0", "fail.py"
    )
    assert result.returncode == 3, result.stderr
    assert not left, left


NOTEBOOK = """\
from accel import notebook_launcher

def train():
    import os
    if os.environ["RANK"] == "1":
        raise ValueError("boom")

if __name__ == "__main__":
    try:
        notebook_launcher(train, num_processes=2)
    except Exception as exc:
        print("failed:", type(exc).__name__)
"""


def test_notebook_launcher_with_a_failing_rank_leaves_no_temp_files(tmp_path: Path) -> None:
    (tmp_path / "nb.py").write_text(NOTEBOOK)
    result, left = _run(tmp_path, "nb.py")
    assert "failed:" in result.stdout, result.stderr
    assert not left, left


DIST_RUN = """\
from conftest import dist_run
from workers import rank

if __name__ == "__main__":
    print("ok", sorted(dist_run(rank).values()))
"""


def test_the_test_suites_dist_run_leaves_no_temp_files(tmp_path: Path) -> None:
    (tmp_path / "dr.py").write_text(DIST_RUN)
    (tmp_path / "workers.py").write_text("import os\n\ndef rank():\n    return int(os.environ['RANK'])\n")
    result, left = _run(tmp_path, "dr.py")
    assert "ok [0, 1]" in result.stdout, result.stderr
    assert not left, left
