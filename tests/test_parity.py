"""Accelerate parity: the names, module paths and forms migrating scripts use."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch


def test_import_accel_and_accel_utils_do_not_import_torch() -> None:
    code = (
        "import sys, accel, accel.utils; "
        "from accel.utils import write_basic_config, is_deepspeed_available; "
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_module_paths_scripts_import_from() -> None:
    from accel import utils
    from accel.utils import dataclasses, operations
    from accel.utils import random as accel_random

    assert operations.gather is utils.gather and operations.reduce is utils.reduce
    assert issubclass(operations.DistributedOperationException, RuntimeError)
    assert dataclasses.DataLoaderConfiguration is utils.DataLoaderConfiguration
    assert dataclasses.RNGType("generator") is utils.RNGType.GENERATOR
    assert accel_random.set_seed is utils.set_seed
    assert set(utils.__all__) <= set(dir(utils))
    for name in utils.__all__:
        assert getattr(utils, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = utils.nope


def test_distributed_type_has_the_members_scripts_compare_against() -> None:
    from accel import DistributedType

    for name in ("NO", "MULTI_CPU", "MULTI_GPU", "FSDP", "DEEPSPEED", "XLA", "MEGATRON_LM", "MULTI_XPU", "MULTI_NPU"):
        assert DistributedType[name].value == name
    assert DistributedType.DEEPSPEED == "DEEPSPEED"


def test_is_available_helpers_tell_the_truth() -> None:
    from accel import utils

    assert utils.is_cuda_available() is torch.cuda.is_available()
    has_xpu = hasattr(torch, "xpu") and torch.xpu.is_available()
    assert utils.is_xpu_available() is has_xpu
    assert utils.is_mps_available() is torch.backends.mps.is_available()
    assert utils.is_bf16_available() is (torch.cuda.is_bf16_supported() if torch.cuda.is_available() else True)
    assert utils.is_fp16_available() is True
    assert utils.is_fp8_available() is False
    assert utils.is_safetensors_available() is True
    assert utils.is_deepspeed_available() is False
    assert utils.is_torch_xla_available() is False
    assert utils.is_npu_available() is False
    assert utils.is_torch_version(">=", "2.0") and not utils.is_torch_version("<", "2.0")
    assert utils.is_torch_version("==", torch.__version__.split("+")[0])
    with pytest.raises(ValueError, match="expected one of"):
        utils.is_torch_version("~=", "2")


def test_synchronize_rng_states_rejects_unknown_types_and_needs_the_generator() -> None:
    from accel.utils import synchronize_rng_states

    with pytest.raises(ValueError, match="unknown type"):
        synchronize_rng_states(["numpy"])
    with pytest.raises(ValueError, match="needs generator="):
        synchronize_rng_states(["generator"])
    generator = torch.Generator().manual_seed(3)
    expected = torch.Generator().manual_seed(3)
    synchronize_rng_states(["torch", "cuda", "generator"], generator=generator)  # one process: unchanged
    assert torch.equal(torch.rand(3, generator=generator), torch.rand(3, generator=expected))


@pytest.mark.multiprocess
def test_synchronize_rng_states_with_a_generator_on_two_ranks() -> None:
    from conftest import dist_run
    from parity_workers import sync_generator

    results = dist_run(sync_generator)
    assert results[0]["before"] != results[1]["before"]
    assert results[0]["generator"] == results[1]["generator"]
    assert results[0]["torch"] == results[1]["torch"]


def test_accelerator_state_is_importable_and_inspectable_like_accelerates() -> None:
    import accel
    import accel.state
    from accel import Accelerator

    assert accel.AcceleratorState is accel.state.AcceleratorState
    bare = accel.AcceleratorState()
    assert bare.mixed_precision == "no" and bare.distributed_type.value == "NO"
    acc = Accelerator(mixed_precision="bf16", cpu=True)
    assert isinstance(acc.state, accel.AcceleratorState) and isinstance(acc.state, accel.PartialState)
    state = accel.state.AcceleratorState()  # a bare state reports the live Accelerator's settings
    assert state.mixed_precision == "bf16" and state.deepspeed_plugin is None and state.fsdp_plugin is None
    assert (state.num_processes, state.process_index, state.is_main_process) == (1, 0, True)
    assert "Mixed precision type: bf16" in repr(state) and "Distributed environment: NO" in repr(state)
    assert accel.AcceleratorState(mixed_precision="fp16").mixed_precision == "fp16"
    accel.AcceleratorState._reset_state(True)
    with pytest.raises(ValueError, match=r"deepspeed_plugin=\.\.\.\) is not supported by accel"):
        accel.AcceleratorState(deepspeed_plugin=object())
    with pytest.raises(ValueError, match="use one of no, bf16, fp16"):
        accel.AcceleratorState(mixed_precision="fp64")


def test_gradient_state_active_dataloader() -> None:
    from torch.utils.data import DataLoader

    from accel import Accelerator
    from accel.state import GradientState

    acc = Accelerator(cpu=True, gradient_accumulation_steps=2)
    assert isinstance(acc.gradient_state, GradientState)
    loader = acc.prepare(DataLoader(torch.arange(6), batch_size=2))
    seen = []
    for _ in loader:
        with acc.accumulate():
            g = acc.gradient_state
            seen.append((g.active_dataloader is loader, g.in_dataloader, g.sync_gradients, g.remainder))
    assert seen == [(True, True, False, -1), (True, True, True, -1), (True, True, True, 0)]
    assert acc.gradient_state.active_dataloader is None and not acc.gradient_state.in_dataloader


def test_triggers_and_sync_in_backward_on_one_process() -> None:
    from accel import Accelerator

    acc = Accelerator(cpu=True)
    assert acc.check_trigger() is False
    acc.set_trigger()
    assert acc.check_trigger() is True and acc.check_trigger() is False
    model = acc.prepare(torch.nn.Linear(2, 1))
    with acc.no_sync(model), acc.trigger_sync_in_backward(model):
        acc.backward(model(torch.ones(1, 2)).sum())
    assert model.weight.grad is not None


@pytest.mark.multiprocess
def test_set_trigger_on_one_rank_stops_every_rank_at_the_same_step() -> None:
    from conftest import dist_run
    from parity_workers import early_stop

    results = dist_run(early_stop, 1, 3)
    assert results == {0: {"stopped_at": 3, "again": False}, 1: {"stopped_at": 3, "again": False}}


@pytest.mark.multiprocess
def test_trigger_sync_in_backward_synchronises_inside_no_sync() -> None:
    from conftest import dist_run
    from parity_workers import sync_in_backward

    plain = dist_run(sync_in_backward, False)
    assert not plain[0]["same"]
    assert plain[0]["grad"] == [[2.0, 2.0, 2.0]] and plain[1]["grad"] == [[4.0, 4.0, 4.0]]
    triggered = dist_run(sync_in_backward, True)
    assert triggered[0]["same"] and triggered[0]["grad"] == [[3.0, 3.0, 3.0]]


@pytest.mark.multiprocess
def test_get_logger_main_process_only_and_in_order(tmp_path) -> None:
    from conftest import dist_run
    from parity_workers import ordered_logging

    path = tmp_path / "log.txt"
    dist_run(ordered_logging, str(path))
    lines = path.read_text().splitlines()
    assert lines == ["main-only from 0", "in-order from 0", "in-order from 1", "once"]


def test_get_logger_level_from_the_argument_or_the_environment(monkeypatch) -> None:
    import logging

    from accel.logging import get_logger

    assert get_logger("parity.level.a", log_level="debug").logger.level == logging.DEBUG
    monkeypatch.setenv("ACCEL_LOG_LEVEL", "WARNING")
    assert get_logger("parity.level.b").logger.level == logging.WARNING


def _ids(loader) -> list[list[int]]:
    return [b.tolist() for b in loader]


def test_prepare_data_loader_at_module_level_shards_like_prepare() -> None:
    from torch.utils.data import DataLoader

    import accel
    from accel.data_loader import SeedableRandomSampler, prepare_data_loader

    assert accel.prepare_data_loader is prepare_data_loader
    source = DataLoader(torch.arange(10), batch_size=2, shuffle=True)
    shards = [prepare_data_loader(source, num_processes=2, process_index=r, data_seed=4) for r in (0, 1)]
    parts = [_ids(s) for s in shards]
    flat = sorted(i for part in parts for b in part for i in b)
    assert flat == list(range(10)) and len(parts[0]) == 3 and len(parts[1]) == 3 - 1 + 1
    assert shards[0].dataset is source.dataset and shards[0].batch_size == 2
    assert isinstance(shards[0].sampler, SeedableRandomSampler) and shards[0].sampler.initial_seed == 4
    again = prepare_data_loader(source, num_processes=2, process_index=0, data_seed=4)
    assert _ids(again) == parts[0]
    split = prepare_data_loader(
        DataLoader(torch.arange(8), batch_size=4), num_processes=2, process_index=1, split_batches=True
    )
    assert split.batch_size == 2 and _ids(split) == [[2, 3], [6, 7]]
    with pytest.raises(ValueError, match="pass data_seed="):
        prepare_data_loader(source, num_processes=2, process_index=0)
    with pytest.raises(ValueError, match="process_index=2"):
        prepare_data_loader(source, num_processes=2, process_index=2, data_seed=1)
    refused = ({"slice_fn_for_dispatch": len}, {"use_stateful_dataloader": True}, {"torch_device_mesh": 1})
    for kwargs in (*refused, {"use_seedable_sampler": False}):
        with pytest.raises(ValueError, match="not supported"):
            prepare_data_loader(source, data_seed=1, **kwargs)
    with pytest.raises(ValueError, match=r"prepare_data_loader\(rng_types=\['numpy'\]\): unknown type"):
        prepare_data_loader(source, data_seed=1, rng_types=["numpy"])
    kept = prepare_data_loader(source, data_seed=1, rng_types=["generator", "torch"], use_seedable_sampler=True)
    assert kept.rng_types == ["generator", "torch"] and _ids(kept)


def test_a_custom_batch_sampler_is_reachable_as_accelerate_exposes_it() -> None:
    from torch.utils.data import DataLoader, Sampler

    from accel import Accelerator

    class Pairs(Sampler[list[int]]):
        def __len__(self) -> int:
            return 3

        def __iter__(self):
            yield from ([0, 5], [1, 4], [2, 3])

    custom = Pairs()
    loader = Accelerator(cpu=True).prepare(DataLoader(torch.arange(6), batch_sampler=custom))
    assert loader.batch_sampler.batch_sampler is custom
    assert loader.batch_size is None and _ids(loader) == [[0, 5], [1, 4], [2, 3]]
    plain = Accelerator(cpu=True).prepare(DataLoader(torch.arange(6), batch_size=3))
    assert plain.batch_size == 3 and plain.batch_sampler.batch_sampler.batch_size == 3
    assert isinstance(plain.sampler, torch.utils.data.SequentialSampler)


def test_seedable_random_sampler_takes_accelerates_arguments() -> None:
    from torch.utils.data import DataLoader

    from accel import Accelerator
    from accel.data_loader import SeedableRandomSampler

    data = list(range(10))
    sampler = SeedableRandomSampler(data_source=data, num_samples=15, generator=torch.Generator().manual_seed(8))
    first = list(sampler)
    assert len(first) == 15 and set(first) == set(data) and sampler.initial_seed == 8
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(SeedableRandomSampler(data, data_seed=8)) == list(SeedableRandomSampler(data, data_seed=8))
    mine = SeedableRandomSampler(data, data_seed=21)
    loader = Accelerator(cpu=True).prepare(DataLoader(data, batch_size=5, sampler=mine))
    assert loader.sampler is mine and loader.state_dict()["seed"] == 21
    mine.set_epoch(0)
    assert [i for b in loader for i in b.tolist()] == list(mine)


@pytest.mark.multiprocess
@pytest.mark.parametrize(
    ("n", "batch", "split", "iterable"), [(9, 2, False, False), (10, 4, True, False), (8, 2, False, True)]
)
def test_dispatch_batches_main_process_reads_and_ranks_get_the_same_batches(n, batch, split, iterable) -> None:
    from conftest import dist_run
    from parity_workers import dispatched

    plain = dist_run(dispatched, n, batch, False, split, iterable)
    sent = dist_run(dispatched, n, batch, True, split, iterable)
    assert sent[1]["reads"] == 0 and sent[0]["reads"] == 2 * n  # two epochs, all read by rank 0
    assert plain[1]["reads"] > 0
    for r in (0, 1):
        assert sent[r]["len"] == len(sent[r]["batches"])
    assert sorted(sent[0]["metrics"]) == list(range(n)) == sorted(plain[0]["metrics"])
    if iterable:  # every rank read the stream itself and kept every 2nd batch: the same batches
        assert sent[0]["batches"] == plain[0]["batches"] and sent[1]["batches"] == plain[1]["batches"]
    elif not split:  # the same batches per rank as without dispatching, except the (balanced) last round
        assert sent[0]["batches"][:-1] == plain[0]["batches"][:-1]
        assert sent[1]["batches"][:-1] == plain[1]["batches"][:-1]
        assert sent[1]["batches"][-1] == sent[0]["batches"][-1]  # repeated; gather_for_metrics drops it


@pytest.mark.multiprocess
def test_dispatch_batches_without_even_batches_stops_the_short_rank() -> None:
    from conftest import dist_run
    from parity_workers import dispatched

    results = dist_run(dispatched, 5, 2, True, False, False, False)
    assert len(results[0]["batches"]) == 2 and len(results[1]["batches"]) == 1
    assert sorted(results[0]["metrics"]) == list(range(5))


@pytest.mark.multiprocess
def test_debug_mode_names_each_ranks_shape_instead_of_hanging() -> None:
    from conftest import dist_run
    from parity_workers import debug_shapes

    results = dist_run(debug_shapes)
    for r in (0, 1):
        out = results[r]
        assert out["gather_uneven_ok"] == 3 and out["pad_ok"] == [2, 2]
        assert "accel.utils.reduce" in out["reduce"] and "rank 0: [2]; rank 1: [3]" in out["reduce"]
        assert "rank 0: [2, 1]; rank 1: [2, 2]" in out["gather"] and "beyond the first dimension" in out["gather"]
        assert "rank 0: [2], [1, 3]; rank 1: [2], [2, 3]" in out["nested"]


@pytest.mark.multiprocess
def test_accelerator_rng_types_sync_the_torch_generator_when_an_epoch_starts() -> None:
    from conftest import dist_run
    from parity_workers import rng_types_epoch

    synced = dist_run(rng_types_epoch, ["torch"])
    assert synced[0]["draw"] == synced[1]["draw"]
    plain = dist_run(rng_types_epoch, None)
    assert plain[0]["draw"] != plain[1]["draw"]


def test_accelerator_rejects_unknown_rng_types() -> None:
    from accel import Accelerator
    from accel.utils import RNGType

    with pytest.raises(ValueError, match=r"Accelerator\(rng_types=\['numpy'\]\): unknown type"):
        Accelerator(cpu=True, rng_types=["numpy"])
    assert Accelerator(cpu=True, rng_types=[RNGType.GENERATOR]).prepared.rng_types == ["generator"]


def test_dataloader_configuration_refuses_a_stateful_dataloader_naming_the_accel_way() -> None:
    from accel import DataLoaderConfiguration

    assert DataLoaderConfiguration(dispatch_batches=True).dispatch_batches is True
    with pytest.raises(ValueError, match="state_dict\\(\\)/load_state_dict\\(\\) built in"):
        DataLoaderConfiguration(use_stateful_dataloader=True)
