"""`.ci/run tox-venv` sets tox up with Debian's own python3 (PEP 668: externally managed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

SYSTEM_PYTHON = Path("/usr/bin/python3")
BARE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def bare_env(**extra: str) -> dict[str, str]:
    """What a fresh Debian root shell has: the standard PATH (no pyenv), HOME, the proxy's CA."""
    env = {"PATH": BARE_PATH, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    for key in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "http_proxy", "https_proxy", "no_proxy"):
        if key in os.environ:
            env[key] = os.environ[key]
    return {**env, **extra}


def test_usage_names_the_steps() -> None:
    proc = subprocess.run([ROOT / ".ci" / "run", "deploy"], capture_output=True, text=True, env=bare_env())
    assert proc.returncode == 2
    assert proc.stderr.strip() == "[ci] unknown step 'deploy'; choose from: docker bootstrap tox-venv tox"


@pytest.mark.long
@pytest.mark.skipif(
    not (SYSTEM_PYTHON.is_file() and (Path("/usr/lib") / "python3.11" / "EXTERNALLY-MANAGED").is_file()),
    reason="needs a Debian host whose /usr/bin/python3 is externally managed",
)
def test_tox_set_up_on_debians_system_python(tmp_path: Path) -> None:
    env = bare_env()
    assert shutil.which("python3", path=BARE_PATH) == str(SYSTEM_PYTHON), "the bare PATH finds Debian's python3"
    # The premise: pip refuses to install into the system interpreter.
    refused = subprocess.run(
        [SYSTEM_PYTHON, "-m", "pip", "install", "--dry-run", "tox"], capture_output=True, text=True, env=env
    )
    assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr
    venv = tmp_path / "tox-venv"
    proc = subprocess.run(
        [ROOT / ".ci" / "run", "tox-venv"],
        capture_output=True,
        text=True,
        env={**env, "ACCEL_TOX_VENV": str(venv)},
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "externally-managed" not in proc.stderr
    assert "home = /usr/bin" in (venv / "pyvenv.cfg").read_text()
    version = subprocess.run([venv / "bin" / "tox", "--version"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert version.returncode == 0 and "inline plugin" in version.stdout, version
    # Idempotent: the second run reuses the venv.
    again = subprocess.run(
        [ROOT / ".ci" / "run", "tox-venv"], capture_output=True, text=True, env={**env, "ACCEL_TOX_VENV": str(venv)}
    )
    assert again.returncode == 0 and "tox present in" in again.stderr
