"""Cells of the matrix (docker/matrix.json) and the wheel probe that needs no download."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Cell:
    """One image: python x os/libc x variant, with its pins (a row of docker/matrix.json)."""

    id: str
    python: str
    os: str
    libc: str
    variant: str
    torch: str
    base: str
    dockerfile: str
    ci: bool = False
    platforms: tuple[str, ...] = ()

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def image(self) -> str:
        return f"accel:{self.id}"


@dataclass
class Matrix:
    root: Path
    cells: list[Cell]
    raw: dict[str, Any] = field(repr=False)

    def find(self, cell_id: str) -> Cell:
        for cell in self.cells:
            if cell.id == cell_id:
                return cell
        known = ", ".join(c.id for c in self.cells)
        raise SystemExit(f"accel.matrix: unknown cell {cell_id!r}; docker/matrix.json has: {known}")


def find_root(start: Path) -> Path:
    """The checkout holding docker/matrix.json: ``start`` or one of its parents."""
    for path in (start, *start.parents):
        if (path / "docker" / "matrix.json").is_file():
            return path
    raise SystemExit(f"accel.matrix: no docker/matrix.json in {start} or above; run from an accel checkout")


def load(root: Path) -> Matrix:
    raw = json.loads((root / "docker" / "matrix.json").read_text())
    tags: dict[str, list[str]] = raw["platform_tags"]
    cells = [
        Cell(
            id=c["id"],
            python=c["python"],
            os=c["os"],
            libc=c["libc"],
            variant=c["variant"],
            torch=c["torch"],
            base=c["base"],
            dockerfile=c["dockerfile"],
            ci=bool(c.get("ci", False)),
            platforms=tuple(tags[c["libc"]]),
        )
        for c in raw["cells"]
    ]
    return Matrix(root, cells, raw)


@dataclass(frozen=True)
class Probe:
    """Whether the pinned torch has a wheel for a cell, as the configured indexes say."""

    available: bool
    detail: str


def probe_torch(cell: Cell) -> Probe:
    """``pip index versions torch`` for the cell's Python and platform tags (lists, downloads nothing)."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", "torch", "--only-binary=:all:"]
    cmd += ["--python-version", cell.python, "--implementation", "cp", "--abi", cell.abi]
    for tag in cell.platforms:
        cmd += ["--platform", tag]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    versions: list[str] = []
    for line in proc.stdout.splitlines():
        if line.startswith("Available versions:"):
            versions = [v.strip() for v in line.split(":", 1)[1].split(",")]
    older = len(cell.platforms) - 1
    where = f"{cell.abi} on {cell.platforms[0]}" + (f" or {older} older tags" if older else "")
    if cell.torch in versions:
        return Probe(True, f"torch {cell.torch}: wheel for {where}")
    if not versions:
        return Probe(False, f"torch: no wheel at all for {where} on the configured indexes (and no sdist)")
    newest = versions[0]
    return Probe(False, f"torch {cell.torch}: no wheel for {where} on this host's indexes (newest there: {newest})")
