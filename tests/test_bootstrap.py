"""docker/bootstrap.py's pure parts: the pins each cell's wheelhouse is filled with (no Docker needed)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import ROOT


@pytest.fixture(scope="module")
def bootstrap() -> ModuleType:
    spec = importlib.util.spec_from_file_location("accel_bootstrap", ROOT / "docker" / "bootstrap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_markers_are_resolved_for_the_cells_python_not_the_hosts(bootstrap: ModuleType) -> None:
    assert "numpy==2.2.6" in bootstrap.requirements_for("3.10", "requirements.txt")
    assert "numpy==2.5.5" in bootstrap.requirements_for("3.13", "requirements.txt")


def test_every_cell_gets_exactly_one_pin_of_each_package(bootstrap: ModuleType) -> None:
    cells = json.loads((ROOT / "docker" / "matrix.json").read_text())["cells"]
    for python in sorted({cell["python"] for cell in cells}):
        pins = bootstrap.requirements_for(python, "requirements.txt")
        names = [pin.split("==")[0] for pin in pins]
        assert all("==" in pin for pin in pins), pins
        assert len(names) == len(set(names)) and "numpy" in names, (python, pins)


def fake_cpython(root: Path, version: str) -> Path:
    """A pyenv-like install whose interpreter reports ``version``."""
    minor = ".".join(version.split(".")[:2])
    prefix = root / "versions" / version
    (prefix / "lib" / f"python{minor}").mkdir(parents=True)
    (prefix / "bin").mkdir()
    exe = prefix / "bin" / f"python{minor}"
    exe.write_text(f"#!/bin/sh\necho {version}\n")
    exe.chmod(0o755)
    return prefix


def test_any_cpython_of_the_cells_minor_version_will_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(ROOT / "docker"))
    try:
        import bases
    finally:
        sys.path.remove(str(ROOT / "docker"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    fake_cpython(tmp_path, "3.12.4")
    newest = fake_cpython(tmp_path, "3.12.10")
    fake_cpython(tmp_path, "3.13.0")
    assert bases.find_cpython("3.12", "3.12.1") == (newest, "3.12.10")
    preferred = fake_cpython(tmp_path, "3.12.1")
    assert bases.find_cpython("3.12", "3.12.1") == (preferred, "3.12.1")
