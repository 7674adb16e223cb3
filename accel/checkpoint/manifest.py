"""``manifest.json``: what a checkpoint holds, written last into the staging directory.

It records the format version, the world size and strategy that wrote it, how many models,
optimizers, schedulers, DataLoaders and registered objects it covers, the step counters, the data
positions, the fp16 scaler state, and every file with its size. Loading checks all of it before
touching a single parameter, so a truncated file or a mismatched setup fails with a message naming
the file and what differs.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from accel.checkpoint.atomic import MANIFEST
from accel.exceptions import CheckpointError
from accel.version import __version__

FORMAT = "accel-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Manifest:
    """The contents of ``manifest.json``."""

    world_size: int
    strategy: str
    counts: dict[str, int]
    step: int = 0
    iteration: int = 0
    sharded: bool = False
    mixed_precision: str = "no"
    scaler: dict[str, Any] = field(default_factory=dict)
    dataloaders: list[dict[str, int]] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    torch_version: str = field(default_factory=lambda: str(torch.__version__))
    accel_version: str = __version__
    created: str = field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat())

    def to_json(self) -> str:
        """Pretty JSON text."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def record_files(self, directory: Path) -> None:
        """List every file below ``directory`` (except the manifest) with its size."""
        self.files = {
            str(p.relative_to(directory)): p.stat().st_size
            for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != MANIFEST
        }

    def verify_files(self, directory: Path) -> None:
        """CheckpointError naming the first listed file that is missing or has the wrong size."""
        for name, size in self.files.items():
            path = directory / name
            try:
                found = path.stat().st_size
            except FileNotFoundError:
                raise CheckpointError(f"{path} is missing (listed in {directory / MANIFEST})") from None
            if found != size:
                raise CheckpointError(
                    f"{path} is {found} bytes but the manifest recorded {size}: the file is truncated or was changed"
                )


def read(directory: Path) -> Manifest:
    """Parse and validate ``directory/manifest.json``."""
    path = directory / MANIFEST
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{path} is missing: {directory} is not an accel checkpoint (or its save never completed)"
        ) from None
    except ValueError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); the file is damaged") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an accel checkpoint manifest (format={data.get('format')!r})")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {version!r}, newer than this accel reads ({FORMAT_VERSION}); "
            f"upgrade accel (it was written by accel {data.get('accel_version')})"
        )
    known = set(Manifest.__dataclass_fields__)
    try:
        return Manifest(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise CheckpointError(f"{path} lacks required entries ({exc})") from None


def check_counts(manifest: Manifest, current: dict[str, int], directory: Path) -> None:
    """CheckpointError when the prepared objects do not match what the checkpoint holds."""
    diffs = [
        f"{kind}: checkpoint has {manifest.counts.get(kind, 0)}, this run prepared {count}"
        for kind, count in current.items()
        if manifest.counts.get(kind, 0) != count
    ]
    if diffs:
        raise CheckpointError(
            f"{directory / MANIFEST} does not match this run ({'; '.join(diffs)}); prepare() the same "
            "objects (and register_for_checkpointing the same ones) as the run that saved it"
        )
