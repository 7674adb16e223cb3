"""The cell model: docker/matrix.json as typed, validated objects (standard library only, no torch).

Everything that needs a cell reads it through :func:`load`: the matrix runner and its report,
docker/bootstrap.py, and the tests that prove the pins repeated in Dockerfile ARG defaults,
compose.yaml and tox.ini agree with this file. A malformed file (missing field, duplicate id,
unknown variant or libc, no default cell) is a :class:`MatrixError` with a one-line message
naming the file, the cell and the fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from accel.exceptions import AccelError

VARIANTS = ("cpu", "cuda")
MATRIX_FILE = Path("docker") / "matrix.json"
_MINOR = re.compile(r"^3\.\d+$")


class MatrixError(AccelError, ValueError):
    """docker/matrix.json is malformed or a requested cell is not in it."""

    exit_code = 2


@dataclass(frozen=True)
class Cell:
    """One image: python x os/libc x variant, with its pins (a row of docker/matrix.json)."""

    id: str
    python: str
    cpython: str
    os: str
    libc: str
    variant: str
    torch: str
    base: str
    dockerfile: str
    default: bool = False
    ci: bool = False
    platforms: tuple[str, ...] = ()
    torch_index: str = ""

    @property
    def abi(self) -> str:
        """The CPython ABI tag, e.g. ``cp311``."""
        return "cp" + self.python.replace(".", "")

    @property
    def image(self) -> str:
        """The tag the image of this cell is built as."""
        return f"accel:{self.id}"

    @property
    def torch_public(self) -> str:
        """The torch version without its local label (``2.13.0+cpu`` -> ``2.13.0``)."""
        return self.torch.split("+", 1)[0]


@dataclass(frozen=True)
class Unsupported:
    """An environment a user may look up that accel does not support, with the reason."""

    environment: str
    reason: str
    python: str = ""


@dataclass(frozen=True)
class Debian:
    suite: str
    mirror: str
    image: str


@dataclass(frozen=True)
class Matrix:
    """The whole of docker/matrix.json."""

    path: Path
    debian: Debian
    platform_tags: dict[str, tuple[str, ...]]
    torch_index: dict[str, str]
    cells: tuple[Cell, ...]
    unsupported: tuple[Unsupported, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    errors: tuple[str, ...] = ()

    @property
    def root(self) -> Path:
        """The checkout holding docker/matrix.json."""
        return self.path.parent.parent

    @property
    def default(self) -> Cell:
        return next(cell for cell in self.cells if cell.default)

    def find(self, cell_id: str) -> Cell:
        for cell in self.cells:
            if cell.id == cell_id:
                return cell
        known = ", ".join(c.id for c in self.cells)
        raise MatrixError(f"unknown cell {cell_id!r}; {MATRIX_FILE} has: {known}")

    def select(self, cell_ids: list[str]) -> list[Cell]:
        """The cells named, in the file's order; an unknown id is a MatrixError naming it."""
        wanted = {self.find(cell_id).id for cell_id in cell_ids}
        return [cell for cell in self.cells if cell.id in wanted]


_CELL_FIELDS = {f.name for f in fields(Cell)} - {"platforms", "torch_index"}
_CELL_REQUIRED = {f.name for f in fields(Cell) if f.name in _CELL_FIELDS and f.name not in ("default", "ci")}


def find_root(start: Path) -> Path:
    """The checkout holding docker/matrix.json: ``start`` or one of its parents."""
    for path in (start, *start.parents):
        if (path / MATRIX_FILE).is_file():
            return path
    raise MatrixError(f"no {MATRIX_FILE} in {start} or above; run from an accel checkout or pass --root")


def load(path: Path, strict: bool = True) -> Matrix:
    """Read and validate docker/matrix.json (``path`` is the file or the checkout holding it).

    ``strict=False`` (the runner): a malformed cell is left out and its one-line error kept in
    ``errors``, so that the other cells still run; a malformed file as a whole still raises.
    """
    if path.is_dir():
        path = path / MATRIX_FILE
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise MatrixError(f"{path}: cannot be read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise MatrixError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    return parse(raw, path, strict)


def parse(raw: Any, path: Path, strict: bool = True) -> Matrix:
    """Validate a decoded docker/matrix.json; the first problem is a one-line MatrixError."""
    where = str(path)
    top = _mapping(raw, where)
    debian = _mapping(_key(top, "debian", where), f"{where}: debian")
    tags_raw = _mapping(_key(top, "platform_tags", where), f"{where}: platform_tags")
    tags = {k: tuple(_strings(v, f"{where}: platform_tags.{k}")) for k, v in tags_raw.items() if not k.startswith("_")}
    index_raw = _mapping(_key(top, "torch_index", where), f"{where}: torch_index")
    index = {k: str(v) for k, v in index_raw.items() if not k.startswith("_")}
    missing_index = [v for v in VARIANTS if v not in index]
    if missing_index:
        raise MatrixError(f'{where}: torch_index has no entry for variant {missing_index[0]!r}; add it ("" for PyPI)')
    cells_raw = _key(top, "cells", where)
    if not isinstance(cells_raw, list) or not cells_raw:
        raise MatrixError(f"{where}: 'cells' must be a non-empty list of cell objects")
    cells: list[Cell] = []
    errors: list[str] = []
    seen: set[str] = set()
    for number, item in enumerate(cells_raw, 1):
        try:
            cell = _cell(item, f"{where}: cell #{number}", tags, index)
            if cell.id in seen:
                raise MatrixError(f"{where}: duplicate cell id {cell.id!r} (cell #{number}); every id must be unique")
        except MatrixError as exc:
            if strict:
                raise
            errors.append(str(exc))
            continue
        seen.add(cell.id)
        cells.append(cell)
    defaults = [cell.id for cell in cells if cell.default]
    if len(defaults) != 1 and (strict or len(defaults) > 1):
        raise MatrixError(f'{where}: exactly one cell needs "default": true (found {len(defaults)}: {defaults})')
    unsupported = []
    for number, item in enumerate(top.get("unsupported", []), 1):
        entry = _mapping(item, f"{where}: unsupported #{number}")
        env = str(_key(entry, "environment", f"{where}: unsupported #{number}"))
        reason = str(_key(entry, "reason", f"{where}: unsupported {env!r}"))
        if not reason.startswith("unsupported ("):
            raise MatrixError(f"{where}: unsupported {env!r}: reason must read 'unsupported (...)', not {reason!r}")
        unsupported.append(Unsupported(env, reason, str(entry.get("python", ""))))
    deb = Debian(*(str(_key(debian, k, f"{where}: debian")) for k in ("suite", "mirror", "image")))
    return Matrix(path, deb, tags, index, tuple(cells), tuple(unsupported), top, tuple(errors))


def _cell(item: Any, where: str, tags: dict[str, tuple[str, ...]], index: dict[str, str]) -> Cell:
    data = _mapping(item, where)
    if isinstance(data.get("id"), str):
        where = f"{where.rsplit(': ', 1)[0]}: cell {data['id']!r}"
    unknown = sorted(set(data) - _CELL_FIELDS)
    if unknown:
        raise MatrixError(f"{where}: unknown field {unknown[0]!r}; fields are: {', '.join(sorted(_CELL_FIELDS))}")
    missing = sorted(_CELL_REQUIRED - set(data))
    if missing:
        raise MatrixError(f"{where}: missing field {missing[0]!r}")
    values = {k: data[k] for k in _CELL_REQUIRED}
    bad = [k for k, v in values.items() if not isinstance(v, str) or not v]
    if bad:
        raise MatrixError(f"{where}: field {bad[0]!r} must be a non-empty string, not {values[bad[0]]!r}")
    flags = {k: data.get(k, False) for k in ("default", "ci")}
    if any(not isinstance(v, bool) for v in flags.values()):
        raise MatrixError(f"{where}: 'default' and 'ci' must be true or false")
    if values["variant"] not in VARIANTS:
        raise MatrixError(f"{where}: unknown variant {values['variant']!r}; choose from {', '.join(VARIANTS)}")
    if values["libc"] not in tags:
        raise MatrixError(f"{where}: unknown libc {values['libc']!r}; platform_tags has: {', '.join(sorted(tags))}")
    if not _MINOR.match(values["python"]) or not values["cpython"].startswith(values["python"] + "."):
        raise MatrixError(
            f"{where}: python {values['python']!r} / cpython {values['cpython']!r} must read like 3.11 / 3.11.7"
        )
    return Cell(**values, **flags, platforms=tags[values["libc"]], torch_index=index[values["variant"]])


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MatrixError(f"{where}: expected an object, found {type(value).__name__}")
    return value


def _key(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise MatrixError(f"{where}: missing field {key!r}")
    return data[key]


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MatrixError(f"{where}: expected a list of strings")
    return value
