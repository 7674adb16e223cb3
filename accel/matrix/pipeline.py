"""One cell, stage by stage, to an honest status.

Debian cells: wheels (torch for the cell's tags) -> bootstrap (base image and wheelhouse, by
docker/bootstrap.py as a program) -> cache lookup by input digest -> install time -> build
(runtime and dev targets, docker-py) -> import time -> 2-process example -> the test suite ->
CUDA checks (only with a GPU). Alpine cells try every step (base image, a musllinux wheel for each
pin, a compiler-free install) and report the first that fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from accel.matrix import context, engine, probe, stages
from accel.matrix.engine import StageError
from accel.matrix.model import Cell
from accel.matrix.outcome import Outcome, Progress, ResultCache

if TYPE_CHECKING:
    from docker import DockerClient


@dataclass
class Settings:
    """What every cell of one run shares."""

    root: Path
    client: DockerClient
    progress: Progress
    cache: ResultCache
    indexes: str
    gpu: bool
    keep_images: bool = False
    use_cache: bool = True
    vcs_ref: str = "unknown"
    repo: str = "accel"
    install_time: bool = True
    reuse_images: bool = False
    builds: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(2))

    def tag(self, cell: Cell, target: str | None = None) -> str:
        """The image tag of a cell (``accel:py3.11-cpu``) or of one of its targets (``...-dev``)."""
        return f"{self.repo}:{cell.id}" + (f"-{target}" if target not in (None, "runtime") else "")


def run_cell(settings: Settings, cell: Cell) -> Outcome:
    """Every stage of ``cell``; never raises for the cell's own problems (they become its status)."""
    outcome = Outcome.start(cell)
    try:
        if cell.libc == "musl":
            alpine(settings, cell, outcome)
        else:
            debian(settings, cell, outcome)
    except StageError as exc:
        kind = "not built" if exc.environmental or exc.stage in ("bootstrap", "engine") else "fail"
        if exc.stage == "time limit" and outcome.build_s is not None:
            kind = "not tested"  # the image was built; a later stage ran out of the run's time
        outcome.status = f"{kind} ({exc.stage}: {exc.reason})"
    except Exception as exc:  # a bug or an engine hiccup in one cell must not stop the others
        outcome.status = f"fail (runner: {type(exc).__name__}: {str(exc)[:200]})"
    outcome.measured = outcome.measured or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    settings.cache.put(outcome)
    return outcome


def debian(settings: Settings, cell: Cell, outcome: Outcome) -> None:
    say = settings.progress
    with say.stage(cell.id, "wheels"):
        torch = probe.probe(cell, "torch", cell.torch, settings.indexes)
    outcome.wheels = torch.evidence
    if not torch.available:
        outcome.status = probe.missing_status(cell, torch)
        return
    with say.stage(cell.id, "bootstrap (base image, wheelhouse)"):
        bootstrap(settings.root, cell)
    outcome.digest = context.digest(settings.root, cell)
    cached = settings.cache.get(cell.id, outcome.digest) if settings.use_cache else None
    if cached is not None:
        say.line(cell.id, f"inputs unchanged (digest {outcome.digest}): {cached.status}, measured {cached.measured}")
        outcome.__dict__.update(cached.__dict__)
        if engine.image_present(settings.client, settings.tag(cell)):  # docker/reproduce.py may have run since
            outcome.reproducible = reproducible(settings, cell, settings.tag(cell))
        return
    if not settings.builds.acquire(blocking=False):
        say.line(cell.id, "waiting for a build slot (--builds)")
        settings.builds.acquire()
    try:
        measure(settings, cell, outcome)
    finally:
        settings.builds.release()


def measure(settings: Settings, cell: Cell, outcome: Outcome) -> None:
    """Install, build, import, job, suite and CUDA checks of one Debian cell."""
    say = settings.progress
    client = settings.client
    if settings.install_time:
        with say.stage(cell.id, "install (venv from the wheelhouse, no network)"):
            outcome.install_s = stages.install_time(client, settings.root, cell)
    else:
        outcome.note("install time not measured in this run (--skip-install-time)")
    runtime, dev = settings.tag(cell), settings.tag(cell, "dev")
    try:
        start = time.monotonic()
        with say.stage(
            cell.id, f"build {dev}, then {runtime} (docker-py; the runtime image through docker/bootstrap.py)"
        ):
            if settings.reuse_images and engine.image_present(client, dev) and engine.image_present(client, runtime):
                outcome.note(f"images reused as present (--reuse-images): {dev}, {runtime}")
                outcome.image_bytes = int(client.images.get(runtime).attrs["Size"])
            else:
                # dev first: the runtime image is built next through bootstrap's image step (hash-checked,
                # normalised: the image users run), and the builder stage is pruned only once both exist.
                build(settings, cell, "dev", prune=False)
                outcome.image_bytes = build(settings, cell, "runtime")
                outcome.build_s = round(time.monotonic() - start, 1)
            outcome.reproducible = reproducible(settings, cell, runtime)
        with say.stage(cell.id, "import torch, accel"):
            outcome.import_s = stages.import_time(client, runtime)
            outcome.torch_build = stages.torch_build(client, runtime)
        with say.stage(cell.id, "2-process example job"):
            outcome.job_s = stages.two_process_job(client, runtime)
        with say.stage(cell.id, "test suite (unit + multi-process gloo)"):
            limit = say.remaining(stages.SUITE_TIMEOUT_S)
            try:
                suite = stages.run_suite(client, settings.root, dev, timeout=limit)
            except StageError as exc:
                if limit < stages.SUITE_TIMEOUT_S and "no exit within" in exc.reason:
                    raise StageError("time limit", f"the suite did not finish in the {limit:.0f} s left") from None
                raise
        outcome.tests, outcome.tests_s = suite.summary, round(suite.seconds, 1)
        if suite.failing:
            outcome.note("failing: " + ", ".join(suite.failing[:20]) + (" ..." if len(suite.failing) > 20 else ""))
        if cell.variant == "cuda":
            outcome.cuda = "not run (no GPU)"
            if settings.gpu:
                with say.stage(cell.id, "CUDA checks (--gpus all)"):
                    outcome.cuda = stages.cuda_checks(client, runtime)
        elif not outcome.cuda:
            outcome.cuda = "n/a (cpu cell)"
        outcome.status = (
            f"fail (tests: {suite.failed} of {suite.passed + suite.failed} failed)" if suite.failed else "pass"
        )
        if outcome.cuda.startswith("fail"):
            outcome.status = f"fail (cuda: {outcome.cuda})"
    finally:
        if not settings.keep_images:
            # the default cell keeps its runtime image and builder stage (compose and CI use them); any
            # other cell leaves nothing: its builder stage (bootstrap's tag) alone is ~8.7 GB for CUDA
            kept = cell.default and settings.repo == "accel"
            for tag in (dev,) if kept else (dev, runtime, f"accel-cache:{cell.id}-builder"):
                engine.remove_image(client, tag)


def ensure_image(settings: Settings, cell: Cell, outcome: Outcome) -> str:
    """The cell's runtime image, built (wheels, bootstrap, docker-py build) when it is not present."""
    tag = settings.tag(cell)
    if engine.image_present(settings.client, tag):
        return tag
    if cell.libc == "musl":
        alpine(settings, cell, outcome)
        if not outcome.passed:
            raise StageError("base", outcome.status)
        return tag
    with settings.progress.stage(cell.id, "wheels"):
        torch = probe.probe(cell, "torch", cell.torch, settings.indexes)
    outcome.wheels = torch.evidence
    if not torch.available:
        raise StageError("base", probe.missing_status(cell, torch))
    with settings.progress.stage(cell.id, "bootstrap (base image, wheelhouse)"):
        bootstrap(settings.root, cell)
    with settings.progress.stage(cell.id, f"build {tag} (docker-py)"):
        build(settings, cell, "runtime")
    return tag


def bootstrap(root: Path, cell: Cell) -> None:
    """docker/bootstrap.py as a program (the path users take): base images and the wheelhouse."""
    cmd = [sys.executable, "docker/bootstrap.py", "--cell", cell.id, "debian", "python", "wheels"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        tail = [line for line in lines if "error" in line.lower() or "failed" in line.lower()][-1:] or lines[-1:]
        raise StageError("bootstrap", (tail or ["no output"])[0].strip()[:240])


def build(settings: Settings, cell: Cell, target: str | None, prune: bool = True) -> int:
    tag = settings.tag(cell, target)
    if target == "runtime" and cell.libc != "musl":
        return build_runtime(settings, cell, tag)
    args = {"PYTHON_VERSION": cell.python, "VARIANT": cell.variant, "TORCH_VERSION": cell.torch}
    args |= {"CELL": cell.id, "VCS_REF": settings.vcs_ref, "WHEELHOUSE": f".cache/wheelhouse/{cell.id}"}
    if cell.libc == "musl":
        args = {"PYTHON_VERSION": cell.python, "ALPINE_VERSION": cell.os.removeprefix("alpine-")}
        args["TORCH_VERSION"] = cell.torch
    with tempfile.TemporaryFile() as tar:
        context.write_context(settings.root, cell, tar)
        size = engine.build(
            settings.client,
            tar,
            cell.dockerfile,
            tag,
            args,
            target,
            lambda step: settings.progress.line(cell.id, f"  {tag} {step}"),
        )
    if prune:
        engine.prune_builder_leftovers(settings.client)
    return size


def reproducible(settings: Settings, cell: Cell, tag: str) -> str:
    """From docker/reproduce.py's record (.cache/reproduce/<cell>.json) when it is of this very image."""
    record = settings.root / ".cache" / "reproduce" / f"{cell.id}.json"
    image = str(settings.client.images.get(tag).id)
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return f"not checked (python3 docker/reproduce.py --cell {cell.id})"
    if data.get("image") != image:
        return f"not checked for this image (python3 docker/reproduce.py --cell {cell.id})"
    return "yes (2 no-cache builds, same image ID)" if data.get("reproducible") else "no (see docker/reproduce.py)"


def build_runtime(settings: Settings, cell: Cell, tag: str) -> int:
    """The runtime image as users get it: docker/bootstrap.py's image step (hash-checked, normalised)."""
    cmd = [sys.executable, "docker/bootstrap.py", "--cell", cell.id, "image"]
    proc = subprocess.run(cmd, cwd=settings.root, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        raise StageError("build", (lines[-1:] or ["no output"])[0].strip()[:300])
    if tag != cell.image:
        settings.client.images.get(cell.image).tag(tag)
    return int(settings.client.images.get(tag).attrs["Size"])


def alpine(settings: Settings, cell: Cell, outcome: Outcome) -> None:
    """Each step is tried; the status names the first that fails, the notes every step's result."""
    say = settings.progress
    first: str = ""
    with say.stage(cell.id, f"base image {cell.base}"):
        base = base_image(settings.client, cell.base)
    outcome.note(f"base: {base or 'present'}")
    if base:
        first = f"not built (base: {base})"
    with say.stage(cell.id, "wheels (every pin, musllinux)"):
        pins = probe.requirement_pins((settings.root / "docker" / "requirements.txt").read_text(), cell.python)
        with ThreadPoolExecutor(max_workers=len(pins) + 1) as pool:
            asked = [*pins, ("torch", cell.torch)]
            wheels = list(pool.map(lambda pin: probe.probe(cell, pin[0], pin[1], settings.indexes), asked))
    missing = [w for w in wheels if not w.available]
    found = [f"{w.name}=={w.version}" for w in wheels if w.available]
    outcome.wheels = "; ".join(w.evidence for w in missing) or "every pin has a musllinux wheel"
    outcome.note(f"wheels found: {', '.join(found) or 'none'}; missing: {', '.join(w.name for w in missing) or 'none'}")
    if missing:
        upstream = f"upstream: {missing[0].name} {missing[0].version} publishes no wheel for {missing[0].tags}"
        first = f"{first}; next, {upstream}" if first else f"unsupported ({upstream})"
    if first:
        outcome.note("install: not tried (needs the base image and every wheel)")
        outcome.status = first
        return
    with say.stage(cell.id, "compiler-free install (docker/alpine.Dockerfile)"):
        outcome.image_bytes = build(settings, cell, None)
    with say.stage(cell.id, "import torch, accel"):
        outcome.import_s = stages.import_time(settings.client, settings.tag(cell))
    with say.stage(cell.id, "2-process example job"):
        outcome.job_s = stages.two_process_job(settings.client, settings.tag(cell))
    outcome.tests = "not run (the Alpine image has no dev target with pytest yet)"
    outcome.status = "pass"


def base_image(client: DockerClient, tag: str) -> str:
    """'' when ``tag`` is present or could be pulled; otherwise why it is not available."""
    import docker.errors

    if engine.image_present(client, tag):
        return ""
    try:
        client.images.pull(tag)
    except docker.errors.DockerException as exc:
        text = " ".join(str(getattr(exc, "explanation", None) or exc).split())
        found = re.search(r"(lookup [^ ]+|dial tcp [^ ]+).*", text)
        reason = (found[0] if found else text)[-160:].strip("\"')( ")
        return f"{tag} is not on this host and could not be pulled ({reason})"
    return ""
