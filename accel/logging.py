"""``get_logger``: a logger for multi-process scripts (as ``accelerate.logging.get_logger``).

Every logging call takes two more keywords: ``main_process_only`` (default True: only global rank 0
emits the record) and ``in_order`` (with ``main_process_only=False``: the ranks emit one after the
other, rank 0 first; a collective, so every rank must make the call). Unlike Accelerate, no state
needs to exist first: before a process group is created the rank comes from the launcher's ``RANK``.
Importing this module does not import torch.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

from accel import env

__all__ = ["MultiProcessAdapter", "get_logger"]


def _coordinates() -> tuple[int, int]:
    """(rank, world size): the process group's when there is one, else the launcher's variables."""
    if "torch" in sys.modules:  # a process group can only exist once torch is loaded
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    return env.get_int(env.RANK) or 0, env.get_int(env.WORLD_SIZE) or 1


def _barrier() -> None:
    if "torch" in sys.modules:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()


class MultiProcessAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A ``LoggerAdapter`` whose calls accept ``main_process_only=`` and ``in_order=``."""

    def __init__(self, logger: logging.Logger, extra: MutableMapping[str, Any] | None = None) -> None:
        super().__init__(logger, extra or {})
        self._warned: set[str] = set()

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Log on the main process (default), on every process, or on every process in rank order."""
        main_process_only = bool(kwargs.pop("main_process_only", True))
        in_order = bool(kwargs.pop("in_order", False))
        kwargs.setdefault("stacklevel", 2)
        rank, world = _coordinates()
        if main_process_only:
            if rank == 0 and self.isEnabledFor(level):
                self._emit(level, msg, args, kwargs)
            return
        if not in_order or world == 1:
            if self.isEnabledFor(level):
                self._emit(level, msg, args, kwargs)
            return
        for turn in range(world):
            if turn == rank and self.isEnabledFor(level):
                self._emit(level, msg, args, kwargs)
                for handler in self.logger.handlers:
                    handler.flush()
            _barrier()

    def _emit(self, level: int, msg: object, args: tuple[object, ...], kwargs: MutableMapping[str, Any]) -> None:
        msg, kwargs = self.process(msg, kwargs)
        kwargs["stacklevel"] = int(kwargs.get("stacklevel", 1)) + 2
        self.logger.log(level, msg, *args, **kwargs)

    def warning_once(self, msg: object, *args: object, **kwargs: Any) -> None:
        """``warning`` that emits a given message only the first time (per logger)."""
        key = f"{msg}|{args}"
        if key in self._warned:
            return
        self._warned.add(key)
        self.warning(msg, *args, **kwargs)


def get_logger(name: str, log_level: str | None = None) -> MultiProcessAdapter:
    """A logger for ``name`` that handles multiple processes.

    ``log_level`` (e.g. ``"INFO"``) defaults to ``ACCEL_LOG_LEVEL``; when neither is set the logger keeps
    its level (Python's default: inherited from the root logger).
    """
    level = log_level if log_level is not None else env.get(env.LOG_LEVEL)
    logger = logging.getLogger(name)
    if level:
        logger.setLevel(level.strip().upper())
    return MultiProcessAdapter(logger)
