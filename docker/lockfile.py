"""The lock files of docker/locks/<cell>/: format, inputs digest and wheel choice (standard library only).

A lock is a pip requirements file in hash-checking form: every distribution of the cell's venv
(transitive ones and the build backend for accel too), each pinned with ``==`` and exactly one
``--hash=sha256:`` line: the one wheel a build of that cell installs. Its file name follows as a
comment. A header records what it was made from::

    # cell: py3.11-cpu
    # python: 3.11
    # platform: x86_64-manylinux_2_36
    # inputs: sha256:...   (the cell in docker/matrix.json, its pins, the resolver's version)
    # body: sha256:...     (the entries below: a hand edit is caught)

``lock --check`` recomputes both digests without the network. A cell whose pins cannot be
resolved here (no wheel for its Python or libc) gets a lock with ``# unresolved: <reason>`` and
no entries; building it then stops with that reason.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from cells import BUILD_PINS, DEV_PINS, LOCKS, ROOT, RUNTIME_PINS, Cell, normalise_name, requirements_for

RUNTIME_LOCK = "requirements.txt"
DEV_LOCK = "requirements-dev.txt"
TOOLS = "requirements-tools.txt"
HEADER_KEYS = ("cell", "python", "platform", "inputs", "body", "unresolved")
ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)==(?P<version>\S+) \\\n\s+--hash=sha256:(?P<sha>[0-9a-f]{64})\n"
                   r"\s+# (?P<file>\S+\.whl)$", re.M)  # fmt: skip


@dataclass(frozen=True)
class Entry:
    name: str
    version: str
    sha256: str
    filename: str

    def render(self) -> str:
        return f"{self.name}=={self.version} \\\n    --hash=sha256:{self.sha256}\n    # {self.filename}\n"


@dataclass
class Lock:
    cell: str
    python: str
    platform: str
    inputs: str
    entries: list[Entry] = field(default_factory=list)
    unresolved: str = ""

    def body(self) -> str:
        return "".join(entry.render() for entry in sorted(self.entries, key=lambda e: normalise_name(e.name)))

    def render(self, title: str) -> str:
        body = self.body()
        lines = [
            f"# {title}",
            "# Written by `python3 docker/lock.py`; checked by `python3 docker/lock.py --check`. Do not edit.",
            f"# cell: {self.cell}",
            f"# python: {self.python}",
            f"# platform: {self.platform}",
            f"# inputs: sha256:{self.inputs}",
            f"# body: sha256:{hashlib.sha256(body.encode()).hexdigest()}",
        ]
        if self.unresolved:
            lines.append(f"# unresolved: {self.unresolved}")
        return "\n".join(lines) + "\n" + body

    def by_name(self) -> dict[str, Entry]:
        return {normalise_name(e.name): e for e in self.entries}


class LockFormatError(ValueError):
    pass


def parse(text: str, source: str) -> tuple[Lock, str]:
    """The lock in ``text`` and the body digest its header claims."""
    header: dict[str, str] = {}
    body_start = 0
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        key, sep, value = line[1:].strip().partition(": ")
        if sep and key in HEADER_KEYS:
            header[key] = value.strip()
        body_start += len(line)
    missing = [key for key in ("cell", "python", "platform", "inputs", "body") if key not in header]
    if missing:
        raise LockFormatError(f"{source}: header lacks {', '.join(missing)} (rewrite it: python3 docker/lock.py)")
    body = text[body_start:]
    entries = [Entry(m["name"], m["version"], m["sha"], m["file"]) for m in ENTRY.finditer(body)]
    if "".join(e.render() for e in entries) != body:
        raise LockFormatError(f"{source}: an entry is not `name==version`, one --hash=sha256 line and its file name")
    lock = Lock(header["cell"], header["python"], header["platform"], header["inputs"].removeprefix("sha256:"))
    lock.entries, lock.unresolved = entries, header.get("unresolved", "")
    return lock, header["body"].removeprefix("sha256:")


def read(path: Path) -> Lock:
    """Parse and integrity-check a lock; LockFormatError names the file and what is wrong."""
    lock, claimed = parse(path.read_text(), str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path))
    actual = hashlib.sha256(lock.body().encode()).hexdigest()
    if actual != claimed:
        raise LockFormatError(f"{path.name}: entries were edited by hand (body sha256 {actual[:12]}, header says "
                              f"{claimed[:12]}); rewrite it: python3 docker/lock.py")  # fmt: skip
    return lock


def lock_dir(cell: Cell, locks: Path = LOCKS) -> Path:
    return locks / str(cell["id"])


def lock_sha256(path: Path) -> str:
    """The lock's identity, as image labels and `accel env` print it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def target_platform(cell: Cell) -> str:
    """The resolver's platform for the cell: Debian bookworm's glibc 2.36, or musl."""
    return "x86_64-unknown-linux-musl" if cell["libc"] == "musl" else "x86_64-manylinux_2_36"


def tool_pins(root: Path = ROOT) -> list[str]:
    text = (root / "docker" / TOOLS).read_text()
    return sorted(re.findall(r"^([A-Za-z0-9_.-]+==\S+)", text, re.M))


def runtime_inputs(cell: Cell, root: Path = ROOT) -> list[str]:
    """The top-level pins of the cell's venv: runtime pins, torch, and the build backend."""
    minor = str(cell["python"])
    return [
        *requirements_for(minor, RUNTIME_PINS, root),
        f"torch=={cell['torch']}",
        *requirements_for(minor, BUILD_PINS, root),
    ]


def dev_inputs(cell: Cell, root: Path = ROOT) -> list[str]:
    return requirements_for(str(cell["python"]), DEV_PINS, root)


def platform_tags(cell: Cell) -> list[str]:
    """Platform tags the cell's userland runs, best first: glibc 2.36 (bookworm) or musl 1.2."""
    if cell["libc"] == "musl":
        return ["musllinux_1_2_x86_64", "musllinux_1_1_x86_64", "musllinux_1_0_x86_64"]
    aliases = {17: "manylinux2014_x86_64", 12: "manylinux2010_x86_64", 5: "manylinux1_x86_64"}
    tags = []
    for minor in range(36, 4, -1):
        tags.append(f"manylinux_2_{minor}_x86_64")
        if minor in aliases:
            tags.append(aliases[minor])
    return tags


HOST = "host"


def host_cell(default: Cell) -> Cell:
    """The host's test environment (tox): the default cell's Python and torch, plus accel's dev extras."""
    return {"id": HOST, "python": default["python"], "libc": "glibc", "variant": "cpu", "torch": default["torch"]}


def host_inputs(cell: Cell, root: Path = ROOT) -> list[str]:
    """accel's dependencies and its ``dev`` extra (pyproject.toml), with the cell's torch."""
    text = (root / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = (\[.*?\])$", text, re.M | re.S)
    dev = re.search(r"^dev = (\[.*?\])$", text, re.M | re.S)
    if deps is None or dev is None:
        raise LockFormatError("pyproject.toml: no `dependencies = [...]` or `dev = [...]` to lock for the host")
    pins = [p for p in ast.literal_eval(deps[1]) + ast.literal_eval(dev[1]) if not p.startswith("torch")]
    return [f"torch=={cell['torch']}", *sorted(pins), *requirements_for(str(cell["python"]), BUILD_PINS, root)]


def inputs_digest(cell: Cell, root: Path = ROOT) -> str:
    """sha256 over everything a lock is resolved from (no host paths, no time)."""
    record = {
        "cell": {key: cell.get(key) for key in ("id", "python", "libc", "variant", "torch")},
        "platform": target_platform(cell),
        "platform_tags": platform_tags(cell),
        "runtime": host_inputs(cell, root) if cell["id"] == HOST else runtime_inputs(cell, root),
        "dev": [] if cell["id"] == HOST else dev_inputs(cell, root),
        "tools": tool_pins(root),
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


# --- which wheel a cell installs ------------------------------------------------------------------


def tag_ranks(python: str, platforms: list[str]) -> dict[tuple[str, str, str], int]:
    """Wheel tags the cell accepts, best first (the order pip prefers them in)."""
    major, minor = (int(part) for part in python.split("."))
    cp = f"cp{major}{minor}"
    interpreters = [(cp, cp), (cp, "abi3"), (cp, "none")]
    interpreters += [(f"cp{major}{m}", "abi3") for m in range(minor - 1, 1, -1)]
    generic = [f"py{major}{minor}", f"py{major}", *(f"py{major}{m}" for m in range(minor - 1, -1, -1))]
    order: list[tuple[str, str, str]] = [(i, a, p) for i, a in interpreters for p in platforms]
    order += [(py, "none", p) for py in generic for p in platforms]
    order += [(cp, "none", "any")] + [(py, "none", "any") for py in generic]
    return {tag: rank for rank, tag in enumerate(order)}


def wheel_rank(filename: str, ranks: dict[tuple[str, str, str], int]) -> int | None:
    """The best rank of any tag in a wheel's file name; None when the cell accepts none."""
    parts = filename.removesuffix(".whl").split("-")
    if len(parts) < 5:
        return None
    pys, abis, plats = (part.split(".") for part in parts[-3:])
    found = [ranks[(py, abi, plat)] for py in pys for abi in abis for plat in plats if (py, abi, plat) in ranks]
    return min(found) if found else None
