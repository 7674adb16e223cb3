"""accel.envlock: the venv manifest and digest, and what `accel env --verify` reports (no Docker)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from accel import envlock


@pytest.fixture
def sealed(tmp_path: Path) -> tuple[Path, Path]:
    """A small venv-like tree, sealed with a lock; returns (venv, environment dir)."""
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("x = 1\n")
    (site / "pkg-1.0.dist-info").mkdir()
    (site / "pkg-1.0.dist-info" / "RECORD").write_text("pkg/__init__.py,,\n")
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to("/usr/local/bin/python3")
    lock = tmp_path / "requirements.txt"
    lock.write_text("pkg==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    out = tmp_path / "environment"
    envlock.seal(venv, "py3.11-cpu", lock, out)
    return venv, out


def test_digest_covers_path_mode_content_and_link_target(sealed: tuple[Path, Path]) -> None:
    venv, _ = sealed
    first = envlock.digest(envlock.render(envlock.scan(venv)))
    assert first == envlock.digest(envlock.render(envlock.scan(venv)))
    module = venv / "lib" / "python3.11" / "site-packages" / "pkg" / "__init__.py"
    module.chmod(0o600)
    assert envlock.digest(envlock.render(envlock.scan(venv))) != first
    line = envlock.render(envlock.scan(venv)).splitlines()[0]
    assert line == "bin\t755\tdir" or line.startswith("bin\t")
    assert "bin/python\t777\tlink:/usr/local/bin/python3" in envlock.render(envlock.scan(venv))


def test_an_untouched_venv_matches(sealed: tuple[Path, Path]) -> None:
    _, out = sealed
    result = envlock.verify(out)
    assert result.status == "matches"
    assert result.summary().startswith("environment: locked py3.11-cpu, lock ")
    assert result.summary().endswith("(matches)")


def test_pip_install_into_the_venv_is_drift_naming_files_and_distributions(sealed: tuple[Path, Path]) -> None:
    venv, out = sealed
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "six.py").write_text("")
    (site / "six-1.16.0.dist-info").mkdir()
    (site / "six-1.16.0.dist-info" / "RECORD").write_text("")
    (site / "pkg" / "__init__.py").write_text("x = 2\n")
    result = envlock.verify(out)
    assert result.status == "drift"
    assert "lib/python3.11/site-packages/six.py" in result.added
    assert result.changed == ["lib/python3.11/site-packages/pkg/__init__.py"]
    assert "(drift: 3 added, 0 removed, 1 changed files)" in result.summary()
    assert "  distributions added: six 1.16.0" in result.details()


def test_a_recorded_extension_is_reported_as_extended(sealed: tuple[Path, Path]) -> None:
    venv, out = sealed
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "extra").mkdir()
    (site / "extra" / "__init__.py").write_text("")
    (site / "extra-2.0.dist-info").mkdir()
    assert envlock.extend(out, "derived") == ["extra 2.0"]
    result = envlock.verify(out)
    assert result.status == "extended"
    assert result.summary().endswith("(extended: +extra 2.0)")
    (site / "late.py").write_text("")
    assert envlock.verify(out).added == ["lib/python3.11/site-packages/late.py"]


def test_a_removed_file_and_an_edited_manifest_are_drift(sealed: tuple[Path, Path]) -> None:
    venv, out = sealed
    (venv / "lib" / "python3.11" / "site-packages" / "pkg-1.0.dist-info" / "RECORD").unlink()
    assert envlock.verify(out).removed == ["lib/python3.11/site-packages/pkg-1.0.dist-info/RECORD"]
    manifest = out / envlock.MANIFEST
    manifest.write_text(manifest.read_text().replace("pkg-1.0", "pkg-9.9"))
    assert "does not hash to the sealed venv digest" in envlock.verify(out).summary()


def test_accel_env_verify_exit_codes(sealed: tuple[Path, Path], tmp_path: Path) -> None:
    venv, out = sealed
    cmd = [sys.executable, "-m", "accel", "env", "--verify"]
    env = {"PYTHONPATH": str(ROOT), "ACCEL_ENVIRONMENT_DIR": str(out), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith("(matches)")
    (venv / "new.txt").write_text("")
    drift = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert drift.returncode == 1
    assert "  added: new.txt" in drift.stdout
    elsewhere = {**env, "ACCEL_ENVIRONMENT_DIR": str(tmp_path / "x")}
    none = subprocess.run(cmd, capture_output=True, text=True, env=elsewhere, timeout=60)
    assert none.returncode == 2 and "not sealed" in none.stdout
