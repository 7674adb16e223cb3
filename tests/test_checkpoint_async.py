"""Asynchronous saves: staged before save_state returns, published complete or not at all."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import ckpt_workers as w
import pytest
import safetensors.torch
import torch
from conftest import ROOT, dist_run

from accel import Accelerator, ProjectConfiguration
from accel.checkpoint import atomic
from accel.exceptions import CheckpointError


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("mode", [True, "overlap"])
def test_async_save_holds_the_state_at_the_call_and_resumes_exactly(tmp_path: Path, mode: bool | str) -> None:
    acc, model, opt, loader, sched, counter = w.build()
    for batch in loader:
        w.train_step(acc, model, opt, sched, counter, batch)
    saved = _params(model)
    saved_state = {k: v.clone() for k, v in acc.unwrap_model(model).state_dict().items()}
    optimizer_state = {k: v.clone() for k, v in opt.state_dict()["state"][0].items()}
    target = Path(acc.save_state(tmp_path / "ckpt", async_save=mode))
    for batch in loader:  # training goes on while the files are written: the checkpoint must not see it
        w.train_step(acc, model, opt, sched, counter, batch)
    acc.wait_for_checkpoint()
    assert (target / atomic.MANIFEST).is_file()
    assert (tmp_path / "latest").read_text().strip() == "ckpt"
    on_disk = safetensors.torch.load_file(target / "model.safetensors")
    assert on_disk.keys() == saved_state.keys()
    assert all(torch.equal(on_disk[k], v) for k, v in saved_state.items())
    acc.load_state(target)
    assert all(torch.equal(a, b) for a, b in zip(saved, model.parameters(), strict=True))
    restored = opt.state_dict()["state"][0]
    assert all(torch.equal(optimizer_state[k], restored[k]) for k in optimizer_state)


def test_one_save_in_flight_and_load_waits(tmp_path: Path) -> None:
    acc, model, opt, loader, sched, counter = w.build(str(tmp_path), automatic_checkpoint_naming=True, total_limit=2)
    for _ in range(3):
        for batch in loader:
            w.train_step(acc, model, opt, sched, counter, batch)
        acc.save_state(async_save=True)  # each waits for the previous one before staging
    last = _params(model)
    for batch in loader:
        w.train_step(acc, model, opt, sched, counter, batch)
    assert Path(acc.load_state()).name == "checkpoint_2"  # waits for the save in flight first
    assert all(torch.equal(a, b) for a, b in zip(last, model.parameters(), strict=True))
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint_1", "checkpoint_2", "latest"]


def test_project_configuration_makes_saves_async(tmp_path: Path) -> None:
    acc, *_ = w.build(str(tmp_path), automatic_checkpoint_naming=True, async_save=True)
    acc.save_state()
    assert (
        acc.checkpoints.saves.writer.in_flight or (tmp_path / "checkpoints" / "checkpoint_0" / atomic.MANIFEST).exists()
    )
    acc.wait_for_checkpoint()
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "checkpoint_0"
    acc.save_state(async_save=False)  # an explicit argument wins
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "checkpoint_1"


class _Unstorable:
    """A registered object whose state safetensors cannot store (complex128)."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"z": torch.zeros(2, dtype=torch.complex128)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        pass


def test_a_failed_background_write_is_raised_and_publishes_nothing(tmp_path: Path) -> None:
    acc = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 1)
    acc.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
    acc.save_state(tmp_path / "good")
    acc.register_for_checkpointing(_Unstorable())
    acc.save_state(tmp_path / "bad", async_save=True)
    with pytest.raises(CheckpointError, match=r"asynchronous save of .*bad failed.*complex128"):
        acc.wait_for_checkpoint()
    assert not (tmp_path / "bad").exists()
    assert (tmp_path / "latest").read_text().strip() == "good"
    acc.wait_for_checkpoint()  # the failure is reported once


def test_process_exit_waits_for_the_save(tmp_path: Path) -> None:
    code = (
        "import torch, sys\n"
        "from accel import Accelerator\n"
        "acc = Accelerator(cpu=True)\n"
        "model = torch.nn.Sequential(*[torch.nn.Linear(1024, 1024) for _ in range(16)])\n"
        "model, opt = acc.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))\n"
        "acc.save_state(sys.argv[1], async_save=True)\n"
        "raise SystemExit(3)\n"  # exits at once, with an error status: the write still completes
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ckpt")], capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    assert (tmp_path / "ckpt" / atomic.MANIFEST).is_file()
    assert (tmp_path / "latest").read_text().strip() == "ckpt"


def test_kill_during_async_save_leaves_the_previous_checkpoint_loadable(tmp_path: Path) -> None:
    script = ROOT / "tests" / "scripts" / "async_save_kill.py"
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "returned").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "save_state(async_save=True) never returned"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)  # no handler, no cleanup: the background write dies mid-way
    finally:
        proc.kill()
        proc.communicate()
    root = tmp_path / "checkpoints"
    assert (root / ".tmp-checkpoint_1").exists(), "the kill came after the write: nothing was tested"
    assert not (root / "checkpoint_1").exists()
    assert (root / "latest").read_text().strip() == "checkpoint_0"
    config = ProjectConfiguration(project_dir=str(tmp_path), automatic_checkpoint_naming=True)
    acc = Accelerator(project_config=config, cpu=True)
    model = torch.nn.Sequential(*[torch.nn.Linear(2048, 2048) for _ in range(18)])
    model, _opt = acc.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
    assert Path(acc.load_state()).name == "checkpoint_0"
    on_disk = safetensors.torch.load_file(root / "checkpoint_0" / "model.safetensors")
    assert all(torch.equal(on_disk[k], v) for k, v in model.state_dict().items())


@pytest.mark.multiprocess
@pytest.mark.parametrize("mode", [True, "overlap"])
def test_async_save_on_two_ranks(tmp_path: Path, mode: bool | str) -> None:
    results = dist_run(w.async_on_ranks, str(tmp_path / "ckpt"), mode)
    assert all(d == 0.0 for diffs in results.values() for d in diffs), results
    assert {"random_states_0.safetensors", "random_states_1.safetensors"} <= {
        p.name for p in (tmp_path / "ckpt").iterdir()
    }
