"""Which torch wheel the host's tox envs install: the CPU build where PyTorch's CPU index answers.

``torch==2.13.0`` from PyPI alone is the CUDA build (~3 GB with its nvidia-* wheels). tox's
plugin (toxfile.py) calls :func:`requirements` once per run: where the CPU index named in
docker/matrix.json is reachable it asks for ``torch==<version>+cpu`` from it; where it is not,
it says so in one line and asks the configured indexes for ``torch==<version>`` (a local ``+cpu``
wheel wins there, because pip ranks a local version label above the bare version).

    python -m accel.matrix.torch_wheel     # in an env: which build of torch is installed
    python -m accel.matrix.torch_wheel --record .tox/host-results/py312.json   # and record it (tox does)

Standard library only: it runs in tox's own interpreter.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from accel.matrix.model import Cell

PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class TorchChoice:
    """The requirement lines for torch and the one line that says why."""

    lines: tuple[str, ...]
    message: str


def probe_index(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when ``<url>/torch/`` answers; otherwise the reason, in a few words."""
    request = urllib.request.Request(url.rstrip("/") + "/torch/", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except urllib.error.URLError as exc:
        return str(exc.reason)[:120]
    except (OSError, ValueError) as exc:
        return str(exc)[:120] or type(exc).__name__
    return None if status < 400 else f"HTTP {status}"


def requirements(cell: Cell, unreachable: str | None) -> TorchChoice:
    """torch for the host envs, from the CPU cell ``cell``; ``unreachable`` is probe_index's answer."""
    index = cell.torch_index
    if index and unreachable is None:
        lines = (f"--extra-index-url {index}", f"torch=={cell.torch}")
        return TorchChoice(lines, f"torch {cell.torch} (CPU build) from {index}")
    why = f"not reachable ({unreachable})" if index else "not configured"
    message = (
        f"PyTorch CPU index {index or '(none)'} {why}: torch=={cell.torch_public} from the configured indexes "
        "(a local +cpu wheel if one is there, else PyPI's CUDA build, ~3 GB)"
    )
    return TorchChoice((f"torch=={cell.torch_public}",), message)


HOST_LOCK = Path("docker/locks/host/requirements-dev.txt")


def locked(cell: Cell, lock: Path, python: str, unreachable: str | None, versions: tuple[str, ...]) -> TorchChoice:
    """The host envs' requirements from the host lock, in pip's hash-checking mode, where it applies.

    It applies where tox's interpreter is the cell's Python (the lock is resolved for it) and the
    locked torch build can be fetched: from the CPU index (``unreachable`` is None) or from the
    configured indexes (``versions``: what ``pip index versions torch`` lists there). Elsewhere the
    unlocked :func:`requirements` are used, and the message says why.
    """
    why = ""
    if not lock.is_file():
        why = f"{lock} is missing"
    elif python != cell.python:
        why = f"the lock is for Python {cell.python}, tox runs on {python}"
    elif unreachable is not None and cell.torch not in versions:
        why = f"torch=={cell.torch} is on no index this host reaches"
    if why:
        choice = requirements(cell, unreachable)
        return TorchChoice(choice.lines, f"unlocked ({why}); {choice.message}")
    index = (f"--extra-index-url {cell.torch_index}",) if cell.torch_index and unreachable is None else ()
    body = tuple(line for line in lock.read_text().splitlines() if line.strip())
    return TorchChoice((*index, *body), f"every distribution from {lock} in hash-checking mode (torch {cell.torch})")


def write(path: Path, choice: TorchChoice) -> bool:
    """Write the requirement file; True when its content changed."""
    text = "".join(line + "\n" for line in choice.lines)
    if path.is_file() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def installed() -> str:
    """One line naming the installed torch build, read from its metadata (torch is not imported)."""
    try:
        dist = importlib.metadata.distribution("torch")
    except importlib.metadata.PackageNotFoundError:
        return "torch: not installed"
    version = dist.version
    cuda = sorted({(r.split(";")[0].split(">")[0].split("=")[0].strip()) for r in dist.requires or [] if "nvidia" in r})
    origin = _origin(dist)
    if "+cpu" in version:
        return f"torch {version}: CPU build{origin}"
    if cuda:
        return f"torch {version}: CUDA build ({len(cuda)} nvidia-* wheels, e.g. {cuda[0]}){origin}"
    return f"torch {version}: no CUDA dependencies declared{origin}"


def _origin(dist: importlib.metadata.Distribution) -> str:
    text = dist.read_text("direct_url.json")
    if not text:
        return ""
    url = str(json.loads(text).get("url", ""))
    return f", from {url}" if url else ""


def record(path: Path) -> None:
    """Write this env's Python and torch build to ``path`` (for the report's host table) and drop the
    JUnit report of its last run beside it, so that a run that dies before pytest ends leaves none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".xml").unlink(missing_ok=True)
    path.write_text(json.dumps({"python": platform.python_version(), "torch": installed()}) + "\n")


def main(argv: list[str]) -> int:
    sys.stdout.write(installed() + "\n")
    if argv[:1] == ["--record"] and len(argv) == 2:
        record(Path(argv[1]))
    elif argv:
        sys.stderr.write("usage: python -m accel.matrix.torch_wheel [--record FILE]\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
