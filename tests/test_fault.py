"""Fault tolerance through the real launcher: a killed rank, SIGTERM, and kill -9 during a save."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch
from conftest import ROOT, run_cli

pytestmark = pytest.mark.e2e
SCRIPT = ROOT / "tests" / "scripts" / "ckpt_train.py"
LAUNCH = ["launch", "--num_processes", "2", "--cpu", "--quiet"]


def _final(project: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(project / "final.safetensors")


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    project = tmp_path_factory.mktemp("plain")
    result = run_cli(*LAUNCH, str(SCRIPT), str(project), "plain", env={"XDG_CONFIG_HOME": str(project)})
    assert result.returncode == 0, result.stderr
    return _final(project)


def test_killed_rank_restarts_and_finishes_like_an_uninterrupted_run(
    tmp_path: Path, reference: dict[str, torch.Tensor]
) -> None:
    args = [*LAUNCH, "--max_restarts", "1", "--shutdown_timeout", "5", str(SCRIPT), str(tmp_path), "crash"]
    result = run_cli(*args, env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "attempt 1: resumed from checkpoint_1" in result.stdout  # saved at step 8, killed after step 9
    assert _same(_final(tmp_path), reference)


def test_sigterm_saves_on_every_rank_and_exits_cleanly(tmp_path: Path, reference: dict[str, torch.Tensor]) -> None:
    cmd = [sys.executable, "-m", "accel", *LAUNCH, "--shutdown_timeout", "20", str(SCRIPT), str(tmp_path), "sigterm"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "ready").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the script never became ready"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert "SIGTERM: saved" in out, err
    assert "exitcode" not in err and "Traceback" not in err, err  # every rank exited cleanly
    latest = (tmp_path / "checkpoints" / "latest").read_text().strip()
    manifest = json.loads((tmp_path / "checkpoints" / latest / "manifest.json").read_text())
    assert manifest["world_size"] == 2
    assert {"random_states_0.safetensors", "random_states_1.safetensors"} <= set(manifest["files"])
    # a fresh job resumes from the preemption checkpoint and ends exactly like the uninterrupted run
    result = run_cli(*LAUNCH, str(SCRIPT), str(tmp_path), "resume", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert _same(_final(tmp_path), reference)


def _load_both(project: Path) -> None:
    from accel import Accelerator, ProjectConfiguration

    config = ProjectConfiguration(project_dir=str(project), automatic_checkpoint_naming=True)
    for where in (None, project / "fixed"):
        acc = Accelerator(project_config=config)
        model = torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.Linear(2048, 1024))
        model, _ = acc.prepare(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
        loaded = Path(acc.load_state(where))
        on_disk = safetensors.torch.load_file(loaded / "model.safetensors")
        assert all(torch.equal(on_disk[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("delays", [(0.05, 0.3, 0.17)])
def test_kill_9_during_saves_leaves_a_loadable_checkpoint(tmp_path: Path, delays: tuple[float, ...]) -> None:
    script = ROOT / "tests" / "scripts" / "ckpt_save_loop.py"
    for delay in delays:
        before = len(list(tmp_path.glob("saved-*")))
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while len(list(tmp_path.glob("saved-*"))) <= before and proc.poll() is None:
                assert time.monotonic() < deadline, "no save completed"
                time.sleep(0.01)
            assert proc.poll() is None, proc.communicate()
            time.sleep(delay)
        finally:
            proc.kill()  # SIGKILL: no handler, no cleanup
            proc.communicate()
        for path in tmp_path.glob("saved-*"):
            path.unlink()
        _load_both(tmp_path)
        assert (tmp_path / "checkpoints" / "latest").read_text().strip().startswith("checkpoint_")
    # the last run's saves cleaned up the staging directories its killed predecessors left behind
    assert len(list((tmp_path / "checkpoints").glob(".tmp-*"))) <= 1
