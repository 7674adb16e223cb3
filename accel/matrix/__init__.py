"""The compatibility matrix (the ``matrix`` extra): every cell of docker/matrix.json, proven with docker-py.

    accel-matrix check                    # every cell; writes COMPATIBILITY.md and COMPATIBILITY.json
    accel-matrix check --cells py3.11-cpu,py3.12-alpine-cpu --jobs 2
    accel-matrix run --cells py3.10-cpu,py3.13-cpu --project . -- pytest -q tests/
    python -m accel.matrix ...            # the same; tox -e matrix runs `check`

A cell is python x os/libc x variant with pinned versions (model.py). For each cell the runner
(pipeline.py) records the wheel evidence (probe.py), makes the base image and the wheelhouse with
docker/bootstrap.py, measures install time, builds the image with docker-py (engine.py), measures
import time, runs the 2-process example and accel's own test suite inside it (stages.py), runs the
CUDA checks when the host has a GPU (gpu_check.py), and writes the report (report.py). Results are
cached by the cell's input digest (context.py, outcome.py). ``accel-matrix run`` (user.py) puts a
user's project on top of a cell's image and runs their command.

Status words: ``pass``; ``fail (<stage>: <reason>)`` for accel's own problems; ``unsupported
(upstream: …)`` when a dependency publishes nothing for the cell (with the index asked and the
tags); ``not built (…)`` when this host cannot make the cell, with the reason.

The training library never imports this package; nothing here imports torch (gpu_check runs inside
an image). Needs docker-py (``pip install "accel[matrix]"``) and a Docker engine; run from a checkout.
"""
