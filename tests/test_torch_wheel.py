"""The torch wheel of the host tox envs: CPU build where the CPU index answers, one-line fallback."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT

from accel.matrix import torch_wheel
from accel.matrix.model import Cell, load


@pytest.fixture(scope="module")
def cell() -> Cell:
    return load(ROOT).default


@pytest.fixture
def index_server() -> Iterator[str]:
    """A local HTTP server that answers 200 for /whl/cpu/torch/ and 404 for everything else."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(200 if self.path == "/whl/cpu/torch/" else 404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_reachable_cpu_index_asks_for_the_cpu_build(cell: Cell, index_server: str) -> None:
    assert torch_wheel.probe_index(f"{index_server}/whl/cpu") is None
    choice = torch_wheel.requirements(cell, None)
    assert choice.lines == (f"--extra-index-url {cell.torch_index}", f"torch=={cell.torch}")
    assert cell.torch.endswith("+cpu")


def test_unreachable_index_falls_back_with_one_line(cell: Cell, index_server: str) -> None:
    reason = torch_wheel.probe_index(f"{index_server}/nothing-here")
    assert reason == "HTTP 404"
    closed = torch_wheel.probe_index("http://127.0.0.1:9/whl/cpu", timeout=2)
    assert closed is not None and "refused" in closed.lower()
    choice = torch_wheel.requirements(cell, closed)
    assert choice.lines == (f"torch=={cell.torch_public}",)
    assert "\n" not in choice.message and "not reachable" in choice.message and "CUDA" in choice.message


def test_write_reports_a_change(tmp_path: Path, cell: Cell) -> None:
    target = tmp_path / "tox" / "torch-requirements.txt"
    choice = torch_wheel.requirements(cell, None)
    assert torch_wheel.write(target, choice) is True
    assert torch_wheel.write(target, choice) is False
    assert target.read_text().splitlines() == list(choice.lines)


def test_installed_names_this_envs_build() -> None:
    proc = subprocess.run([sys.executable, "-m", "accel.matrix.torch_wheel"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    import torch

    line = proc.stdout.strip()
    # PyPI's CUDA wheels carry 2.14.1 in their metadata and 2.14.1+cu130 in torch.__version__.
    assert line.startswith(f"torch {torch.__version__.split('+')[0]}")
    assert ("CPU build" in line) == ("+cpu" in torch.__version__)
    assert ("CUDA build" in line) == (torch.version.cuda is not None)


def test_the_matrix_package_never_imports_torch() -> None:
    """The matrix env has no torch: every module of accel.matrix imports without it."""
    code = (
        "import sys, importlib, pkgutil, accel.matrix as m\n"
        "for info in pkgutil.iter_modules(m.__path__):\n"
        "    if info.name != '__main__': importlib.import_module('accel.matrix.' + info.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('torch', 'numpy', 'docker'))\n"
        "print(bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_host_lock_is_used_in_hash_checking_mode_where_it_applies(cell: Cell, tmp_path: Path) -> None:
    """py311/type/long install every distribution of the host lock, each with its --hash line."""
    lock = ROOT / torch_wheel.HOST_LOCK
    choice = torch_wheel.locked(cell, lock, cell.python, "not reachable", (cell.torch, cell.torch_public))
    assert "hash-checking mode" in choice.message
    pins = [line for line in choice.lines if "==" in line]
    assert any(line.startswith(f"torch=={cell.torch} ") for line in pins)
    assert pins and all(line.rstrip().endswith("\\") for line in pins), "every pin is followed by its hash"
    assert sum("--hash=sha256:" in line for line in choice.lines) >= len(pins)
    reachable = torch_wheel.locked(cell, lock, cell.python, None, ())
    assert reachable.lines[0] == f"--extra-index-url {cell.torch_index}"


@pytest.mark.parametrize(
    ("python", "versions", "missing", "reason"),
    [
        ("3.99", ("*",), False, "the lock is for Python"),
        (None, (), False, "is on no index this host reaches"),
        (None, ("*",), True, "is missing"),
    ],
)
def test_the_host_lock_falls_back_with_the_reason(
    cell: Cell, tmp_path: Path, python: str | None, versions: tuple[str, ...], missing: bool, reason: str
) -> None:
    lock = tmp_path / "absent.txt" if missing else ROOT / torch_wheel.HOST_LOCK
    found = tuple(cell.torch if v == "*" else v for v in versions)
    choice = torch_wheel.locked(cell, lock, python or cell.python, "not reachable", found)
    assert choice.message.startswith("unlocked (") and reason in choice.message
    assert choice.lines == torch_wheel.requirements(cell, "not reachable").lines
