"""save_state(async_save="overlap"): the weights are copied in the background, the next step waits for it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch

from accel import Accelerator, ProjectConfiguration
from accel.checkpoint import background
from accel.exceptions import CheckpointError, ConfigError


class GatedStaged(background.Staged):
    """Deferred copies that wait for the test to open the gate (or fail when it says so)."""

    gate = threading.Event()
    fail = False

    def fill(self) -> None:
        assert self.gate.wait(60), "the gate was never opened"
        if self.fail:
            raise OSError("the copy failed")
        super().fill()


class GatedStager(background.Stager):
    def stage(self, jobs: list[background.FileJob], defer: frozenset[int] = frozenset()) -> background.Staged:
        staged = super().stage(jobs, defer)
        return GatedStaged(staged.jobs, staged.deferred)


@pytest.fixture
def gated() -> type[GatedStaged]:
    GatedStaged.gate = threading.Event()
    GatedStaged.fail = False
    return GatedStaged


def _build(**config: object) -> tuple[Accelerator, Any, Any]:
    torch.manual_seed(0)
    acc = Accelerator(cpu=True, project_config=ProjectConfiguration(**config) if config else None)  # type: ignore[arg-type]
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.Linear(16, 1))
    model, opt = acc.prepare(model, torch.optim.AdamW(model.parameters(), lr=0.1))
    acc.checkpoints.saves.stager = GatedStager()
    return acc, model, opt


def _step(acc: Accelerator, model: Any, opt: Any) -> None:
    acc.backward(model(torch.randn(32, 8)).pow(2).mean())
    opt.step()
    opt.zero_grad()


def test_the_next_step_waits_for_the_copy_and_the_checkpoint_is_the_state_at_the_call(
    tmp_path: Path, gated: type[GatedStaged]
) -> None:
    acc, model, opt = _build()
    _step(acc, model, opt)
    at_call = {k: v.clone() for k, v in acc.unwrap_model(model).state_dict().items()}
    moments = {k: v.clone() for k, v in opt.state_dict()["state"][0].items()}
    target = Path(acc.save_state(tmp_path / "ckpt", async_save="overlap"))
    assert acc.checkpoints.saves.guard.holding
    # The forward pass runs during the copy: BatchNorm's running statistics change (they were copied
    # before save_state returned), the parameters do not.
    model(torch.randn(32, 8)).pow(2).mean().backward()
    stepper = threading.Thread(target=opt.step)
    stepper.start()
    stepper.join(0.5)
    assert stepper.is_alive(), "the optimizer stepped before the weights were copied"
    assert torch.equal(acc.unwrap_model(model)[0].weight, at_call["0.weight"])
    gated.gate.set()
    stepper.join(60)
    assert not stepper.is_alive()
    assert not torch.equal(acc.unwrap_model(model)[0].weight, at_call["0.weight"])
    acc.wait_for_checkpoint()
    on_disk = safetensors.torch.load_file(target / "model.safetensors")
    assert on_disk.keys() == at_call.keys()
    assert all(torch.equal(on_disk[k], v) for k, v in at_call.items()), "the checkpoint is not the state at the call"
    acc.load_state(target)
    restored = opt.state_dict()["state"][0]
    assert all(torch.equal(moments[k], restored[k]) for k in moments)


def test_a_raw_optimizer_step_waits_too(tmp_path: Path, gated: type[GatedStaged]) -> None:
    acc, model, opt = _build()
    _step(acc, model, opt)
    acc.save_state(tmp_path / "ckpt", async_save="overlap")
    stepper = threading.Thread(target=opt.optimizer.step)  # the unwrapped optimizer
    stepper.start()
    stepper.join(0.3)
    assert stepper.is_alive()
    gated.gate.set()
    stepper.join(60)
    acc.wait_for_checkpoint()


def test_a_failed_copy_releases_the_step_and_is_raised(tmp_path: Path, gated: type[GatedStaged]) -> None:
    acc, model, opt = _build()
    _step(acc, model, opt)
    acc.save_state(tmp_path / "good")
    gated.fail = True
    gated.gate.set()
    acc.save_state(tmp_path / "bad", async_save="overlap")
    _step(acc, model, opt)  # does not hang
    with pytest.raises(CheckpointError, match=r"asynchronous save of .*bad failed.*the copy failed"):
        acc.wait_for_checkpoint()
    assert not (tmp_path / "bad").exists()
    assert (tmp_path / "latest").read_text().strip() == "good"


def test_project_configuration_overlap_is_the_default_mode(tmp_path: Path, gated: type[GatedStaged]) -> None:
    acc, model, opt = _build(project_dir=str(tmp_path), automatic_checkpoint_naming=True, async_save="overlap")
    _step(acc, model, opt)
    acc.save_state()
    assert acc.checkpoints.saves.guard.holding
    gated.gate.set()
    acc.wait_for_checkpoint()
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "checkpoint_0"


@pytest.mark.parametrize("mode", ["yes", 2, None])
def test_an_unknown_mode_is_refused(tmp_path: Path, mode: object) -> None:
    acc, *_ = _build()
    if mode is None:
        with pytest.raises(ConfigError, match=r"async_save=\[\].*False, True or 'overlap'"):
            ProjectConfiguration(async_save=[])  # type: ignore[arg-type]
        return
    with pytest.raises(CheckpointError, match=rf"{mode!r} is not a mode; use False"):
        acc.save_state(tmp_path / "ckpt", async_save=mode)
    assert not (tmp_path / "ckpt").exists()
