"""Mixed precision as small policy objects: ``no``, ``bf16`` and ``fp16`` (with a gradient scaler).

A policy enters autocast around the model's forward through forward hooks (a public PyTorch API; the
model's ``forward`` is never replaced), casts half-precision outputs back to fp32, scales the loss,
unscales before clipping and steps the optimizer. ``mixed_precision`` always reports what is active.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from accel.config.schema import KEYS
from accel.exceptions import ConfigError, PrecisionError
from accel.plugins import GradScalerKwargs

_KEY = KEYS["mixed_precision"]  # the one table of mode words (config files, flags, variables, arguments)
MODES = _KEY.choices


def check_mode(value: object, where: str = "mixed_precision") -> str:
    """Normalise a mode name ("fp32" and None mean "no"); ConfigError for anything else."""
    if value is None:
        return "no"
    mode = _KEY.canonical(value) if isinstance(value, str) else None
    if mode is None:
        raise ConfigError(f"{where}={value!r} is not a mixed-precision mode; use one of {', '.join(MODES)}")
    return mode


def _to_fp32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in (torch.float16, torch.bfloat16) else value
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
        return type(value)(*(_to_fp32(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_to_fp32(v) for v in value)
    if isinstance(value, dict):
        return type(value)((k, _to_fp32(v)) for k, v in value.items())
    return value


class Precision:
    """Full precision: every hook is a no-op."""

    mode = "no"
    dtype: torch.dtype | None = None

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Context in which the forward pass runs."""
        return contextlib.nullcontext()

    def attach(self, model: torch.nn.Module) -> list[Any]:
        """Run ``model``'s forward under autocast (returns the hook handles; none at full precision)."""
        return []

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """Backward pass of the (possibly scaled) loss."""
        loss.backward(**kwargs)  # type: ignore[no-untyped-call]

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring gradients back to their real scale (before clipping)."""

    def step(self, optimizer: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> bool:
        """Step the optimizer; False when the step was skipped (fp16 overflow)."""
        optimizer.step(*args, **kwargs)
        return True

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (the scaler's, for fp16)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


class _Autocast(Precision):
    """Shared by bf16 and fp16: autocast around forward, fp32 outputs."""

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        assert self.dtype is not None
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def attach(self, model: torch.nn.Module) -> list[Any]:
        stack: list[torch.autocast] = []  # entered contexts (a forward can re-enter the model)
        idle: list[torch.autocast] = []  # exited ones, reused: each keeps its saved state per entry
        device_type, dtype, half = self.device.type, self.dtype, (torch.float16, torch.bfloat16)

        def enter(_module: torch.nn.Module, _args: Any) -> None:
            ctx = idle.pop() if idle else torch.autocast(device_type=device_type, dtype=dtype)
            ctx.__enter__()  # type: ignore[no-untyped-call]
            stack.append(ctx)

        def leave(_module: torch.nn.Module, _args: Any, output: Any) -> Any:
            if stack:
                ctx = stack.pop()
                ctx.__exit__(None, None, None)
                idle.append(ctx)
            if type(output) is torch.Tensor:  # the common case, without the generic walk
                return output.float() if output.dtype in half else output
            return _to_fp32(output)

        return [model.register_forward_pre_hook(enter), model.register_forward_hook(leave, always_call=True)]


class BF16(_Autocast):
    """bfloat16 autocast; no scaler needed."""

    mode = "bf16"
    dtype = torch.bfloat16


class FP16(_Autocast):
    """float16 autocast with a gradient scaler.

    ``accelerator.backward(loss)`` scales the loss; a plain ``loss.backward()`` would leave gradients
    unscaled and silently wrong, so the next optimizer step raises instead.
    """

    mode = "fp16"
    dtype = torch.float16

    def __init__(self, device: torch.device, scaler_kwargs: GradScalerKwargs | None = None) -> None:
        super().__init__(device)
        self.scaler = torch.amp.GradScaler(device.type, **(scaler_kwargs or GradScalerKwargs()).to_kwargs())
        self._scaled_backwards = 0
        self._unscaled: set[int] = set()

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        self._scaled_backwards += 1
        self.scaler.scale(loss).backward(**kwargs)  # type: ignore[no-untyped-call]

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        if id(optimizer) not in self._unscaled:
            self._check_scaled(optimizer)
            self.scaler.unscale_(optimizer)
            self._unscaled.add(id(optimizer))

    def _check_scaled(self, optimizer: torch.optim.Optimizer) -> None:
        if self._scaled_backwards:
            return
        has_grads = any(p.grad is not None for group in optimizer.param_groups for p in group["params"])
        if has_grads:
            raise PrecisionError(
                "fp16 gradients were computed without the gradient scaler: replace `loss.backward()` "
                "with `accelerator.backward(loss)` (under fp16 a plain backward underflows silently)"
            )

    def step(self, optimizer: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> bool:
        self._check_scaled(optimizer)
        scale_before = self.scaler.get_scale()
        self.scaler.step(optimizer, *args, **kwargs)
        self.scaler.update()
        self._scaled_backwards = 0
        self._unscaled.clear()
        return bool(self.scaler.get_scale() >= scale_before)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.scaler.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scaler.load_state_dict(state)


def create(mode: str, device: torch.device, scaler_kwargs: GradScalerKwargs | None = None) -> Precision:
    """Build the policy for ``mode``; PrecisionError when the device cannot run it."""
    if mode == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise PrecisionError(f"bf16 is not supported on {torch.cuda.get_device_name(device)}; use fp16 or no")
        return BF16(device)
    if mode == "fp16":
        if device.type not in ("cuda", "cpu", "xpu"):
            raise PrecisionError(f"fp16 with a gradient scaler is not supported on {device.type}; use bf16 or no")
        return FP16(device, scaler_kwargs)
    return Precision(device)


@contextlib.contextmanager
def no_autocast() -> Iterator[None]:
    """Leave autocast for a block (e.g. a numerically sensitive loss)."""
    with torch.autocast(device_type="cpu", enabled=False), contextlib.ExitStack() as stack:
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast(device_type="cuda", enabled=False))
        yield
