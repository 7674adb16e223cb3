"""Process discovery from each kind of environment, and the environment contract."""

from __future__ import annotations

import pytest
import torch

from accel import PartialState, env
from accel.exceptions import ConfigError, StateError
from accel.state import discover, live_states


def test_single_process_without_any_variables() -> None:
    world = discover({})
    assert (world.rank, world.world_size, world.source) == (0, 1, "single")


def test_torchrun_variables() -> None:
    environ = {
        "TORCHELASTIC_RUN_ID": "x",
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2",
        "GROUP_RANK": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "1234",
    }
    world = discover(environ)
    assert (world.rank, world.world_size, world.local_rank, world.node_rank, world.source) == (3, 4, 1, 1, "torchrun")
    assert world.master_port == 1234


def test_explicit_rank_variables_as_set_for_kubeflow_pods() -> None:
    world = discover({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "5"})
    assert (world.rank, world.world_size, world.source) == (1, 2, "env")


def test_slurm_tasks() -> None:
    environ = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODEID": "2"}
    world = discover(environ)
    assert (world.rank, world.world_size, world.local_rank, world.node_rank, world.source) == (5, 8, 1, 2, "slurm")
    assert discover({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).source == "single"  # a batch script, not srun


def test_mpi_ranks() -> None:
    world = discover({"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "0"})
    assert (world.rank, world.world_size, world.source) == (2, 4, "mpi")
    assert discover({"PMI_RANK": "1", "PMI_SIZE": "2"}).rank == 1


def test_override_forces_a_source_and_rejects_unknown_names() -> None:
    environ = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "ACCEL_CLUSTER": "single"}
    assert discover(environ).source == "single"
    with pytest.raises(ConfigError, match="ACCEL_CLUSTER='slrum'"):
        discover({"ACCEL_CLUSTER": "slrum"})
    with pytest.raises(StateError, match="slurm rank/size variables are not set"):
        discover({"ACCEL_CLUSTER": "slurm"})


def test_requested_world_size_must_match(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCEL_REQUESTED_WORLD_SIZE", "2")
    with pytest.raises(StateError, match="asked for 2 processes but this process sees a world of 1"):
        PartialState()


def test_state_is_registered_while_alive() -> None:
    state = PartialState(cpu=True)
    assert state in live_states()
    assert state.device == torch.device("cpu")
    assert "num_processes=1" in repr(state)


def test_env_readers_name_the_variable() -> None:
    assert env.get_int("X", {"X": " 7 "}) == 7
    assert env.get_int("X", {}) is None
    assert env.get_bool("B", {"B": "Yes"}) is True
    with pytest.raises(ConfigError, match="B='maybe' is not a yes/no value"):
        env.get_bool("B", {"B": "maybe"})


def test_patched_restores_the_environment() -> None:
    before = env.get("ACCEL_SEED")
    with env.patched({"ACCEL_SEED": "3"}):
        assert env.get("ACCEL_SEED") == "3"
    assert env.get("ACCEL_SEED") == before


def test_a_deleted_accelerator_no_longer_counts_as_live() -> None:
    import weakref

    from accel import Accelerator

    acc = Accelerator()
    acc.checkpoints  # noqa: B018  (the checkpointer refers back to the accelerator: a reference cycle)
    state = weakref.ref(acc.state)
    del acc
    live_states()
    assert state() is None
