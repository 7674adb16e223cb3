"""``accel-matrix``: build and test the cells of docker/matrix.json, or run a user's project in them.

    accel-matrix check                                  # every cell; writes COMPATIBILITY.md/.json
    accel-matrix check --cells py3.11-cpu,py3.12-cuda --jobs 2 --keep-images
    accel-matrix run --cells py3.10-cpu,py3.13-cpu --project . -- pytest -q tests/
    accel-matrix list                                   # the cells and their pins

Bad input never stops the other cells: an unknown cell id or a malformed cell in matrix.json is a
one-line error naming it, the rest still run, and the exit status is non-zero when a cell that was
asked for did not pass (``check`` with no ``--cells``: when any cell failed).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accel.matrix import engine, hosts, probe, report
from accel.matrix.engine import StageError
from accel.matrix.model import Cell, Matrix, MatrixError, find_root, load
from accel.matrix.outcome import Outcome, Progress, ResultCache
from accel.matrix.pipeline import Settings, run_cell

if TYPE_CHECKING:
    from docker import DockerClient


def error(message: str) -> None:
    sys.stderr.write(f"accel-matrix: {message}\n")
    sys.stderr.flush()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="accel-matrix", description="accel's compatibility matrix, with docker-py")
    sub = top.add_subparsers(dest="command", required=True)
    for name, text in (("check", "build and test accel in each cell"), ("run", "run your project in each cell")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--cells", action="append", default=[], help="comma-separated cell ids (default: every cell)")
        p.add_argument("--jobs", type=int, default=1, help="cells worked on at once (default 1)")
        p.add_argument("--builds", type=int, default=2, help="of those, how many build and test (default 2)")
        p.add_argument("--keep-images", action="store_true", help="keep the images built (a CUDA cell is ~5.6 GB)")
        p.add_argument("--no-cache", action="store_true", help="rerun cells whose inputs did not change")
        p.add_argument("--reuse-images", action="store_true", help="use a cell's images as present; build only missing")
        p.add_argument("--root", type=Path, default=None, help="the accel checkout (default: found from cwd)")
        p.add_argument("--repo", default="accel", help="repository name of the images built (default accel)")
        p.add_argument("--report-dir", type=Path, default=None, help="where the report goes")
        p.add_argument("--no-report", action="store_true", help="print only; write no report")
        p.add_argument("--time-limit", type=float, default=None, help="seconds; later stages say they were not run")
    sub.choices["check"].add_argument(
        "--skip-install-time", action="store_true", help="do not measure the separate wheelhouse install"
    )
    run = sub.choices["run"]
    run.add_argument("--project", type=Path, required=True, help="your project folder (copied into each cell)")
    run.add_argument("--requirements", default="requirements.txt", help="in --project; installed when present")
    run.add_argument("--name", default="", help="the project's name in the report (default: the folder's)")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command to run in each cell")
    sub.add_parser("list", help="the cells of docker/matrix.json")
    return top


def selection(matrix: Matrix, groups: Sequence[str]) -> tuple[list[Cell], list[str]]:
    """The cells asked for (all when none) and one error line per unknown id."""
    wanted = [cell_id.strip() for group in groups for cell_id in group.split(",") if cell_id.strip()]
    if not wanted:
        return list(matrix.cells), []
    problems, cells = [], []
    for cell_id in wanted:
        try:
            cells.append(matrix.find(cell_id))
        except MatrixError as exc:
            problems.append(str(exc))
    known = {c.id for c in cells}
    return [c for c in matrix.cells if c.id in known], problems


def run_all(
    cells: Sequence[Cell], jobs: int, settings: Settings, one: Callable[[Settings, Cell], Outcome]
) -> list[Outcome]:
    """Each cell through ``one`` on up to ``jobs`` threads (a docker-py client per thread)."""
    local = threading.local()

    def work(cell: Cell) -> Outcome:
        if not hasattr(local, "client"):
            local.client = engine.connect() if jobs > 1 else settings.client
        outcome = one(replace(settings, client=local.client), cell)
        settings.progress.line(cell.id, f"=> {outcome.status}")
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(work, cells))


def engine_name(client: DockerClient) -> str:
    version = client.version()
    return f"engine {version.get('Version')} (API {version.get('ApiVersion')})"


def check(args: argparse.Namespace, matrix: Matrix, settings: Settings, cells: list[Cell]) -> list[Outcome]:
    # Alpine cells first: they stop early (base image, wheel probes), so a time limit spares them.
    ordered = sorted(cells, key=lambda cell: cell.libc != "musl")
    done = {o.cell: o for o in run_all(ordered, args.jobs, settings, run_cell)}
    out = args.report_dir or settings.root
    previous = previous_rows(out / "COMPATIBILITY.json")
    rows = []
    for cell in matrix.cells:
        row = done.get(cell.id) or settings.cache.latest(cell.id) or previous.get(cell.id)
        if row is None:
            row = Outcome.start(cell)
            row.status = f"not built (not selected in this run: accel-matrix check --cells {cell.id})"
        rows.append(row)
    if not args.no_report:
        gpu = "NVIDIA runtime present: CUDA cells run with --gpus all" if settings.gpu else "no NVIDIA runtime"
        meta = report.metadata(settings.root, engine_name(settings.client), {"gpu": gpu, "indexes": settings.indexes})
        intro = "Written by `accel-matrix check` (`tox -e matrix`) from docker/matrix.json; do not edit by hand."
        host_rows = hosts.merge(
            previous_section(out / "COMPATIBILITY.json", "hosts"), hosts.collect(settings.root / hosts.RESULTS)
        )
        written = report.write(out, "COMPATIBILITY", rows, meta, matrix.unsupported, intro=intro, hosts=host_rows)
        settings.progress.line("report", "wrote " + ", ".join(str(p) for p in written))
    return list(done.values())


def previous_section(path: Path, key: str) -> list[dict[str, Any]]:
    """One list of an earlier report (``cells``, ``hosts``); empty when there is none."""
    try:
        value = json.loads(path.read_text()).get(key, [])
    except (OSError, ValueError, AttributeError):
        return []
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def previous_rows(path: Path) -> dict[str, Outcome]:
    """The rows of an earlier report: cells not run this time keep their last measured row."""
    try:
        return {row["cell"]: Outcome.from_dict(row) for row in previous_section(path, "cells")}
    except (TypeError, KeyError):
        return {}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        root = find_root((getattr(args, "root", None) or Path.cwd()).resolve())
        matrix = load(root, strict=False)
    except MatrixError as exc:
        error(str(exc))
        return exc.exit_code
    for problem in matrix.errors:
        error(f"{problem} (this cell is left out; the others run)")
    if args.command == "list":
        for cell in matrix.cells:
            sys.stdout.write(
                f"{cell.id:20} python {cell.python} {cell.os} ({cell.libc}) {cell.variant} torch {cell.torch}\n"
            )
        return 1 if matrix.errors else 0
    cells, problems = selection(matrix, args.cells)
    for problem in problems:
        error(problem)
    try:
        client = engine.connect()
    except StageError as exc:
        error(f"{exc.reason}; no cell was run")
        return 1
    settings = Settings(
        root=root,
        client=client,
        progress=Progress(time_limit=args.time_limit),
        cache=ResultCache(root / ".cache" / "matrix"),
        indexes=probe.pip_indexes(),
        gpu=engine.nvidia_runtime(client),
        keep_images=args.keep_images,
        use_cache=not args.no_cache,
        vcs_ref=report.git_revision(root),
        repo=args.repo,
        install_time=not getattr(args, "skip_install_time", False),
        builds=threading.Semaphore(max(1, args.builds)),
        reuse_images=args.reuse_images,
    )
    if args.command == "run":
        from accel.matrix.user import run_project

        outcomes = run_project(args, settings, cells)
    else:
        outcomes = check(args, matrix, settings, cells)
    asked = bool(args.cells)
    bad = [o for o in outcomes if o.failed or (asked and not o.passed)]
    return 1 if bad or problems or matrix.errors else 0
