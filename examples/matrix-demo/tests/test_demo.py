"""The demo's own tests: one process, then 2 gloo ranks through the real launcher."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from demo.train import train

PROJECT = Path(__file__).resolve().parent.parent


def test_loss_goes_down_in_one_process() -> None:
    result = train()
    assert result["processes"] == 1
    assert result["last_loss"] < result["first_loss"] / 4


def test_two_ranks_through_accel_launch() -> None:
    cmd = [sys.executable, "-m", "accel", "launch", "--num_processes", "2", "--cpu", "-m", "demo.train"]
    proc = subprocess.run(cmd, cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["processes"] == 2
    assert result["last_loss"] < result["first_loss"]
