"""``accel-matrix run``: a user's project and command in each cell, with a table for *their* project.

For each cell: the cell's image (built when missing) is the base layer; the project folder is
copied in; its requirements are installed from wheels that the host downloads for the cell's
Python and platform tags (the build itself needs no network and no proxy certificate); then the
command runs in the project folder with host networking, an init and 2 GB of /dev/shm. The
report, ``accel-matrix-<name>.md`` and ``.json``, goes to the project folder (or --report-dir).
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from accel.matrix import context, engine, report
from accel.matrix.engine import StageError
from accel.matrix.model import Cell
from accel.matrix.outcome import Outcome
from accel.matrix.pipeline import Settings, ensure_image

DERIVED = """\
ARG BASE
FROM ${BASE}
USER root
COPY wheels/ /tmp/project-wheels/
COPY project/ /workspace/project/
RUN set -eux; \\
    if [ -f "/workspace/project/{requirements}" ]; then \\
        pip install --no-index --find-links /tmp/project-wheels -r "/workspace/project/{requirements}"; \\
    fi; \\
    rm -rf /tmp/project-wheels; \\
    chown -R 1000:1000 /workspace/project
USER 1000:1000
WORKDIR /workspace/project
ENTRYPOINT []
"""
PYENV = Path.home() / ".pyenv" / "versions"
PYTEST_SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)")
COLUMNS = (
    ("cell", "cell"),
    ("python", "python"),
    ("os", "os"),
    ("variant", "variant"),
    ("torch", "torch"),
    ("status", "status"),
    ("tests", "tests"),
    ("build_s", "build"),
    ("job_s", "command"),
)


def run_project(args: argparse.Namespace, settings: Settings, cells: Sequence[Cell]) -> list[Outcome]:
    from accel.matrix.runner import error, run_all

    command = list(args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd)
    project = args.project.resolve()
    if not command:
        error("run: no command; put it after --, e.g. accel-matrix run --project . -- pytest -q tests/")
        return [_refused(cell, "fail (run: no command given)") for cell in cells]
    if not project.is_dir():
        error(f"run: --project {args.project} is not a folder")
        return [_refused(cell, f"fail (run: --project {args.project} is not a folder)") for cell in cells]
    name = args.name or project.name

    def one(cell_settings: Settings, cell: Cell) -> Outcome:
        return project_cell(cell_settings, cell, project, name, args.requirements, command)

    outcomes = run_all(cells, args.jobs, settings, one)
    if not args.no_report:
        meta = report.metadata(settings.root, "docker-py", {"project": str(project), "command": " ".join(command)})
        intro = f"`accel-matrix run --project {project.name} -- {' '.join(command)}`: {name} in each cell."
        out = args.report_dir or project
        title = f"{name}: compatibility"
        written = report.write(out, f"accel-matrix-{name}", outcomes, meta, title=title, intro=intro, columns=COLUMNS)
        settings.progress.line("report", "wrote " + ", ".join(str(p) for p in written))
    return outcomes


def _refused(cell: Cell, status: str) -> Outcome:
    outcome = Outcome.start(cell)
    outcome.status = status
    return outcome


def project_cell(
    settings: Settings, cell: Cell, project: Path, name: str, requirements: str, command: list[str]
) -> Outcome:
    outcome = Outcome.start(cell)
    say = settings.progress
    try:
        base = ensure_image(settings, cell, outcome)
    except StageError as exc:
        done = exc.reason.startswith(("not built", "unsupported"))
        outcome.status = exc.reason if done else f"not built (base image: {exc.reason})"
        return outcome
    tag = f"{settings.repo}-project:{re.sub(r'[^a-z0-9_.-]', '-', name.lower())}-{cell.id}"
    try:
        start = time.monotonic()
        with say.stage(cell.id, f"build {tag} (project + its requirements)"), tempfile.TemporaryDirectory() as tmp:
            wheels = Path(tmp) / "wheels"
            download_requirements(cell, project / requirements, wheels)
            with tempfile.TemporaryFile() as tar:
                write_project_context(tar, project, wheels, requirements)
                engine.build(
                    settings.client, tar, "Dockerfile", tag, {"BASE": base}, None, lambda s: say.line(cell.id, s)
                )
        outcome.build_s = round(time.monotonic() - start, 1)
        with say.stage(cell.id, "command: " + " ".join(command)):
            code, logs, seconds = engine.run(
                settings.client, tag, command, "run", timeout=3600, network_mode="host", shm_size="2g", init=True
            )
        outcome.job_s = round(seconds, 1)
        outcome.tests = pytest_counts(logs)
        outcome.status = "pass" if code == 0 else f"fail (run: exit code {code})"
        if code != 0:
            outcome.note(" | ".join(line.strip() for line in logs.strip().splitlines()[-3:])[-300:])
    except StageError as exc:
        outcome.status = f"{'not built' if exc.environmental else 'fail'} ({exc.stage}: {exc.reason})"
    finally:
        if not settings.keep_images:
            engine.remove_image(settings.client, tag)
    return outcome


def download_requirements(cell: Cell, requirements: Path, dest: Path) -> None:
    """Wheels of the project's requirements for the cell's Python and tags, fetched by the host's pip."""
    dest.mkdir(parents=True)
    if not requirements.is_file():
        return
    cmd = [downloader(cell), "-m", "pip", "download", "--only-binary=:all:", "--dest", str(dest), "--quiet"]
    cmd += [
        "--python-version",
        cell.python,
        "--implementation",
        "cp",
        "--abi",
        cell.abi,
        "--abi",
        "abi3",
        "--abi",
        "none",
    ]
    for tag in cell.platforms:
        cmd += ["--platform", tag]
    proc = subprocess.run([*cmd, "-r", str(requirements)], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")] or proc.stderr.splitlines()
        raise StageError("requirements", (lines[-1:] or ["pip download failed"])[0][:240])


def downloader(cell: Cell) -> str:
    """An interpreter of the cell's Python with pip (pip applies markers for the interpreter running it)."""
    candidates = [shutil.which(f"python{cell.python}"), str(PYENV / cell.cpython / "bin" / f"python{cell.python}")]
    for exe in candidates:
        if exe and subprocess.run([exe, "-m", "pip", "--version"], capture_output=True).returncode == 0:
            return exe
    return sys.executable


def write_project_context(fileobj: IO[bytes], project: Path, wheels: Path, requirements: str) -> None:
    """Dockerfile + wheels/ + project/ as the derived image's build context."""
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.GNU_FORMAT) as tar:
        dockerfile = DERIVED.replace("{requirements}", requirements).encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        tar.add(wheels, arcname="wheels")
        context.add_tree(tar, project, "project")
    fileobj.seek(0)


def pytest_counts(logs: str) -> str:
    """``5 passed, 1 skipped`` from pytest's last summary line; '' when the output has none."""
    for line in reversed(logs.strip().splitlines()):
        found = PYTEST_SUMMARY.findall(line)
        if found and (" in " in line or line.startswith("=")):
            return ", ".join(f"{n} {word}" for n, word in found)
    return ""
