"""The Accelerate peer: a separate virtual environment with the same torch, never an accel dependency.

usage: python bench/peer.py [--create]

Prints the peer's interpreter (``.cache/bench/accelerate-venv/bin/python``; an older
``.cache/peer-venv`` is used when present). ``--create`` makes the venv: the host's pip
configuration serves torch 2.13.0 (CPU) and accelerate from PyPI.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".cache" / "bench" / "accelerate-venv"
LEGACY = ROOT / ".cache" / "peer-venv"
TORCH = "torch==2.13.0"


def python() -> str | None:
    """The peer venv's interpreter, or None when it has not been created."""
    for venv in (VENV, LEGACY):
        exe = venv / "bin" / "python"
        if exe.exists():
            return str(exe)
    return None


def create() -> str:
    """Create the peer venv (a no-op when it exists); returns its interpreter."""
    exe = VENV / "bin" / "python"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(exe), "-m", "pip", "install", "-q", TORCH, "accelerate"], check=True)
    return str(exe)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--create", action="store_true")
    args = parser.parse_args()
    print(create() if args.create else (python() or "none (run: python bench/peer.py --create)"))


if __name__ == "__main__":
    main()
