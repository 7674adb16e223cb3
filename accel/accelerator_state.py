"""``AcceleratorState``: the process world plus the training settings, as scripts import and inspect it.

It is a :class:`~accel.state.PartialState` that also answers ``mixed_precision``, ``fsdp_plugin``,
``deepspeed_plugin`` (always None) and a ``distributed_type`` that says ``FSDP`` when parameters are
sharded. ``accelerator.state`` is one. There is no singleton: a bare ``AcceleratorState()`` made while
an ``Accelerator`` is alive reports that Accelerator's settings (the most recent one's); with explicit
arguments, or with no Accelerator, it resolves them like ``Accelerator`` does (argument > the
launcher's ``ACCEL_*`` variables > default).
"""

from __future__ import annotations

import datetime
import weakref
from typing import TYPE_CHECKING, Any

from accel import precision
from accel.config.run import RunConfig
from accel.exceptions import ConfigError
from accel.state import DistributedType, PartialState

if TYPE_CHECKING:
    from accel.plugins import FullyShardedDataParallelPlugin

__all__ = ["AcceleratorState"]

_OUT_OF_SCOPE = ("deepspeed_plugin", "megatron_lm_plugin", "torch_tp_plugin", "parallelism_config")
_attached: list[weakref.ref[AcceleratorState]] = []


def _latest_attached() -> AcceleratorState | None:
    _attached[:] = [ref for ref in _attached if ref() is not None]
    return _attached[-1]() if _attached else None


class AcceleratorState(PartialState):
    """Rank, device and barriers (as :class:`PartialState`) plus the precision and sharding settings.

    Args:
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"`` (default: the live Accelerator's, else
            ``ACCEL_MIXED_PRECISION``, else ``"no"``).
        cpu: run on the CPU even when a GPU is present.
        run_config: what the launcher resolved (default: decoded from this process's variables).
        fsdp_plugin: parameters are sharded with FSDP2 (``distributed_type`` is then ``FSDP``).
        deepspeed_plugin / megatron_lm_plugin: not supported by accel (an error when given).
    """

    def __init__(
        self,
        mixed_precision: str | None = None,
        cpu: bool | None = None,
        deepspeed_plugin: Any = None,
        fsdp_plugin: FullyShardedDataParallelPlugin | None = None,
        backend: str | None = None,
        timeout: datetime.timedelta | None = None,
        run_config: RunConfig | None = None,
        init_method: str | None = None,
        _from_accelerator: bool = False,
        **kwargs: Any,
    ) -> None:
        given = {"deepspeed_plugin": deepspeed_plugin, **kwargs}
        for name, value in given.items():
            if value is None:
                continue
            what = "is not supported by accel" if name in _OUT_OF_SCOPE else "is not an argument"
            raise ConfigError(f"AcceleratorState({name}=...) {what}; see the README's migration table")
        template = None
        if not _from_accelerator and mixed_precision is None and cpu is None and fsdp_plugin is None:
            template = _latest_attached()
        cpu = cpu if template is None else template.use_cpu
        super().__init__(cpu=cpu, backend=backend, timeout=timeout, run_config=run_config, init_method=init_method)
        self._precision_mode = None if mixed_precision is None else precision.check_mode(mixed_precision)
        self._fsdp_plugin = fsdp_plugin
        strategy = self.run_config.strategy if not _from_accelerator else None
        self._sharded = fsdp_plugin is not None or strategy == "fsdp"
        self._template = template

    def attach(self, mixed_precision: str, distributed_type: DistributedType, fsdp_plugin: Any = None) -> None:
        """Record the settings an Accelerator resolved (called by ``Accelerator``); later bare states adopt them."""
        self._precision_mode = mixed_precision
        self._fsdp_plugin = fsdp_plugin
        self._sharded = distributed_type == DistributedType.FSDP
        self._template = None
        _attached.append(weakref.ref(self))

    # ---------------------------------------------------------------- settings
    @property
    def mixed_precision(self) -> str:
        """``no``, ``bf16`` or ``fp16``."""
        if self._template is not None:
            return self._template.mixed_precision
        if self._precision_mode is not None:
            return self._precision_mode
        return self.run_config.mixed_precision or "no"

    @property
    def fsdp_plugin(self) -> FullyShardedDataParallelPlugin | None:
        """The FSDP settings when parameters are sharded."""
        return self._template.fsdp_plugin if self._template is not None else self._fsdp_plugin

    @property
    def distributed_type(self) -> DistributedType:
        """NO, MULTI_CPU, MULTI_GPU, or FSDP when parameters are sharded over more than one process."""
        sharded = self._template._sharded if self._template is not None else self._sharded
        if sharded and self.use_distributed:
            return DistributedType.FSDP
        return super().distributed_type

    @property
    def deepspeed_plugin(self) -> None:
        """Always None: accel has no DeepSpeed integration."""
        return None

    @property
    def megatron_lm_plugin(self) -> None:
        """Always None: accel has no Megatron-LM integration."""
        return None

    @property
    def dynamo_plugin(self) -> None:
        """Always None: compile the model yourself with ``torch.compile``."""
        return None

    @property
    def initialized(self) -> bool:
        """Always True once constructed."""
        return True

    @property
    def use_ipex(self) -> bool:
        """Always False."""
        return False

    @classmethod
    def _reset_state(cls, reset_partial_state: bool = False) -> None:
        """Kept for scripts and tests that call it: there is no shared state to reset."""

    def __repr__(self) -> str:
        return (
            f"Distributed environment: {self.distributed_type.value}\n"
            f"Num processes: {self.num_processes}\n"
            f"Process index: {self.process_index}\n"
            f"Local process index: {self.local_process_index}\n"
            f"Device: {self.device}\n"
            f"Mixed precision type: {self.mixed_precision}\n"
        )
