"""The identity of an image's environment: the venv's file manifest, its digest, and its lock.

A venv's **manifest** is one line per entry under the venv, sorted by path::

    <path relative to the venv>\\t<mode, octal>\\t<sha256:... | link:TARGET | dir>

and the **venv digest** is the sha256 of that text: equal digests mean the same files with the
same modes, contents and symlink targets. An image build *seals* its venv: it writes the
manifest, an ``environment.json`` (cell, lock sha256, venv digest) and a copy of the lock into
``/opt/accel/environment``. ``accel env --verify`` rescans the venv and compares:

* ``matches``  — every file as sealed;
* ``extended`` — a derived image added distributions and recorded them with ``extend``
  (``python -m accel.envlock extend``), everything else as sealed;
* ``drift``    — files added, removed or changed that nothing recorded (e.g. a ``pip install``
  into a running container); the files and distributions are named.

Standard library only (no torch), so that the check is fast and runs in any image.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DIR = Path("/opt/accel/environment")
MANIFEST = "venv.manifest"
IDENTITY = "environment.json"
LOCK_COPY = "lock.txt"
EXTENSIONS = "extensions"
_CHUNK = 1 << 20


def entry(path: Path) -> tuple[int, str]:
    """(mode, value) of one path: a file's sha256, a symlink's target, or ``dir``."""
    st = path.lstat()
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return mode, f"link:{os.readlink(path)}"
    if stat.S_ISDIR(st.st_mode):
        return mode, "dir"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return mode, f"sha256:{digest.hexdigest()}"


def scan(venv: Path) -> dict[str, str]:
    """Every entry under ``venv`` as ``{relative path: "mode\\tvalue"}``."""
    found: dict[str, str] = {}
    for top, dirs, files in os.walk(venv):
        dirs.sort()
        for name in [*dirs, *sorted(files)]:
            path = Path(top) / name
            mode, value = entry(path)
            found[path.relative_to(venv).as_posix()] = f"{mode:o}\t{value}"
    return found


def render(entries: dict[str, str]) -> str:
    return "".join(f"{path}\t{entries[path]}\n" for path in sorted(entries))


def parse(text: str) -> dict[str, str]:
    entries = {}
    for line in text.splitlines():
        path, _, rest = line.partition("\t")
        entries[path] = rest
    return entries


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def distributions(paths: list[str]) -> list[str]:
    """``name version`` of each ``*.dist-info`` folder among ``paths``."""
    names = set()
    for path in paths:
        for part in path.split("/"):
            if part.endswith(".dist-info"):
                name, _, version = part.removesuffix(".dist-info").partition("-")
                names.add(f"{name} {version}")
    return sorted(names)


@dataclass
class Verification:
    """How a venv on disk compares with its sealed manifest (and any recorded extensions)."""

    cell: str
    lock_sha256: str
    venv_sha256: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extended_with: list[str] = field(default_factory=list)
    problem: str = ""

    @property
    def status(self) -> str:
        if self.problem or self.added or self.removed or self.changed:
            return "drift"
        return "extended" if self.extended_with else "matches"

    def summary(self) -> str:
        head = f"environment: locked {self.cell}, lock {self.lock_sha256[:12]}, venv {self.venv_sha256[:12]}"
        if self.problem:
            return f"{head} (drift: {self.problem})"
        if self.status == "drift":
            counts = f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed"
            return f"{head} (drift: {counts} files)"
        if self.status == "extended":
            return f"{head} (extended: {', '.join('+' + d for d in self.extended_with)})"
        return f"{head} (matches)"

    def details(self, limit: int = 10) -> list[str]:
        lines = []
        for label, paths in (("added", self.added), ("removed", self.removed), ("changed", self.changed)):
            lines += [f"  {label}: {p}" for p in paths[:limit]]
            if len(paths) > limit:
                lines.append(f"  {label}: ... and {len(paths) - limit} more")
        added = distributions(self.added)
        if added:
            lines.append(f"  distributions added: {', '.join(added)}")
        removed = distributions(self.removed)
        if removed:
            lines.append(f"  distributions removed: {', '.join(removed)}")
        return lines


def seal(venv: Path, cell: str, lock: Path, out: Path) -> dict[str, str]:
    """Write the manifest, identity and lock copy of a finished venv into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    text = render(scan(venv))
    (out / MANIFEST).write_text(text)
    shutil.copyfile(lock, out / LOCK_COPY)
    identity = {
        "cell": cell,
        "venv": str(venv),
        "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest(),
        "venv_sha256": digest(text),
    }
    (out / IDENTITY).write_text(json.dumps(identity, indent=1, sort_keys=True) + "\n")
    return identity


def _expected(out: Path) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(sealed entries, sealed + recorded extensions, the distributions the extensions added)."""
    base = parse((out / MANIFEST).read_text())
    expected = dict(base)
    added: list[str] = []
    for ext in sorted((out / EXTENSIONS).glob("*.manifest")) if (out / EXTENSIONS).is_dir() else []:
        entries = parse(ext.read_text())
        expected.update(entries)
        added += distributions([p for p in entries if p not in base])
    return base, expected, sorted(set(added))


def extend(out: Path, name: str) -> list[str]:
    """Record what a derived image added to the venv (``extensions/<name>.manifest``)."""
    identity = json.loads((out / IDENTITY).read_text())
    _, expected, _ = _expected(out)
    current = scan(Path(identity["venv"]))
    delta = {p: v for p, v in current.items() if expected.get(p) != v}
    (out / EXTENSIONS).mkdir(exist_ok=True)
    (out / EXTENSIONS / f"{name}.manifest").write_text(render(delta))
    return distributions(list(delta))


def verify(out: Path = DEFAULT_DIR) -> Verification:
    """Rescan the sealed venv and compare it with its manifest and recorded extensions."""
    identity = json.loads((out / IDENTITY).read_text())
    result = Verification(str(identity["cell"]), str(identity["lock_sha256"]), str(identity["venv_sha256"]))
    base, expected, result.extended_with = _expected(out)
    if digest(render(base)) != result.venv_sha256:
        result.problem = f"{out / MANIFEST} does not hash to the sealed venv digest"
        return result
    if hashlib.sha256((out / LOCK_COPY).read_bytes()).hexdigest() != result.lock_sha256:
        result.problem = f"{out / LOCK_COPY} is not the lock the venv was made from"
        return result
    current = scan(Path(identity["venv"]))
    result.added = sorted(p for p in current if p not in expected)
    result.removed = sorted(p for p in expected if p not in current)
    result.changed = sorted(p for p in current if p in expected and current[p] != expected[p])
    return result


def environment_dir() -> Path:
    from accel import env

    return Path(env.get(env.ENVIRONMENT_DIR) or DEFAULT_DIR)


def report(verbose: bool) -> tuple[list[str], int]:
    """Lines for ``accel env`` and the exit status of ``accel env --verify`` (0 ok, 1 drift, 2 none)."""
    out = environment_dir()
    if not (out / IDENTITY).is_file():
        return [f"environment: not sealed (no {out / IDENTITY}: not an accel image, or built without a lock)"], 2
    try:
        result = verify(out)
    except (OSError, ValueError, KeyError) as exc:
        return [f"environment: {out} cannot be read ({exc})"], 2
    lines = [result.summary()]
    if verbose or result.status == "drift":
        lines += result.details()
    return lines, 1 if result.status == "drift" else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m accel.envlock seal|extend|verify`` (used by image builds)."""
    parser = argparse.ArgumentParser(prog="python -m accel.envlock", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sealer = sub.add_parser("seal", help="record a finished venv")
    sealer.add_argument("--venv", type=Path, required=True)
    sealer.add_argument("--cell", required=True)
    sealer.add_argument("--lock", type=Path, required=True)
    sealer.add_argument("--out", type=Path, default=DEFAULT_DIR)
    extender = sub.add_parser("extend", help="record what a derived image installed into the venv")
    extender.add_argument("name", help="a name for this extension (e.g. the derived image's)")
    extender.add_argument("--out", type=Path, default=DEFAULT_DIR)
    checker = sub.add_parser("verify", help="compare the venv with its seal")
    checker.add_argument("--out", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    if args.command == "seal":
        identity = seal(args.venv, args.cell, args.lock, args.out)
        sys.stdout.write(f"sealed {args.venv}: venv {identity['venv_sha256']}, lock {identity['lock_sha256']}\n")
        return 0
    if args.command == "extend":
        added = extend(args.out, args.name)
        sys.stdout.write(f"recorded extension {args.name!r}: {', '.join(added) or 'no new distributions'}\n")
        return 0
    result = verify(args.out)
    sys.stdout.write("\n".join([result.summary(), *result.details()]) + "\n")
    return 1 if result.status == "drift" else 0


if __name__ == "__main__":
    sys.exit(main())
