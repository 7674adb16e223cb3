"""The cell matrix as the build scripts under docker/ read it (standard library only).

docker/matrix.json lists the cells; docker/requirements*.txt hold the top-level pins. The
scripts here (bootstrap, lock, reproduce) run with any python3 >= 3.10 and without accel
installed, so they read the JSON themselves.
"""

from __future__ import annotations

import operator
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
MATRIX = DOCKER / "matrix.json"
LOCKS = DOCKER / "locks"
CACHE = ROOT / ".cache"
WHEELHOUSE = CACHE / "wheelhouse"
# What a cell's image runs on; its venv is made from the files of these requirement files.
RUNTIME_PINS = "requirements.txt"
BUILD_PINS = "requirements-build.txt"
DEV_PINS = "requirements-dev.txt"

Cell = dict[str, Any]


class BuildInputError(SystemExit):
    """A bad input (unknown cell, stale lock, wrong wheel): one line for the user, exit 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 2


def load_matrix(root: Path = ROOT) -> dict[str, Any]:
    """docker/matrix.json, validated by the cell model (accel/matrix/model.py: standard library only)."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from accel.matrix.model import MatrixError, load

    try:
        data: dict[str, Any] = load(root / "docker" / "matrix.json").raw
    except MatrixError as exc:
        raise BuildInputError(str(exc)) from None
    return data


def cells(matrix: dict[str, Any]) -> list[Cell]:
    return list(matrix["cells"])


def find_cell(matrix: dict[str, Any], cell_id: str | None) -> Cell:
    every = cells(matrix)
    if cell_id is None:
        return next(c for c in every if c.get("default"))
    for cell in every:
        if cell["id"] == cell_id:
            return cell
    known = ", ".join(c["id"] for c in every)
    raise BuildInputError(f"unknown cell {cell_id!r}; docker/matrix.json has: {known}")


def accel_version(root: Path = ROOT) -> str:
    for line in (root / "pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    return "0"


MARKER = re.compile(r'^python_version\s*(==|!=|<=|>=|<|>)\s*["\']([\d.]+)["\']$')
_OPS = {"==": operator.eq, "!=": operator.ne, "<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


def requirements_for(minor: str, name: str, root: Path = ROOT) -> list[str]:
    """The pins of docker/<name> that apply to Python ``minor``.

    pip and uv evaluate environment markers against the interpreter running them unless told
    otherwise, so the markers (only ``python_version`` comparisons) are resolved here.
    """
    target = tuple(int(part) for part in minor.split("."))
    pins = []
    path = root / "docker" / name
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        spec, _, marker = (part.strip() for part in line.partition(";"))
        if marker:
            match = MARKER.match(marker)
            if match is None:
                raise BuildInputError(f"docker/{name}: unsupported marker {marker!r} (only python_version comparisons)")
            if not _OPS[match[1]](target, tuple(int(part) for part in match[2].split("."))):
                continue
        pins.append(spec)
    return pins


def normalise_name(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()
