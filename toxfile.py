"""tox plugin of this checkout: the torch wheel of the host envs, chosen once per tox run.

tox.ini's envs that need torch install ``-r {toxworkdir}/host-requirements.txt`` (py311, type,
long) or ``-r {toxworkdir}/torch-requirements.txt`` (py310, py312, py313); this hook writes both
from docker/matrix.json's default (CPU) cell, with one line each saying what was chosen:

* host-requirements.txt: the host lock (docker/locks/host/requirements-dev.txt, every distribution
  with its sha256: pip runs in hash-checking mode) where tox runs on the lock's Python and the locked
  torch build is reachable; else the same as torch-requirements.txt;
* torch-requirements.txt: the ``+cpu`` build from PyTorch's CPU index where it answers, else the
  same version from the configured indexes.

accel/matrix/torch_wheel.py holds the logic (standard library only); accel's own dependencies are
then installed by tox from ``extras = dev``, already satisfied where the lock was used.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tox.config.sets import ConfigSet
from tox.plugin import impl
from tox.session.state import State

ROOT = Path(__file__).resolve().parent
TORCH_FILE = "torch-requirements.txt"
HOST_FILE = "host-requirements.txt"


@impl
def tox_add_core_config(core_conf: ConfigSet, state: State) -> None:
    sys.path.insert(0, str(ROOT))
    from accel.matrix import torch_wheel
    from accel.matrix.model import load
    from accel.matrix.probe import available_versions

    cell = load(ROOT).default
    unreachable = torch_wheel.probe_index(cell.torch_index) if cell.torch_index else None
    choice = torch_wheel.requirements(cell, unreachable)
    torch_wheel.write(Path(core_conf["work_dir"]) / TORCH_FILE, choice)
    sys.stderr.write(f"[tox] py310, py312, py313: {choice.message}\n")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    versions = available_versions(cell, "torch") if unreachable is not None and python == cell.python else ()
    host = torch_wheel.locked(cell, ROOT / torch_wheel.HOST_LOCK, python, unreachable, versions)
    torch_wheel.write(Path(core_conf["work_dir"]) / HOST_FILE, host)
    sys.stderr.write(f"[tox] py311, type, long: {host.message}\n")
