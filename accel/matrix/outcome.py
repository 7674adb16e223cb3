"""A cell's row in the report, live progress lines, and the result cache keyed by the cell's input digest."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TextIO

from accel.matrix.model import Cell


@dataclass
class Outcome:
    """What the runner learned about one cell (a row of the report). Empty means: not measured."""

    cell: str
    python: str
    os: str
    libc: str
    variant: str
    torch: str
    status: str = ""
    tests: str = ""
    cuda: str = ""
    torch_build: str = ""
    build_s: float | None = None
    install_s: float | None = None
    import_s: float | None = None
    image_bytes: int | None = None
    job_s: float | None = None
    reproducible: str = ""
    tests_s: float | None = None
    wheels: str = ""
    notes: str = ""
    digest: str = ""
    measured: str = ""

    @classmethod
    def start(cls, cell: Cell) -> Outcome:
        return cls(cell.id, cell.python, cell.os, cell.libc, cell.variant, cell.torch)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def note(self, text: str) -> None:
        self.notes = f"{self.notes}; {text}" if self.notes else text

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def failed(self) -> bool:
        return self.status.startswith("fail")


class Progress:
    """One line per cell and stage, with elapsed times; safe to use from several worker threads."""

    def __init__(self, stream: TextIO = sys.stdout, time_limit: float | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self.time_limit = time_limit

    def remaining(self, cap: float) -> float:
        """Seconds left of the run's time limit, at most ``cap``."""
        if self.time_limit is None:
            return cap
        return max(0.0, min(cap, self.time_limit - (time.monotonic() - self._start)))

    def line(self, cell: str, text: str) -> None:
        elapsed = time.monotonic() - self._start
        with self._lock:
            self._stream.write(f"[matrix {elapsed:7.1f}s] {cell}: {text}\n")
            self._stream.flush()

    @contextmanager
    def stage(self, cell: str, name: str) -> Iterator[None]:
        if self.remaining(1.0) <= 0:
            from accel.matrix.engine import StageError

            used = time.monotonic() - self._start
            raise StageError("time limit", f"the run's --time-limit was used up ({used:.0f} s) before the {name} stage")
        self.line(cell, f"{name} ...")
        start = time.monotonic()
        try:
            yield
        except BaseException:
            self.line(cell, f"{name}: failed after {time.monotonic() - start:.1f} s")
            raise
        self.line(cell, f"{name}: done in {time.monotonic() - start:.1f} s")


class ResultCache:
    """Finished outcomes under ``.cache/matrix/<cell>-<digest>.json``: a rerun skips what did not change."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, cell: str, digest: str) -> Path:
        return self.directory / f"{cell}-{digest}.json"

    def get(self, cell: str, digest: str) -> Outcome | None:
        path = self._path(cell, digest)
        if not path.is_file():
            return None
        try:
            return Outcome.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError):
            return None

    def put(self, outcome: Outcome) -> None:
        if outcome.digest and (outcome.passed or outcome.failed):
            write_atomic(self._path(outcome.cell, outcome.digest), json.dumps(asdict(outcome), indent=1) + "\n")

    def latest(self, cell: str) -> Outcome | None:
        """The newest cached outcome of a cell, whatever its digest (for cells not run this time)."""
        paths = sorted(self.directory.glob(f"{cell}-{'?' * 16}.json"), key=lambda p: p.stat().st_mtime)
        return self.get(cell, paths[-1].stem.removeprefix(f"{cell}-")) if paths else None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
