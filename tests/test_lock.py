"""docker/lock.py --check: the committed locks match their inputs, and an edited pin or lock is caught.

No network: --check compares the digests recorded in each lock with the files of a copy of the
checkout's docker/ folder.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

LOCK = "docker/locks/py3.11-cpu/requirements.txt"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The files lock.py reads, copied: docker/ (scripts, matrix, pins, locks) and pyproject.toml."""
    shutil.copytree(ROOT / "docker", tmp_path / "docker", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lock_check(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(root / "docker" / "lock.py"), "--check", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_committed_locks_match_their_inputs() -> None:
    result = lock_check(ROOT)
    assert result.returncode == 0, result.stderr
    assert "every lock matches its inputs" in result.stdout


def test_every_cell_has_both_locks_with_one_hash_per_distribution() -> None:
    sys.path.insert(0, str(ROOT / "docker"))
    try:
        import cells
        import lockfile
    finally:
        sys.path.remove(str(ROOT / "docker"))
    for cell in cells.cells(cells.load_matrix()):
        runtime = lockfile.read(ROOT / "docker" / "locks" / cell["id"] / "requirements.txt")
        lockfile.read(ROOT / "docker" / "locks" / cell["id"] / "requirements-dev.txt")
        assert runtime.python == cell["python"]
        if not runtime.unresolved:
            names = {entry.name for entry in runtime.entries}
            assert {"torch", "numpy", "setuptools", "filelock"} <= names, (cell["id"], sorted(names))


def test_an_edited_pin_fails_the_check_naming_package_and_versions(tree: Path) -> None:
    pins = tree / "docker" / "requirements.txt"
    pins.write_text(pins.read_text().replace("pyyaml==6.0.4", "pyyaml==6.0.3"))
    result = lock_check(tree)
    assert result.returncode == 1
    assert "py3.11-cpu: docker/locks/py3.11-cpu/requirements.txt no longer matches its inputs" in result.stderr
    assert "pyyaml: lock has 6.0.4, pins say 6.0.3" in result.stderr
    assert "python3 docker/lock.py" in result.stderr


def test_a_hand_edited_hash_fails_the_check(tree: Path) -> None:
    lock = tree / LOCK
    text = lock.read_text()
    digest = text.split("filelock==4.3.1 \\\n    --hash=sha256:", 1)[1][:64]
    lock.write_text(text.replace(digest, hashlib.sha256(b"tampered").hexdigest()))
    result = lock_check(tree, "--cell", "py3.11-cpu")
    assert result.returncode == 1
    assert "entries were edited by hand" in result.stderr


def test_a_lock_for_another_python_fails_the_check(tree: Path) -> None:
    lock = tree / LOCK
    lock.write_text(lock.read_text().replace("# python: 3.11", "# python: 3.12"))
    result = lock_check(tree, "--cell", "py3.11-cpu")
    assert result.returncode == 1
    assert "lock is for Python 3.12, the cell has 3.11" in result.stderr


def test_unknown_cell_is_a_one_line_error(tree: Path) -> None:
    result = lock_check(tree, "--cell", "py3.99-cpu")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown cell 'py3.99-cpu'" in result.stderr and "py3.11-cpu" in result.stderr
