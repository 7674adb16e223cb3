"""The benchmarks' smoke mode: the scripts run, the plots draw and BENCHMARKS.md renders (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.long]  # minutes on a shared 2-core machine


@pytest.mark.timeout(1800)
def test_run_all_smoke_renders_the_document(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="plots need the bench extra (pip install -e .[bench])")
    out = tmp_path / "BENCHMARKS.md"
    cmd = [sys.executable, str(ROOT / "bench" / "run_all.py"), "--smoke", "--only", "step,stall,ckpt_curve"]
    cmd += ["--results", str(tmp_path / "results"), "--output", str(out), "--plots", str(tmp_path / "plots")]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1500)
    assert result.returncode == 0, result.stdout + result.stderr
    text = out.read_text()
    assert "{{" not in text
    assert "of the blocking save" in text  # the stall table, through an asynchronous save
    assert (tmp_path / "plots" / "step_vs_tensors.png").stat().st_size > 1000
