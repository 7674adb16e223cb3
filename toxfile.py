"""tox plugin of this checkout: the torch wheel of the host envs, chosen once per tox run.

tox.ini's envs that need torch install ``-r {toxworkdir}/torch-requirements.txt``; this hook
writes that file from docker/matrix.json's default (CPU) cell: the ``+cpu`` build from PyTorch's
CPU index where it answers, else the same version from the configured indexes, with one line
saying so (accel/matrix/torch_wheel.py holds the logic; it uses only the standard library).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tox.config.sets import ConfigSet
from tox.plugin import impl
from tox.session.state import State

ROOT = Path(__file__).resolve().parent
TORCH_FILE = "torch-requirements.txt"


@impl
def tox_add_core_config(core_conf: ConfigSet, state: State) -> None:
    sys.path.insert(0, str(ROOT))
    from accel.matrix import torch_wheel
    from accel.matrix.model import load

    cell = load(ROOT).default
    choice = torch_wheel.requirements(cell, torch_wheel.probe_index(cell.torch_index) if cell.torch_index else None)
    torch_wheel.write(Path(core_conf["work_dir"]) / TORCH_FILE, choice)
    sys.stderr.write(f"[tox] {choice.message}\n")
