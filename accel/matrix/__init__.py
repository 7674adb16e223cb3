"""The compatibility matrix: build and test every cell of docker/matrix.json with docker-py.

    tox -e matrix                          # the default selection (see below)
    python -m accel.matrix --cell py3.11-cpu --cell py3.12-alpine-cpu
    python -m accel.matrix --all           # every cell (the CUDA cells download ~3 GB each)

A cell is python x os/libc x variant with pinned versions. For each selected cell the runner

1. checks that the pinned torch has a wheel for the cell's Python and platform tags
   (``pip index versions``, no download);
2. makes the base image and the wheelhouse with docker/bootstrap.py (offline when no registry);
3. measures install time: a fresh venv filled from the wheelhouse in a container with no network;
4. builds the image with docker-py (legacy builder) and records its disk size;
5. measures import time of ``torch`` + ``accel`` (median of several fresh interpreters);
6. runs the built-in example on 2 CPU processes inside the image.

and writes ``COMPATIBILITY.md`` and ``COMPATIBILITY.json`` at the repository root. Status words:
``pass``; ``fail (<stage>: <reason>)`` for accel's own problems; ``unsupported (upstream: …)`` when
a dependency publishes nothing for the cell; ``not built (…)`` when the cell was not selected or
cannot be made on this host, with the reason.

Default selection: cells marked ``"ci": true`` are built; every other cell is only probed (step 1),
so that cells upstream does not support are reported as such without a build.

Needs the ``matrix`` extra (docker-py) and a Docker engine; run from a checkout.
"""
