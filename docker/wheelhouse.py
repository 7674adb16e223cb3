"""A cell's wheelhouse: exactly the files its locks name, each checked against its sha256.

``fill`` downloads what is missing with pip in hash-checking mode (``--require-hashes
--no-deps``, the cell's Python and platform tags, the host's indexes: PyPI and any find-links
holding a CPU build of torch), replaces files whose hash is wrong, and removes files no lock
names. ``verify`` is what an image build runs first: any missing or mismatching wheel stops it
with one line naming the cell, the package and both hashes, before anything is installed.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from cells import ROOT, WHEELHOUSE, BuildInputError, Cell
from lockfile import DEV_LOCK, RUNTIME_LOCK, Entry, Lock, LockFormatError, inputs_digest, lock_dir, platform_tags, read

STAMP = "wheelhouse.json"


def say(message: str) -> None:
    print(f"[bootstrap] {message}", flush=True)


def wheelhouse_for(cell: Cell) -> Path:
    return WHEELHOUSE / str(cell["id"])


def locks_for(cell: Cell) -> tuple[Lock, Lock]:
    """The cell's runtime and dev locks, refused when unresolved, stale or for another Python."""
    folder = lock_dir(cell)
    cell_id = cell["id"]
    try:
        runtime, dev = read(folder / RUNTIME_LOCK), read(folder / DEV_LOCK)
    except FileNotFoundError as exc:
        raise BuildInputError(
            f"cell {cell_id}: no lock {Path(exc.filename).relative_to(ROOT)}; "
            f"write it: python3 docker/lock.py --cell {cell_id}"
        ) from None
    except LockFormatError as exc:
        raise BuildInputError(f"cell {cell_id}: {exc}") from None
    if runtime.python != str(cell["python"]):
        raise BuildInputError(
            f"cell {cell_id}: docker/locks/{cell_id}/{RUNTIME_LOCK} is a lock for Python {runtime.python}, "
            f"the cell has Python {cell['python']}; rewrite it: python3 docker/lock.py --cell {cell_id}"
        )
    if runtime.unresolved:
        raise BuildInputError(f"cell {cell_id}: no lock can be resolved here: {runtime.unresolved}")
    if runtime.inputs != inputs_digest(cell) or dev.inputs != runtime.inputs:
        raise BuildInputError(
            f"cell {cell_id}: docker/locks/{cell_id} no longer matches docker/matrix.json and the pins; "
            "run python3 docker/lock.py --check for the diff, python3 docker/lock.py to rewrite"
        )
    return runtime, dev


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def problems(cell: Cell, entries: list[Entry], dest: Path) -> list[tuple[Entry, str]]:
    """(entry, one-line reason) for each locked wheel that is missing or has another hash."""
    found = []
    for entry in entries:
        path = dest / entry.filename
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        if not path.is_file():
            found.append(
                (entry, f"cell {cell['id']}: {entry.name} {entry.version}: {entry.filename} is not in {rel.parent}")
            )
            continue
        actual = sha256_of(path)
        if actual != entry.sha256:
            found.append(
                (
                    entry,
                    f"cell {cell['id']}: {entry.name} {entry.version}: {rel} has sha256 {actual}, "
                    f"the lock has {entry.sha256} (tampered or re-published)",
                )
            )
    return found


def verify(cell: Cell) -> tuple[Lock, Lock]:
    """Stop with one line unless every locked wheel is in the wheelhouse with its locked hash."""
    runtime, dev = locks_for(cell)
    bad = problems(cell, runtime.entries + dev.entries, wheelhouse_for(cell))
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise BuildInputError(f"{bad[0][1]}{more}; refill: python3 docker/bootstrap.py --cell {cell['id']} wheels")
    return runtime, dev


def fill(cell: Cell, force: bool, extra_index: str = "") -> None:
    runtime, dev = locks_for(cell)
    entries = runtime.entries + dev.entries
    dest = wheelhouse_for(cell)
    dest.mkdir(parents=True, exist_ok=True)
    wanted = {entry.filename for entry in entries}
    for path in sorted(dest.iterdir()):
        if path.name not in wanted and path.name != STAMP:
            say(f"{cell['id']}: removing {path.name} (no lock names it)")
            path.unlink()
    missing = []
    for entry, reason in problems(cell, entries, dest) if not force else [(e, "") for e in entries]:
        if (dest / entry.filename).exists():
            say(f"{reason}; downloading it again" if reason else f"{entry.filename}: downloading again (--force)")
            (dest / entry.filename).unlink()
        missing.append(entry)
    if missing:
        try:
            download(cell, missing, dest)
        except BuildInputError:
            if not extra_index:
                raise
            say(f"{cell['id']}: not all locked wheels are on this host's indexes; trying {extra_index} too")
            download(cell, missing, dest, extra_index)
    bad = problems(cell, entries, dest)
    if bad:
        raise BuildInputError(bad[0][1])
    size = sum((dest / name).stat().st_size for name in wanted)
    stamp = {"cell": cell["id"], "lock": runtime.inputs, "wheels": sorted(wanted)}
    (dest / STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
    say(
        f"{cell['id']}: {len(wanted)} locked wheels, {size / 1e6:.0f} MB, hashes verified "
        f"({len(missing)} downloaded) in {dest.relative_to(ROOT)}"
    )


def download(cell: Cell, entries: list[Entry], dest: Path, extra_index: str = "") -> None:
    """pip download of exactly these files, in hash-checking mode, for the cell's Python and platform."""
    minor = str(cell["python"])
    abi = "cp" + minor.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes", "--only-binary=:all:"]
    cmd += ["--dest", str(dest), "--python-version", minor, "--implementation", "cp"]
    cmd += ["--abi", abi, "--abi", "abi3", "--abi", "none"]
    for tag in platform_tags(cell):
        cmd += ["--platform", tag]
    if extra_index:  # e.g. PyTorch's CPU index: the hashes still decide what is accepted
        cmd += ["--extra-index-url", extra_index]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="accel-lock-") as req:
        req.write("".join(f"{e.name}=={e.version} --hash=sha256:{e.sha256}\n" for e in entries))
        req.flush()
        say(f"{cell['id']}: pip download --require-hashes of {len(entries)} locked wheel(s)")
        proc = subprocess.run([*cmd, "-r", req.name], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildInputError(f"cell {cell['id']}: {pip_failure(proc.stdout + proc.stderr)}")


def pip_failure(output: str) -> str:
    """pip's multi-line failure as one line (a hash mismatch names the package and both hashes)."""
    mismatch = re.search(r"^\s*(\S+==\S+).*?\n\s+Expected sha256 (\w+)\n\s+Got\s+(\w+)", output, re.M)
    if mismatch:
        return f"{mismatch[1]}: the index serves sha256 {mismatch[3]}, the lock has {mismatch[2]} (re-published?)"
    lines = [line.strip() for line in output.strip().splitlines() if line.strip() and "WARNING" not in line]
    return lines[-1] if lines else "pip download failed"
