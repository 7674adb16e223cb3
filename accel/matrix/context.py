"""A cell's build context (as a tar for docker-py) and its input digest (what the result cache keys on).

The context is what .dockerignore allows (the package source, docker/, pyproject.toml, README,
LICENSE) plus only this cell's wheelhouse: all wheelhouses together are several GB. The digest
covers the same files, the cell's pins, and the test suite that runs in the cell; wheels are
keyed by name and size (their names carry the version; hashing GBs on every run would not pay).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO

from accel.matrix.model import Cell

CONTEXT_FILES = ("Dockerfile", "pyproject.toml", "README.md", "LICENSE")
CONTEXT_DIRS = ("accel", "docker")
SUITE_DIRS = ("tests",)
SKIP_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def wheelhouse(root: Path, cell: Cell) -> Path:
    return root / ".cache" / "wheelhouse" / cell.id


def _walk(base: Path) -> Iterator[Path]:
    for path in sorted(base.rglob("*")):
        if path.is_file() and not SKIP_PARTS & set(path.relative_to(base).parts) and path.suffix != ".pyc":
            yield path


def context_paths(root: Path, cell: Cell) -> list[tuple[Path, str]]:
    """(file, name in the context) for everything the cell's build may read."""
    items = [(root / name, name) for name in CONTEXT_FILES if (root / name).is_file()]
    for name in CONTEXT_DIRS:
        items += [(path, path.relative_to(root).as_posix()) for path in _walk(root / name)]
    wheels = wheelhouse(root, cell)
    if wheels.is_dir():
        items += [(path, path.relative_to(root).as_posix()) for path in _walk(wheels)]
    return items


def write_context(root: Path, cell: Cell, fileobj: IO[bytes], extra: dict[str, bytes] | None = None) -> None:
    """The context as an uncompressed tar; ``extra`` adds generated files (name -> content)."""
    # GNU format: a PAX header as the first member hides the archive from docker build's sniffing.
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path, name in context_paths(root, cell):
            tar.add(path, arcname=name, recursive=False)
        for name, content in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    fileobj.seek(0)


def add_tree(tar: tarfile.TarFile, source: Path, arcname: str) -> int:
    """Add a user's project folder (skipping caches, .git and virtual environments); the file count."""
    count = 0
    skip = SKIP_PARTS | {".git", ".venv", "venv", ".tox", "node_modules"}
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if skip & set(rel.parts) or not path.is_file():
            continue
        tar.add(path, arcname=f"{arcname}/{rel.as_posix()}", recursive=False)
        count += 1
    return count


def digest(root: Path, cell: Cell) -> str:
    """sha256 of the cell's inputs: pins, build context (wheels by name and size) and test suite."""
    h = hashlib.sha256(json.dumps(asdict(cell), sort_keys=True).encode())
    wheels = wheelhouse(root, cell)
    suite = [(p, p.relative_to(root).as_posix()) for d in SUITE_DIRS for p in _walk(root / d)]
    for path, name in [*context_paths(root, cell), *suite]:
        h.update(name.encode() + b"\0")
        if path.suffix == ".whl" and path.is_relative_to(wheels):
            h.update(str(path.stat().st_size).encode())
        else:
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]
