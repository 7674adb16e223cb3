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
