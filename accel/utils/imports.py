"""``is_*_available``: what this machine and environment can really do (names as in ``accelerate.utils``).

Device helpers ask torch about the hardware present; package helpers say whether a package can be
imported, without importing it. Importing this module does not import torch. Backends accel does
not run on (TPU/XLA, NPU, MLU, MUSA, HPU, SDAA, DeepSpeed, Megatron-LM, fp8) answer truthfully for
the machine, but accel still refuses them: see the README's migration table.
"""

from __future__ import annotations

import importlib.util
import operator
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "is_aim_available",
    "is_bf16_available",
    "is_bnb_available",
    "is_boto3_available",
    "is_clearml_available",
    "is_comet_ml_available",
    "is_cuda_available",
    "is_datasets_available",
    "is_deepspeed_available",
    "is_dvclive_available",
    "is_fp8_available",
    "is_fp16_available",
    "is_hpu_available",
    "is_ipex_available",
    "is_matplotlib_available",
    "is_megatron_lm_available",
    "is_mlflow_available",
    "is_mlu_available",
    "is_mps_available",
    "is_musa_available",
    "is_npu_available",
    "is_pandas_available",
    "is_peft_available",
    "is_pynvml_available",
    "is_rich_available",
    "is_safetensors_available",
    "is_sdaa_available",
    "is_tensorboard_available",
    "is_timm_available",
    "is_torch_version",
    "is_torch_xla_available",
    "is_torchdata_available",
    "is_torchvision_available",
    "is_transformers_available",
    "is_triton_available",
    "is_wandb_available",
    "is_xpu_available",
]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _torch() -> Any:
    import torch

    return torch


def _device_module_available(name: str) -> bool:
    module = getattr(_torch(), name, None)
    is_available = getattr(module, "is_available", None)
    return bool(is_available()) if callable(is_available) else False


# ---------------------------------------------------------------- devices
def is_cuda_available() -> bool:
    """True when torch sees a CUDA (or ROCm) device."""
    return bool(_torch().cuda.is_available())


def is_mps_available(min_version: str = "1.12") -> bool:
    """True when Apple's MPS backend is present (and torch is at least ``min_version``)."""
    torch = _torch()
    return is_torch_version(">=", min_version) and bool(torch.backends.mps.is_available())


def is_xpu_available(check_device: bool = False) -> bool:
    """True when torch has an Intel XPU device (``check_device`` is accepted; torch's answer already counts devices)."""
    return _device_module_available("xpu")


def is_npu_available(check_device: bool = False) -> bool:
    """True when an Ascend NPU extension is installed and reports a device."""
    return _importable("torch_npu") and _device_module_available("npu")


def is_mlu_available(check_device: bool = False) -> bool:
    """True when a Cambricon MLU extension is installed and reports a device."""
    return _importable("torch_mlu") and _device_module_available("mlu")


def is_musa_available(check_device: bool = False) -> bool:
    """True when a Moore Threads MUSA extension is installed and reports a device."""
    return _importable("torch_musa") and _device_module_available("musa")


def is_sdaa_available(check_device: bool = False) -> bool:
    """True when an SDAA extension is installed and reports a device."""
    return _importable("torch_sdaa") and _device_module_available("sdaa")


def is_hpu_available(init_hccl: bool = False) -> bool:
    """True when Habana's extension is installed and reports a Gaudi device."""
    return _importable("habana_frameworks") and _device_module_available("hpu")


def is_torch_xla_available(check_is_tpu: bool = False, check_is_gpu: bool = False) -> bool:
    """True when ``torch_xla`` can be imported (accel does not run on XLA; the answer is about the machine)."""
    return _importable("torch_xla")


def is_bf16_available(ignore_tpu: bool = False) -> bool:
    """True when bf16 autocast runs here: on a CUDA device that supports it, or on the CPU."""
    torch = _torch()
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return not bool(torch.backends.mps.is_available())


def is_fp16_available() -> bool:
    """True when accel's fp16 (autocast and gradient scaler) runs here: CUDA, XPU or the CPU."""
    torch = _torch()
    return bool(torch.cuda.is_available()) or not bool(torch.backends.mps.is_available())


def is_fp8_available() -> bool:
    """Always False: accel has no fp8 training path."""
    return False


# ---------------------------------------------------------------- packages
def _package(name: str) -> Callable[[], bool]:
    def check() -> bool:
        return _importable(name)

    check.__name__ = f"is_{name}_available"
    check.__doc__ = f"True when ``{name}`` can be imported."
    return check


is_aim_available = _package("aim")
is_bnb_available = _package("bitsandbytes")
is_boto3_available = _package("boto3")
is_clearml_available = _package("clearml")
is_comet_ml_available = _package("comet_ml")
is_datasets_available = _package("datasets")
is_deepspeed_available = _package("deepspeed")
is_dvclive_available = _package("dvclive")
is_ipex_available = _package("intel_extension_for_pytorch")
is_matplotlib_available = _package("matplotlib")
is_megatron_lm_available = _package("megatron")
is_mlflow_available = _package("mlflow")
is_pandas_available = _package("pandas")
is_peft_available = _package("peft")
is_pynvml_available = _package("pynvml")
is_rich_available = _package("rich")
is_safetensors_available = _package("safetensors")
is_tensorboard_available = _package("tensorboard")
is_timm_available = _package("timm")
is_torchdata_available = _package("torchdata")
is_torchvision_available = _package("torchvision")
is_transformers_available = _package("transformers")
is_triton_available = _package("triton")
is_wandb_available = _package("wandb")


# ---------------------------------------------------------------- versions
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    "<": operator.lt,
}


def _release(version: str) -> tuple[int, ...]:
    match = re.match(r"\d+(\.\d+)*", version.strip())
    return tuple(int(part) for part in match.group(0).split(".")) if match else (0,)


def is_torch_version(operation: str, version: str) -> bool:
    """Compare the installed torch's release number (``2.13.0+cpu`` counts as ``2.13.0``) with ``version``."""
    from accel.exceptions import ConfigError

    compare = _OPERATORS.get(operation)
    if compare is None:
        raise ConfigError(f"is_torch_version({operation!r}, ...): expected one of {', '.join(_OPERATORS)}")
    installed, wanted = _release(_torch().__version__), _release(version)
    width = max(len(installed), len(wanted))
    return compare(installed + (0,) * (width - len(installed)), wanted + (0,) * (width - len(wanted)))
