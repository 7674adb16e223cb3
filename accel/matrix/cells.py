"""The wheel probe for a cell: does the pinned torch exist for its Python and platform tags (no download)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from accel.matrix.model import Cell


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
