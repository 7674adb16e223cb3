"""Experiment trackers: JSON lines and CSV built in, TensorBoard when installed.

Only the main process writes. ``log_with="all"`` means every tracker that is available.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, TextIO

from accel.exceptions import ConfigError

BUILT_IN = ("jsonl", "csv", "tensorboard")


class Tracker:
    """Base tracker: ``start``, ``log``, ``finish``."""

    name = "base"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def start(self, project: str, config: dict[str, Any]) -> None:
        """Open the run."""

    def log(self, values: dict[str, Any], step: int | None) -> None:
        """Record scalar values."""

    def finish(self) -> None:
        """Close the run."""

    @property
    def tracker(self) -> Any:
        """The underlying object (for ``get_tracker(unwrap=True)``)."""
        return self


class JSONLTracker(Tracker):
    """One JSON object a line in ``<logging_dir>/<project>/metrics.jsonl``."""

    name = "jsonl"
    _file: TextIO | None = None

    def start(self, project: str, config: dict[str, Any]) -> None:
        path = self.directory / project
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
        self._file = (path / "metrics.jsonl").open("a", encoding="utf-8")

    def log(self, values: dict[str, Any], step: int | None) -> None:
        if self._file is not None:
            record = {"step": step, "time": time.time(), **{k: _scalar(v) for k, v in values.items()}}
            self._file.write(json.dumps(record, default=str) + "\n")
            self._file.flush()

    def finish(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class CSVTracker(Tracker):
    """``<logging_dir>/<project>/metrics.csv`` with columns step, key, value."""

    name = "csv"
    _file: TextIO | None = None

    def start(self, project: str, config: dict[str, Any]) -> None:
        path = self.directory / project
        path.mkdir(parents=True, exist_ok=True)
        new = not (path / "metrics.csv").exists()
        self._file = (path / "metrics.csv").open("a", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(["step", "key", "value"])

    def log(self, values: dict[str, Any], step: int | None) -> None:
        if self._file is not None:
            for key, value in values.items():
                self._writer.writerow([step, key, _scalar(value)])
            self._file.flush()

    def finish(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class TensorBoardTracker(Tracker):
    """TensorBoard event files (needs the ``tensorboard`` package)."""

    name = "tensorboard"

    def start(self, project: str, config: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.directory / project))
        self.writer.add_text("config", json.dumps(config, default=str))

    def log(self, values: dict[str, Any], step: int | None) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, _scalar(value), global_step=step)

    def finish(self) -> None:
        self.writer.close()

    @property
    def tracker(self) -> Any:
        return self.writer


def _scalar(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _tensorboard_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


_CLASSES: dict[str, type[Tracker]] = {"jsonl": JSONLTracker, "csv": CSVTracker, "tensorboard": TensorBoardTracker}


class Trackers:
    """The trackers named in ``Accelerator(log_with=...)``."""

    def __init__(self, log_with: str | list[str] | None, logging_dir: str, is_main: bool) -> None:
        names = [log_with] if isinstance(log_with, str) else list(log_with or [])
        if "all" in names:
            names = ["jsonl", "csv"] + (["tensorboard"] if _tensorboard_available() else [])
        for name in names:
            if name not in _CLASSES:
                raise ConfigError(f"log_with={name!r} is not a tracker; use one of {', '.join(BUILT_IN)} or 'all'")
            if name == "tensorboard" and not _tensorboard_available():
                raise ConfigError(
                    "log_with='tensorboard' needs the tensorboard package: pip install 'accel[tensorboard]'"
                )
        self.is_main = is_main
        self.items = [_CLASSES[n](Path(logging_dir)) for n in dict.fromkeys(names)] if is_main else []

    def start(self, project: str, config: dict[str, Any] | None, init_kwargs: dict[str, Any]) -> None:
        """Start every tracker."""
        for tracker in self.items:
            tracker.start(project, dict(config or {}))

    def log(self, values: dict[str, Any], step: int | None) -> None:
        """Log to every tracker."""
        for tracker in self.items:
            tracker.log(values, step)

    def get(self, name: str, unwrap: bool = False) -> Any:
        """A tracker by name (a no-op tracker on other ranks)."""
        for tracker in self.items:
            if tracker.name == name:
                return tracker.tracker if unwrap else tracker
        return Tracker(Path("."))

    def finish(self) -> None:
        """Close every tracker."""
        for tracker in self.items:
            tracker.finish()
