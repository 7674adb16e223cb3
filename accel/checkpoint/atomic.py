"""Crash-safe directory publication: stage, fsync, rename into place, then move the ``latest`` pointer.

A checkpoint is written into ``<parent>/.tmp-<name>``; only when every file is complete and
fsynced does the main process rename it to ``<parent>/<name>`` and fsync the parent. Replacing an
existing checkpoint renames the old one aside first (``.old-<name>``), so at every instant one
complete copy exists; :func:`resolve` falls back to the aside copy if a crash hit between the two
renames. ``latest`` (a one-line file holding the name) is rewritten last, through its own
temporary file and rename, so it never names a partial checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

from accel.exceptions import CheckpointError

LATEST = "latest"
MANIFEST = "manifest.json"
_NUMBERED = re.compile(r"^checkpoint_(\d+)$")


def fsync_dir(path: str | Path) -> None:
    """Make a directory's entries (creations, renames) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems do not support fsync on directories
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    """Make a file's data durable (whichever process wrote it on this machine)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (temporary file, fsync, rename, fsync the directory)."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def staging(final: Path) -> Path:
    """The temporary directory a checkpoint is assembled in before it becomes ``final``."""
    return final.parent / f".tmp-{final.name}"


def aside(final: Path) -> Path:
    """Where the previous copy of ``final`` waits while a new one replaces it."""
    return final.parent / f".old-{final.name}"


def fresh_staging(final: Path) -> Path:
    """Create an empty staging directory (removing one left by an interrupted save)."""
    tmp = staging(final)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def publish(tmp: Path, final: Path) -> None:
    """Rename the complete staging directory to ``final``, replacing any previous copy safely."""
    fsync_dir(tmp)
    old = aside(final)
    if final.exists():
        if old.exists():  # left by an interrupted replacement; ``final`` is the complete copy
            shutil.rmtree(old)
        os.rename(final, old)
    os.rename(tmp, final)
    fsync_dir(final.parent)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def write_latest(parent: Path, name: str) -> None:
    """Point ``<parent>/latest`` at ``name``."""
    write_text(parent / LATEST, name + "\n")


def read_latest(parent: Path) -> Path | None:
    """The checkpoint ``<parent>/latest`` points at, or None."""
    pointer = parent / LATEST
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not name or "/" in name or name.startswith("."):
        raise CheckpointError(f"{pointer} holds {name!r}, not the name of a checkpoint beside it")
    return parent / name


def resolve(path: Path) -> Path:
    """``path`` itself, or its aside copy when a crash interrupted a replacement of it."""
    if (path / MANIFEST).is_file():
        return path
    old = aside(path)
    if not path.exists() and (old / MANIFEST).is_file():
        return old
    return path


def number(path: Path) -> int | None:
    """N for a directory named ``checkpoint_N``."""
    found = _NUMBERED.match(path.name)
    return int(found.group(1)) if found else None


def numbered(parent: Path) -> list[Path]:
    """Complete ``checkpoint_N`` directories in ``parent``, oldest first."""
    if not parent.is_dir():
        return []
    found = [p for p in parent.iterdir() if number(p) is not None and (p / MANIFEST).is_file()]
    return sorted(found, key=lambda p: number(p) or 0)


def prune(parent: Path, keep: int, protect: Path) -> list[Path]:
    """Delete the oldest ``checkpoint_N`` beyond ``keep`` (never ``protect``) and older interrupted saves."""
    existing = [p for p in numbered(parent) if p != protect]
    doomed = existing[: max(len(existing) - (keep - 1), 0)]
    current = number(protect) or 0
    stale = [p for p in parent.glob(".tmp-checkpoint_*") if (number(p.with_name(p.name[5:])) or current) < current]
    for path in doomed + stale:  # stale: staging directories of saves killed before they completed
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)
    return doomed
