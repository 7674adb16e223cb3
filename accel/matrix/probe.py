"""Wheel evidence for a cell, with no download: which index was asked, for which tags, what it has.

``pip index versions NAME`` with the cell's Python, ABI and platform tags lists the versions the
configured indexes publish as wheels for that cell. torch is asked on the indexes this host's pip
is configured with plus the cell's torch index (docker/matrix.json ``torch_index``), whose
reachability is probed first; an Alpine cell asks for every pinned dependency, so that its first
missing wheel is named (the day a musllinux torch appears, the probe passes without code changes).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from accel.matrix.model import Cell
from accel.matrix.torch_wheel import probe_index


@dataclass(frozen=True)
class WheelProbe:
    """What the indexes publish for one pinned requirement on one cell."""

    name: str
    version: str
    available: bool
    versions: tuple[str, ...]
    indexes: str
    tags: str

    @property
    def evidence(self) -> str:
        found = "wheel found" if self.available else "no wheel"
        listed = ", ".join(self.versions[:4]) + (", ..." if len(self.versions) > 4 else "")
        there = f"versions there: {listed}" if self.versions else "no wheel of any version (and no sdist accepted)"
        return f"{self.name}=={self.version}: {found} (asked {self.indexes} for {self.tags}; {there})"


def pip_indexes() -> str:
    """The indexes this host's pip asks, as ``pip config list`` names them (PyPI unless replaced)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    index = "https://pypi.org/simple"
    extras: list[str] = []
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        urls = value.strip().strip("'\"").split()
        if key.endswith(".index-url") and urls:
            index = urls[0]
        elif key.endswith(("extra-index-url", "find-links")):
            extras += urls
    return " + ".join(dict.fromkeys([index, *extras]))


def tags_of(cell: Cell) -> str:
    older = len(cell.platforms) - 1
    return f"{cell.abi} on {cell.platforms[0]}" + (f" (or {older} older tags)" if older else "")


def available_versions(cell: Cell, name: str, extra_index: str = "") -> tuple[str, ...]:
    """Versions of ``name`` with a wheel for the cell (empty: none at all)."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", name, "--only-binary=:all:"]
    cmd += ["--python-version", cell.python, "--implementation", "cp", "--abi", cell.abi, "--abi", "abi3"]
    cmd += ["--abi", "none"]
    for tag in cell.platforms:
        cmd += ["--platform", tag]
    if extra_index:
        cmd += ["--extra-index-url", extra_index]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    for line in proc.stdout.splitlines():
        if line.startswith("Available versions:"):
            return tuple(v.strip() for v in line.split(":", 1)[1].split(","))
    return ()


def probe(cell: Cell, name: str, version: str, indexes: str) -> WheelProbe:
    """Is ``name==version`` published as a wheel for the cell? torch also asks the cell's torch index."""
    extra = ""
    asked = indexes
    if name == "torch" and cell.torch_index:
        unreachable = probe_index(cell.torch_index)
        if unreachable is None:
            extra = cell.torch_index
            asked = f"{indexes} + {cell.torch_index}"
        else:
            asked = f"{indexes} (the cell's index {cell.torch_index} is not reachable from here: {unreachable})"
    versions = available_versions(cell, name, extra)
    return WheelProbe(name, version, version in versions, versions, asked, tags_of(cell))


def requirement_pins(text: str, python: str) -> list[tuple[str, str]]:
    """(name, version) of each ``name==version`` line of docker/requirements.txt that applies to ``python``."""
    target = tuple(int(p) for p in python.split("."))
    pins = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        spec, _, marker = (part.strip() for part in line.partition(";"))
        if marker and not _marker_holds(marker, target):
            continue
        name, _, version = spec.partition("==")
        pins.append((name.strip(), version.strip()))
    return pins


def _marker_holds(marker: str, target: tuple[int, ...]) -> bool:
    import operator

    ops = {"==": operator.eq, "!=": operator.ne, "<=": operator.le, ">=": operator.ge, "<": operator.lt}
    ops[">"] = operator.gt
    for symbol in ("==", "!=", "<=", ">=", "<", ">"):
        left, sep, right = marker.partition(symbol)
        if sep and left.strip() == "python_version":
            wanted = tuple(int(p) for p in right.strip().strip("'\"").split("."))
            return bool(ops[symbol](target, wanted))
    raise ValueError(f"unsupported marker {marker!r} (only python_version comparisons)")


def missing_status(cell: Cell, evidence: WheelProbe) -> str:
    """The status of a Debian cell whose torch wheel was not found: not built here, or unsupported upstream."""
    if cell.variant == "cpu" and cell.torch_index and "not reachable" in evidence.indexes:
        return (
            f"not built (torch {cell.torch}: no {cell.abi} wheel on the indexes this host reaches and the CPU index "
            f"{cell.torch_index} is not reachable from here; on a host that reaches it: "
            f"python3 docker/bootstrap.py --cell {cell.id} && accel-matrix check --cells {cell.id})"
        )
    return f"unsupported (upstream: torch {cell.torch} publishes no wheel for {evidence.tags})"
