"""Recording a rank's failure, and reporting failed ranks with the first failure first.

A failing rank writes ``accel-failure.json`` beside torch elastic's ``error.json`` (in the folder of
``TORCHELASTIC_ERROR_FILE``): its traceback, pid, host and a sub-second time. torch's own
``error.json`` is written as well, in torch's format (torch may overwrite it for function
entrypoints; the sidecar survives). The launcher reads the sidecars of every local rank, so that
the root cause is found even when torch's monitor only saw a rank that failed because of it.
Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accel import env

if TYPE_CHECKING:
    from collections.abc import Mapping

    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

SIDECAR = "accel-failure.json"


def record_failure(exc: BaseException, text: str | None = None) -> None:
    """Write the exception for the launcher (no-op outside a launch); never raises.

    The rank is also marked as leaving on an unhandled exception, as the interpreter marks it
    (``sys.last_value``): accel.group then skips the final barrier at exit and the rank exits at once.
    """
    sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, exc.__traceback__
    path = env.get(env.TORCHELASTIC_ERROR_FILE)
    if not path:
        return
    now = time.time()
    stack = text if text is not None else "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    message = f"{type(exc).__name__}: {exc}"
    torch_format = {"message": {"message": message, "extraInfo": {"py_callstack": stack, "timestamp": str(int(now))}}}
    ours = {"traceback": stack, "time": now, "pid": os.getpid(), "host": socket.gethostname()}
    try:
        Path(path).with_name(SIDECAR).write_text(json.dumps(ours), encoding="utf-8")
        Path(path).write_text(json.dumps(torch_format), encoding="utf-8")
    except OSError:
        pass  # reporting must never hide the original error


@dataclass(frozen=True)
class RankFailure:
    """One failed rank, as reported to the user."""

    rank: int
    local_rank: int
    pid: int | None
    exitcode: int | None
    signal: str | None
    traceback: str | None
    time: float
    host: str

    def headline(self) -> str:
        """``rank 1 (host h, local rank 1, pid 42) exited with code 1``."""
        pid = f", pid {self.pid}" if self.pid else ""
        if self.exitcode is not None and self.exitcode > 0:
            how = f"exited with code {self.exitcode}"
        elif self.traceback:
            how = "raised an exception" + (f" (then stopped by {self.signal})" if self.signal else "")
        else:
            how = f"was killed by {self.signal or 'a signal'}"
        return f"rank {self.rank} (host {self.host}, local rank {self.local_rank}{pid}) {how}"

    def stopped(self) -> bool:
        """Killed by SIGTERM without raising: the launcher's stop signal (or the same from outside)."""
        return self.signal == "SIGTERM" and not self.traceback and not (self.exitcode or 0) > 0

    def exit_code(self) -> int:
        """Shell-style code: the rank's own, 1 when it raised, else 128 + signal number."""
        if self.exitcode is not None and 0 < self.exitcode < 256:
            return self.exitcode
        if self.traceback or self.exitcode is None:
            return 1
        return min(128 - self.exitcode, 255)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _torch_stack(failure: ProcessFailure) -> str | None:
    data: Any = failure.error_file_data
    message = data.get("message") if isinstance(data, dict) else None
    extra = message.get("extraInfo") if isinstance(message, dict) else None
    stack = extra.get("py_callstack") if isinstance(extra, dict) else None
    return str(stack) if stack else None


def latest_attempt(log_root: str | os.PathLike[str]) -> Path | None:
    """torch's per-attempt log folder (``<root>/<run_id>_*/attempt_<n>``) of the last attempt, if any."""
    attempts = [p for p in Path(log_root).glob("*/attempt_*") if p.name[8:].isdigit()]
    return max(attempts, key=lambda p: (int(p.name[8:]), p.stat().st_mtime), default=None)  # newest run wins


def collect(failures: Mapping[int, ProcessFailure], attempt_dir: Path | None = None) -> list[RankFailure]:
    """Every failed local rank, first failure first (torch's failures plus ranks that left a sidecar)."""
    host = socket.gethostname()
    found: dict[int, RankFailure] = {}
    offset = 0
    for rank, f in failures.items():
        offset = rank - f.local_rank
        side = _read(attempt_dir / str(f.local_rank) / SIDECAR) if attempt_dir is not None else {}
        found[rank] = RankFailure(
            rank=rank,
            local_rank=f.local_rank,
            pid=f.pid,
            exitcode=f.exitcode,
            signal=f.signal_name() if f.exitcode < 0 else None,
            traceback=side.get("traceback") or _torch_stack(f),
            # torch's timestamp is truncated to the second: its upper bound keeps a precise sidecar time first
            time=float(side["time"]) if "time" in side else f.timestamp + 1.0,
            host=host,
        )
    sidecars = attempt_dir.glob(f"*/{SIDECAR}") if attempt_dir is not None else []
    for sidecar in sidecars:
        side = _read(sidecar)
        if not sidecar.parent.name.isdigit() or not side:
            continue
        local = int(sidecar.parent.name)
        if local + offset not in found:
            found[local + offset] = RankFailure(
                local + offset, local, side.get("pid"), None, None, side.get("traceback"), float(side["time"]), host
            )
    # SIGTERM without a traceback is how the launcher stops the other ranks: never the root cause
    # while some rank failed on its own
    return sorted(found.values(), key=lambda r: (r.stopped(), r.time, r.rank))


def describe(failures: Mapping[int, ProcessFailure], attempt_dir: Path | None = None) -> tuple[str, int]:
    """The report (first failure's headline and traceback, then the others) and the exit code to use."""
    ordered = collect(failures, attempt_dir)
    first = ordered[0]
    lines = [first.headline() + ":"]
    lines.append(
        first.traceback.rstrip()
        if first.traceback
        else "(no traceback recorded: the rank exited without raising, e.g. sys.exit or os._exit, or was killed)"
    )
    failed = [r.headline() for r in ordered[1:] if r.traceback or (r.exitcode or 0) > 0]
    stopped = [f"rank {r.rank} ({r.signal})" for r in ordered[1:] if not (r.traceback or (r.exitcode or 0) > 0)]
    if failed:
        lines.append("later failures: " + "; ".join(failed))
    if stopped:
        lines.append("stopped by the launcher: " + ", ".join(stopped))
    return "\n".join(lines), first.exit_code()
