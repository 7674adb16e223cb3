"""Write or check the locks of every cell: docker/locks/<cell>/requirements{,-dev}.txt.

    python3 docker/lock.py                 # resolve every cell, rewrite its locks, print what changed
    python3 docker/lock.py --cell ID       # only these cells (repeatable)
    python3 docker/lock.py --check         # exit 1 (with the diff) when a lock no longer matches its inputs

Inputs: the cells of docker/matrix.json (Python, libc, variant, torch pin) and the top-level pins
of docker/requirements.txt, requirements-build.txt (accel's build backend) and
requirements-dev.txt. Each cell is resolved for its own Python and platform (glibc 2.36 or
musl), also for cells this host cannot build, by uv (pinned in docker/requirements-tools.txt,
installed with hashes into .cache/tools). Wheels come from PyPI and from the find-links of this
host's pip configuration (where a CPU build of torch may lie). ``--check`` needs no network: it
compares each lock's recorded inputs digest and body digest with the files here.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cells import CACHE, LOCKS, ROOT, BuildInputError, Cell, cells, find_cell, load_matrix, normalise_name
from lockfile import (
    DEV_LOCK,
    HOST,
    RUNTIME_LOCK,
    TOOLS,
    Entry,
    Lock,
    LockFormatError,
    dev_inputs,
    host_cell,
    host_inputs,
    inputs_digest,
    lock_dir,
    platform_tags,
    read,
    runtime_inputs,
    tag_ranks,
    target_platform,
    wheel_rank,
)

TOOLS_VENV = CACHE / "tools"
RESOLVE_TIMEOUT = 300


def say(message: str) -> None:
    print(f"[lock] {message}", flush=True)


def uv() -> Path:
    """uv from docker/requirements-tools.txt, installed in hash-checking mode into .cache/tools."""
    exe = TOOLS_VENV / "bin" / "uv"
    stamp = TOOLS_VENV / "requirements-tools.txt"
    wanted = (ROOT / "docker" / TOOLS).read_text()
    if exe.exists() and stamp.exists() and stamp.read_text() == wanted:
        return exe
    say(f"installing {TOOLS} into {TOOLS_VENV.relative_to(ROOT)}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", TOOLS_VENV], check=True)
    pip = [TOOLS_VENV / "bin" / "python", "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps"]
    subprocess.run([*pip, "-r", ROOT / "docker" / TOOLS], check=True)
    stamp.write_text(wanted)
    return exe


def find_links() -> list[str]:
    """The find-links folders of this host's pip configuration (e.g. a local CPU torch wheel)."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    links: list[str] = []
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".find-links"):
            links += [v for v in value.strip().strip("'\"").split() if v not in links]
    return links


def compile_pylock(cell: Cell, pins: list[str], constraints: list[str], tmp: Path) -> dict[str, object]:
    """uv's resolution of ``pins`` for the cell, as PEP 751 data (every file with its hash)."""
    import tomllib

    name = "dev" if constraints else "runtime"
    (tmp / f"{name}.in").write_text("\n".join(pins) + "\n")
    cmd: list[str | Path] = [uv(), "pip", "compile", "--quiet", "--no-header", "--only-binary", ":all:"]
    cmd += ["--python-version", str(cell["python"]), "--python-platform", target_platform(cell)]
    cmd += ["--index-url", "https://pypi.org/simple"]
    for link in find_links():
        cmd += ["--find-links", link]
    if constraints:
        (tmp / "constraints.txt").write_text("\n".join(constraints) + "\n")
        cmd += ["--constraint", tmp / "constraints.txt"]
    cmd += [tmp / f"{name}.in", "-o", tmp / f"pylock.{name}.toml"]
    env = {**os.environ, "UV_CACHE_DIR": str(CACHE / "uv"), "UV_NO_CONFIG": "1"}
    try:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=RESOLVE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise UnresolvedError(f"uv found no resolution within {RESOLVE_TIMEOUT} s") from None
    if proc.returncode != 0:
        raise UnresolvedError(one_line(proc.stderr or proc.stdout))
    data: dict[str, object] = tomllib.loads((tmp / f"pylock.{name}.toml").read_text())
    return data


class UnresolvedError(Exception):
    pass


NO_WHEELS = re.compile(r"(\S+) has no wheels with a matching ([\w ]+? tag) \(e\.g\., `([^`]+)`\)")


def one_line(text: str) -> str:
    """uv's failure as one stable line (its wording of an unsatisfiable pin varies between runs)."""
    missing = sorted({f"{m[1]} has no wheel with a matching {m[2]} ({m[3]})" for m in NO_WHEELS.finditer(text)})
    if missing:
        return "no solution: " + "; ".join(missing)
    lines = [line.strip(" \u2502\u2570\u2500\u25b6\u00d7") for line in text.strip().splitlines()]
    return " ".join(line for line in lines if line and not line.startswith("hint"))[:400]


def entries_from(cell: Cell, pylock: dict[str, object]) -> list[Entry]:
    ranks = tag_ranks(str(cell["python"]), platform_tags(cell))
    entries = []
    packages = pylock.get("packages", [])
    assert isinstance(packages, list)
    for package in packages:
        wheels = []
        for wheel in package.get("wheels", []):
            filename = str(wheel.get("name") or wheel["url"].rsplit("/", 1)[-1]).replace("%2B", "+")
            rank = wheel_rank(filename, ranks)
            if rank is not None:
                wheels.append((rank, filename, wheel["hashes"]["sha256"]))
        if not wheels:
            raise UnresolvedError(
                f"{package['name']} {package['version']}: no wheel for {target_platform(cell)} cp{cell['python']}"
            )
        _, filename, sha = min(wheels)
        entries.append(Entry(normalise_name(package["name"]), str(package["version"]), sha, filename))
    return entries


def resolve_host(cell: Cell) -> Lock:
    """docker/locks/host/requirements-dev.txt: the host's tox environments, one file."""
    lock = Lock(HOST, str(cell["python"]), target_platform(cell), inputs_digest(cell))
    with tempfile.TemporaryDirectory(prefix="accel-lock-") as tmp:
        try:
            lock.entries = entries_from(cell, compile_pylock(cell, host_inputs(cell), [], Path(tmp)))
        except UnresolvedError as exc:
            lock.unresolved = str(exc)
    return lock


def resolve(cell: Cell) -> tuple[Lock, Lock]:
    digest = inputs_digest(cell)
    runtime = Lock(str(cell["id"]), str(cell["python"]), target_platform(cell), digest)
    dev = Lock(str(cell["id"]), str(cell["python"]), target_platform(cell), digest)
    with tempfile.TemporaryDirectory(prefix="accel-lock-") as tmp:
        try:
            runtime.entries = entries_from(cell, compile_pylock(cell, runtime_inputs(cell), [], Path(tmp)))
            pinned = [f"{e.name}=={e.version}" for e in runtime.entries]
            dev_all = entries_from(cell, compile_pylock(cell, dev_inputs(cell), pinned, Path(tmp)))
            dev.entries = [e for e in dev_all if e.name not in runtime.by_name()]
        except UnresolvedError as exc:
            runtime.entries, dev.entries = [], []
            runtime.unresolved = dev.unresolved = str(exc)
    return runtime, dev


def diff(cell_id: str, old: Lock | None, new: Lock) -> list[str]:
    """What changed, one line each: `cell: package old -> new`, `(hash changed)`, added, removed."""
    if old is None:
        return [f"{cell_id}: new lock ({len(new.entries)} distributions{', unresolved' if new.unresolved else ''})"]
    lines = []
    before, after = old.by_name(), new.by_name()
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if a is None and b is not None:
            lines.append(f"{cell_id}: + {name} {b.version}")
        elif b is None and a is not None:
            lines.append(f"{cell_id}: - {name} {a.version}")
        elif a is not None and b is not None and a.version != b.version:
            lines.append(f"{cell_id}: {name} {a.version} -> {b.version}")
        elif a is not None and b is not None and a.sha256 != b.sha256:
            lines.append(
                f"{cell_id}: {name} {a.version} (hash changed: {a.sha256[:12]} -> {b.sha256[:12]}, {b.filename})"
            )
    if old.unresolved != new.unresolved:
        lines.append(f"{cell_id}: unresolved: {old.unresolved or '-'} -> {new.unresolved or '-'}")
    return lines


def read_or_none(path: Path) -> Lock | None:
    try:
        return read(path)
    except (OSError, LockFormatError):
        return None


def write(matrix: dict[str, object], selected: list[Cell]) -> int:
    uv()
    known = {str(c["id"]) for c in cells(matrix)} | {HOST}
    for stale in sorted(p for p in LOCKS.glob("*") if p.is_dir() and p.name not in known):
        say(f"{stale.name}: removing the lock of a cell docker/matrix.json no longer has")
        shutil.rmtree(stale)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: (c, *resolve(c)), selected))
    changes = 0
    for cell, runtime, dev in results:
        folder = lock_dir(cell)
        folder.mkdir(parents=True, exist_ok=True)
        for name, lock, title in ((RUNTIME_LOCK, runtime, "venv"), (DEV_LOCK, dev, "dev target (on top of the venv)")):
            lines = diff(str(cell["id"]), read_or_none(folder / name), lock)
            changes += len(lines)
            for line in lines:
                say(f"{line}  [{name}]")
            (folder / name).write_text(lock.render(f"accel lock for the {title} of cell {cell['id']}"))
        state = (
            f"unresolved: {runtime.unresolved}"
            if runtime.unresolved
            else f"{len(runtime.entries)} + {len(dev.entries)} dev"
        )
        say(f"{cell['id']}: {state}")
    if len(selected) == len(cells(matrix)):
        host = resolve_host(host_cell(find_cell(matrix, None)))
        path = LOCKS / HOST / DEV_LOCK
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = diff(HOST, read_or_none(path), host)
        changes += len(lines)
        for line in lines:
            say(line)
        path.write_text(
            host.render("accel lock for the host's test environments (tox): accel's dependencies and dev extra")
        )
        say(f"{HOST}: {f'unresolved: {host.unresolved}' if host.unresolved else f'{len(host.entries)} distributions'}")
    say(f"{changes} change(s)" if changes else "no changes")
    return 0


def check(matrix: dict[str, object], selected: list[Cell], root: Path = ROOT) -> list[str]:
    """Problems with the committed locks, one line each (empty: every lock matches its inputs)."""
    problems = []
    for cell in selected:
        digest = inputs_digest(cell, root)
        for name in (RUNTIME_LOCK, DEV_LOCK):
            path = lock_dir(cell, root / "docker" / "locks") / name
            if not path.exists():
                problems.append(f"{cell['id']}: no lock {path.relative_to(root)}")
                continue
            try:
                lock = read(path)
            except LockFormatError as exc:
                problems.append(f"{cell['id']}: {exc}")
                continue
            if lock.inputs != digest or lock.python != str(cell["python"]):
                problems.append(f"{cell['id']}: {path.relative_to(root)} no longer matches its inputs")
                problems += [f"  {line}" for line in pin_drift(cell, lock, name, root)]
    if len(selected) == len(cells(matrix)):
        problems += check_host(host_cell(find_cell(matrix, None)), root)
    known = {str(c["id"]) for c in cells(matrix)} | {HOST}
    folder = root / "docker" / "locks"
    problems += [f"{p.name}: lock of a cell docker/matrix.json no longer has" for p in sorted(folder.glob("*"))
                 if p.is_dir() and p.name not in known]  # fmt: skip
    return problems


def check_host(cell: Cell, root: Path) -> list[str]:
    path = root / "docker" / "locks" / HOST / DEV_LOCK
    try:
        lock = read(path)
    except FileNotFoundError:
        return [f"{HOST}: no lock {path.relative_to(root)}"]
    except LockFormatError as exc:
        return [f"{HOST}: {exc}"]
    if lock.inputs == inputs_digest(cell, root):
        return []
    return [f"{HOST}: {path.relative_to(root)} no longer matches pyproject.toml's dependencies and dev extra"]


def pin_drift(cell: Cell, lock: Lock, name: str, root: Path) -> list[str]:
    """Top-level pins whose version differs from the lock's (no resolver needed)."""
    pins = runtime_inputs(cell, root) if name == RUNTIME_LOCK else dev_inputs(cell, root)
    locked = lock.by_name()
    lines = []
    for pin in pins:
        pkg, _, version = pin.partition("==")
        entry = locked.get(normalise_name(pkg))
        if lock.unresolved:
            continue
        if entry is None and name == RUNTIME_LOCK:
            lines.append(f"{normalise_name(pkg)}: pinned {version}, not in the lock")
        elif entry is not None and entry.version != version:
            lines.append(f"{entry.name}: lock has {entry.version}, pins say {version}")
    if lock.python != str(cell["python"]):
        lines.append(f"lock is for Python {lock.python}, the cell has {cell['python']}")
    return lines or ["inputs changed (platform tags, resolver version or pins); run: python3 docker/lock.py"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", action="append", default=[], help="only this cell (repeatable; default: every cell)")
    parser.add_argument("--check", action="store_true", help="exit 1 with the diff when a lock no longer matches")
    args = parser.parse_args(argv)
    matrix = load_matrix()
    selected = [find_cell(matrix, c) for c in args.cell] if args.cell else cells(matrix)
    if args.check:
        problems = check(matrix, selected)
        for line in problems:
            print(f"lock --check: {line}", file=sys.stderr)
        if problems:
            print("lock --check: rewrite the locks with `python3 docker/lock.py` and commit them", file=sys.stderr)
            return 1
        say(f"{len(selected)} cell(s): every lock matches its inputs ({LOCKS.relative_to(ROOT)})")
        return 0
    return write(matrix, selected)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BuildInputError as exc:
        print(f"lock: {exc}", file=sys.stderr)
        sys.exit(2)
