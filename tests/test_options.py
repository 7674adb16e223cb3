"""Every accepted option works or is refused: init_method, save_on_each_node, and the refused ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import dist_run
from option_workers import init_method_rank, save_on_each_node_rank

from accel import (
    Accelerator,
    DataLoaderConfiguration,
    FullyShardedDataParallelPlugin,
    GradientAccumulationPlugin,
    env,
)
from accel.exceptions import CheckpointError, ConfigError


@pytest.mark.multiprocess
def test_init_method_is_where_the_ranks_meet(tmp_path: Path) -> None:
    store = tmp_path / "rendezvous"
    results = dist_run(init_method_rank, str(store))
    assert results == {rank: {"exists": True, "world": 2, "sum": 2.0} for rank in (0, 1)}


@pytest.mark.multiprocess
def test_save_on_each_node_writes_a_complete_copy_on_every_node(tmp_path: Path) -> None:
    results = dist_run(save_on_each_node_rank, str(tmp_path))
    for rank, seen in results.items():
        assert seen["local_main"]
        assert "manifest.json" in seen["files"]
        assert "model.safetensors" in seen["files"]
        assert f"random_states_{rank}.safetensors" in seen["files"]
        assert seen["node"] == ["ckpt", "export", "latest", "w.safetensors"]
        assert (tmp_path / f"node{rank}" / "export" / "model.safetensors").is_file()


def test_save_on_each_node_is_refused_where_only_the_main_process_has_the_model(tmp_path: Path) -> None:
    from accel import ProjectConfiguration
    from accel.accumulation import Accumulator
    from accel.checkpoint import Checkpointer, Contents
    from accel.data import GradientState
    from accel.precision import create
    from accel.state import PartialState
    from accel.strategies.single import SingleStrategy

    class Gathering(SingleStrategy):
        full_state_is_collective = True

    state = PartialState(cpu=True)
    project = ProjectConfiguration(save_on_each_node=True)
    contents = Contents((), (), (), (), (), Accumulator(GradientAccumulationPlugin(), GradientState()))
    checkpointer = Checkpointer(state, Gathering(state), create("no", state.device), project, lambda: contents)
    with pytest.raises(CheckpointError, match=r"save_on_each_node=True\) does not work with strategy single"):
        checkpointer.save_model(torch.nn.Linear(2, 2), tmp_path / "m")


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: FullyShardedDataParallelPlugin(cpu_ram_efficient_loading=True), "cpu_ram_efficient_loading=True"),
        (lambda: GradientAccumulationPlugin(adjust_scheduler=False), "adjust_scheduler=False) is not supported"),
        (lambda: DataLoaderConfiguration(use_seedable_sampler=False), "use_seedable_sampler=False) is not supported"),
        (lambda: Accelerator().autocast(autocast_handler=object()), "autocast_handler=...) is not supported"),
    ],
)
def test_options_that_would_do_nothing_are_refused(make, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert fragment in str(info.value)


def test_rng_types_generator_is_what_the_seeded_order_already_does() -> None:
    assert Accelerator(rng_types=["generator"]).num_processes == 1


def test_save_state_refuses_pickled_checkpoints(tmp_path: Path) -> None:
    acc = Accelerator(cpu=True)
    acc.prepare(torch.nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match=r"safe_serialization=False\) is not supported"):
        acc.save_state(tmp_path / "c", safe_serialization=False)
    assert not (tmp_path / "c").exists()


def test_accel_seed_is_gone_from_the_contract() -> None:
    assert "ACCEL_SEED" not in env.ACCEL_VARIABLES
    assert not hasattr(env, "SEED")
