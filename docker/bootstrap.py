"""Offline bootstrap: base images, a hash-checked wheelhouse and reproducible images, no registry needed.

    python3 docker/bootstrap.py [--cell ID] [--offline] [--force] [--no-cache] [STEP ...]

Steps, in order (default: all of them). Each one is skipped when its result is up to date:

  debian   `debian:bookworm-slim`: pulled when a registry answers, otherwise made here with
           `debootstrap --variant=minbase`, trimmed the way the slim images are (no apt lists,
           docs, man pages or locales) and loaded with `docker import`.
  python   `python:X-slim-bookworm`: pulled, otherwise an equivalent built by
           docker/python-slim.Dockerfile from any CPython of the cell's minor version on this
           host (pyenv's, /opt/python, /usr/local) or Debian's own python3 when it is that
           version; the version used is recorded in the image (label org.accel.cpython).
  wheels   `.cache/wheelhouse/<cell>/`: exactly the files of docker/locks/<cell>/, downloaded
           with pip in hash-checking mode for the cell's Python and platform tags, so that the
           image build installs with `--require-hashes --no-index` and needs no network.
  image    `accel:<cell>`: `docker build` of the cell's Dockerfile from the lock and the checked
           wheelhouse, normalised (docker/normalise.py) so that the same inputs give the same
           image ID; reused when its recorded inputs digest is unchanged.

Cells come from docker/matrix.json, their locks from docker/lock.py. A bad input (unknown cell,
stale lock, missing or altered wheel) stops the run with one line before anything is built.
The script needs root for debootstrap and a running Docker engine; it uses only the standard
library and talks to the engine through the `docker` CLI.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bases import build_debian, build_python, say
from cells import BuildInputError, accel_version, find_cell, load_matrix, requirements_for
from imagebuild import build_args, build_image, image_tag, write_context
from wheelhouse import fill, wheelhouse_for

STEPS = ("debian", "python", "wheels", "image")
# What other tools import from here (accel.matrix's runner, the tests).
__all__ = ["accel_version", "build_args", "find_cell", "image_tag", "load_matrix", "main", "requirements_for"]
__all__ += ["wheelhouse_for", "write_context"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("steps", nargs="*", metavar="STEP", help=f"any of {', '.join(STEPS)} (default: all)")
    parser.add_argument("--cell", help="a cell id from docker/matrix.json (default: the cell marked default)")
    parser.add_argument("--offline", action="store_true", help="never try a registry; build the bases here")
    parser.add_argument("--force", action="store_true", help="redo even what is up to date")
    parser.add_argument("--no-cache", action="store_true", help="image: build without Docker's layer cache")
    args = parser.parse_args(argv)
    steps = args.steps or list(STEPS)
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    matrix = load_matrix()
    cell = find_cell(matrix, args.cell)
    say(f"cell {cell['id']}: python {cell['python']}, {cell['os']} ({cell['libc']}), {cell['variant']}, "
        f"torch {cell['torch']}; steps: {', '.join(steps)}")  # fmt: skip
    start = time.monotonic()
    if "debian" in steps:
        build_debian(matrix, args.offline, args.force)
    if "python" in steps:
        build_python(matrix, cell, args.offline, args.force)
    if "wheels" in steps:
        fill(cell, args.force, str(matrix.get("torch_index", {}).get(str(cell["variant"]), "")))
    if "image" in steps:
        build_image(cell, args.force, args.no_cache)
    say(f"done in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BuildInputError as exc:
        print(f"bootstrap: {exc}", file=sys.stderr)
        sys.exit(2)
    except subprocess.CalledProcessError as exc:
        say(f"failed: {' '.join(map(str, exc.cmd))} exited {exc.returncode}")
        sys.exit(exc.returncode or 1)
