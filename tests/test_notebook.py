"""notebook_launcher: N real processes on the launch path, argument checks, early-state rejection."""

from __future__ import annotations

import gc

import pytest

from accel import env
from accel.exceptions import ConfigError, LaunchError, StateError
from accel.launch.notebook import notebook_launcher


def report(tag: str) -> dict:
    import torch
    import torch.distributed as dist

    from accel.state import PartialState

    state = PartialState()
    total = torch.tensor([float(state.process_index + 1)])
    if state.use_distributed:
        dist.all_reduce(total)
    seen = {
        "tag": tag,
        "rank": state.process_index,
        "world": state.num_processes,
        "type": state.distributed_type.value,
        "sum": total.item(),
        "mixed_precision": env.get("ACCEL_MIXED_PRECISION"),
        "requested": env.get("ACCEL_REQUESTED_WORLD_SIZE"),
    }
    state.destroy_process_group()
    return seen


def explode_on_rank_one() -> None:
    from accel.state import PartialState

    state = PartialState()
    if state.process_index == 1:
        raise ValueError("notebook rank 1 exploded")
    state.wait_for_everyone()


@pytest.mark.multiprocess
def test_two_processes_with_mixed_precision_applied_and_env_restored(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    before = env.get("ACCEL_MIXED_PRECISION")
    results = notebook_launcher(report, args=("hi",), num_processes=2, mixed_precision="bf16")
    assert sorted(results) == [0, 1]
    for rank, seen in results.items():
        assert seen == {
            "tag": "hi",
            "rank": rank,
            "world": 2,
            "type": "MULTI_CPU",
            "sum": 3.0,
            "mixed_precision": "bf16",
            "requested": "2",
        }
    assert env.get("ACCEL_MIXED_PRECISION") == before


def test_one_process_runs_here_with_settings_applied(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    results = notebook_launcher(report, args=("one",), num_processes=1, mixed_precision="fp16")
    assert results == {
        0: {
            "tag": "one",
            "rank": 0,
            "world": 1,
            "type": "NO",
            "sum": 1.0,
            "mixed_precision": "fp16",
            "requested": "1",
        }
    }
    assert env.get("ACCEL_MIXED_PRECISION") is None


@pytest.mark.multiprocess
def test_failure_reports_the_failing_rank_first(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pytest.raises(LaunchError, match=r"^rank 1 \(host ") as info:
        notebook_launcher(explode_on_rank_one, num_processes=2)
    assert "ValueError: notebook rank 1 exploded" in str(info.value)


def test_an_early_partial_state_is_rejected_with_the_fix(monkeypatch, tmp_path):
    from accel.state import PartialState

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    state = PartialState(cpu=True)
    try:
        with pytest.raises(StateError, match=r"PartialState already exists.*inside the training function"):
            notebook_launcher(report, args=("x",), num_processes=2)
    finally:
        del state
        gc.collect()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"num_processes": 0}, r"num_processes must be an integer >= 1, got 0"),
        ({"num_processes": 2, "mixed_precision": "fp8"}, r"mixed_precision must be one of no, bf16, fp16"),
        ({"num_processes": 2, "use_port": "http"}, r"use_port=\.\.\.\) must be a port number"),
        ({"num_processes": 2, "node_rank": 2, "num_nodes": 2}, r"machine_rank 2 .* must be below num_machines 2"),
        ({}, r"num_processes=\.\.\.\) is required without GPUs"),
    ],
)
def test_invalid_arguments_are_config_errors(monkeypatch, tmp_path, kwargs, pattern):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match=pattern):
        notebook_launcher(report, args=("x",), **kwargs)
    with pytest.raises(ConfigError, match="needs a function"):
        notebook_launcher(42, num_processes=2)  # type: ignore[arg-type]


@pytest.mark.multiprocess
def test_spawn_when_cuda_is_initialised_here(monkeypatch, tmp_path, capsys):
    import torch

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    results = notebook_launcher(report, args=("spawned",), num_processes=2)
    assert {seen["tag"] for seen in results.values()} == {"spawned"}
    assert {seen["world"] for seen in results.values()} == {2}
    assert "report() (spawn)" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="cannot be pickled"):
        notebook_launcher(lambda: None, num_processes=2)
