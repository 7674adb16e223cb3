"""The image step: ``accel:<cell>``, built from the cell's lock and wheelhouse, then normalised.

1. the wheelhouse is checked against the lock (one line naming cell, package and both hashes
   when a wheel is missing or altered) before anything is built;
2. when ``accel:<cell>`` exists and its ``org.accel.inputs`` label equals the digest of this
   build's inputs (sources, locks, build args, base image ID, commit time), it is reused;
3. otherwise ``docker build`` (the builder stage tagged ``accel-cache:<cell>-builder`` so that
   its layers stay cached), then docker/normalise.py makes the image reproducible and adds the
   labels ``org.accel.lock.sha256`` and ``org.accel.venv.sha256``;
4. what accel's builds left behind (dangling images labelled ``org.accel.managed``, the raw
   build) is removed; nothing else is touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import IO

from bases import image_exists, say, scratch, step
from cells import ROOT, BuildInputError, Cell, accel_version
from lockfile import RUNTIME_LOCK, lock_dir, lock_sha256
from normalise import normalise
from wheelhouse import verify, wheelhouse_for

DEFAULT_SOURCE_URL = "https://github.com/accel-dev/accel"
MANAGED = "org.accel.managed"
ENVIRONMENT = "/opt/accel/environment"
# The build context, as .dockerignore allows it, but with only this cell's wheelhouse: every
# cell's wheelhouse together is several GB (a CUDA one alone is ~3 GB).
CONTEXT_FILES = ("Dockerfile", "pyproject.toml", "README.md", "LICENSE")
CONTEXT_DIRS = ("accel", "docker")


def image_tag(cell: Cell) -> str:
    return f"accel:{cell['id']}"


def _git(*args: str) -> str:
    result = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def source_url() -> str:
    """The clone's remote when it is a public URL; never a local path."""
    url = _git("config", "--get", "remote.origin.url")
    return url if url.startswith(("https://", "http://", "git@", "ssh://")) else DEFAULT_SOURCE_URL


def commit_epoch() -> int:
    """SOURCE_DATE_EPOCH: the environment's when set, else the commit time of HEAD."""
    explicit = os.environ.get("SOURCE_DATE_EPOCH", "")
    if explicit.isdigit():
        return int(explicit)
    stamp = _git("log", "-1", "--format=%ct", "HEAD")
    return int(stamp) if stamp.isdigit() else 315532800


def build_args(cell: Cell) -> dict[str, str]:
    return {
        "PYTHON_VERSION": str(cell["python"]),
        "VARIANT": str(cell["variant"]),
        "TORCH_VERSION": str(cell["torch"]),
        "CELL": str(cell["id"]),
        "WHEELHOUSE": f".cache/wheelhouse/{cell['id']}",
        "ACCEL_VERSION": accel_version(),
        "VCS_REF": _git("rev-parse", "--short=12", "HEAD") or "unknown",
        "SOURCE_URL": source_url(),
    }


def _keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if "__pycache__" in info.name.split("/") or info.name.endswith(".pyc") else info


def context_paths(cell: Cell) -> list[tuple[Path, str]]:
    """(path, name in the context) of every file the build may read, sorted."""
    found = []
    roots = [(ROOT / name, name) for name in CONTEXT_FILES if (ROOT / name).exists()]
    roots += [(ROOT / name, name) for name in CONTEXT_DIRS]
    wheels = wheelhouse_for(cell)
    if wheels.is_dir():
        roots.append((wheels, f".cache/wheelhouse/{cell['id']}"))
    for path, name in roots:
        if path.is_file():
            found.append((path, name))
            continue
        for sub in sorted(path.rglob("*")):
            rel = sub.relative_to(path).as_posix()
            if (sub.is_file() or sub.is_symlink()) and _keep(tarfile.TarInfo(rel)) is not None:
                found.append((sub, f"{name}/{rel}"))
    return found


def write_context(cell: Cell, fileobj: IO[bytes]) -> None:
    """Stream the build context of `cell` as a tar to `fileobj` (docker build - / docker-py fileobj)."""
    # GNU format: a PAX header as the first member hides the archive from docker build's sniffing.
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for path, name in context_paths(cell):
            tar.add(path, arcname=name, recursive=False)


def inputs_key(cell: Cell, args: dict[str, str], base_id: str, epoch: int) -> str:
    """Digest of everything the image is made from (wheels are covered by the lock they match)."""
    digest = hashlib.sha256(json.dumps({"args": args, "base": base_id, "epoch": epoch}, sort_keys=True).encode())
    for path, name in context_paths(cell):
        if name.startswith(".cache/wheelhouse/"):
            continue
        mode = path.lstat().st_mode & 0o7777
        content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
        digest.update(f"{name}\0{mode:o}\0".encode() + hashlib.sha256(content).digest())
    return digest.hexdigest()


def inspect(ref: str, template: str) -> str:
    out = subprocess.run(["docker", "image", "inspect", "-f", template, ref], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def docker_build(cell: Cell, args: dict[str, str], target: str, tag: str, no_cache: bool) -> None:
    cmd = ["docker", "build", "--network", "host", "-f", str(cell["dockerfile"]), "--target", target, "-t", tag]
    for key, value in args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    if no_cache:
        cmd.append("--no-cache")
    say("$ " + " ".join(cmd) + " - < context")
    proc = subprocess.Popen([*cmd, "-"], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        write_context(cell, proc.stdin)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # docker build stopped reading; its exit status says why
    if proc.wait() != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)


def build_image(cell: Cell, force: bool, no_cache: bool = False) -> str:
    """Build (or reuse) ``accel:<cell>``; returns its image ID."""
    tag = image_tag(cell)
    if cell["dockerfile"] != "Dockerfile":
        raise BuildInputError(f"cell {cell['id']}: built only by {cell['dockerfile']}, which says why it cannot be")
    verify(cell)
    base = str(cell["base"])
    base_id = inspect(base, "{{.Id}}")
    if not base_id:
        fix = f"python3 docker/bootstrap.py --cell {cell['id']} python"
        raise BuildInputError(f"cell {cell['id']}: no base image {base}; make it: {fix}")
    args, epoch = build_args(cell), commit_epoch()
    key = inputs_key(cell, args, base_id, epoch)
    if not (force or no_cache) and inspect(tag, '{{index .Config.Labels "org.accel.inputs"}}') == key:
        say(f"{tag}: up to date (inputs sha256 {key[:12]}), reused: {inspect(tag, '{{.Id}}')}")
        return inspect(tag, "{{.Id}}")
    raw = f"accel-cache:{cell['id']}-raw-{os.getpid()}"  # unique: concurrent builds of a cell do not collide
    with step(f"docker build -> {tag}"):
        if not no_cache:  # the builder stage tagged, so that its layers stay cached for the next build
            docker_build(cell, args, "builder", f"accel-cache:{cell['id']}-builder", no_cache=False)
        docker_build(cell, args, "runtime", raw, no_cache)
    show = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "cat", raw, f"{ENVIRONMENT}/environment.json"]
    identity = subprocess.run(show, capture_output=True, text=True, check=True).stdout
    venv_sha = json.loads(identity)["venv_sha256"]
    labels = {
        **host_free(json.loads(inspect(raw, "{{json .Config.Labels}}") or "{}")),
        "org.accel.inputs": key,
        "org.accel.lock.sha256": lock_sha256(lock_dir(cell) / RUNTIME_LOCK),
        "org.accel.venv.sha256": venv_sha,
    }
    with step(f"normalise {tag} (SOURCE_DATE_EPOCH={epoch})"):
        subprocess.run(["docker", "tag", raw, tag], check=True)
        result = normalise(tag, base, epoch, labels, scratch())
    prune(raw)
    size = int(inspect(tag, "{{.Size}}") or 0)
    say(f"{tag}: {result.image_id} ({result.rewritten} layers normalised), {size / 1e9:.3f} GB, venv {venv_sha[:12]}")
    return result.image_id


def host_free(labels: dict[str, str]) -> dict[str, str]:
    """Inherited labels with any host path cut off (older bootstrap bases named the CPython prefix)."""
    return {k: v.split("-from-/", 1)[0] for k, v in labels.items() if "-from-/" in v}


def prune(raw: str) -> None:
    """Remove the raw build and dangling images that accel's builds left (by label, nothing else)."""
    if image_exists(raw):
        subprocess.run(["docker", "rmi", raw], capture_output=True)
    out = subprocess.run(
        ["docker", "image", "prune", "--force", "--filter", f"label={MANAGED}=1", "--filter", "until=10m"],
        capture_output=True, text=True,
    )  # fmt: skip
    reclaimed = [line for line in out.stdout.splitlines() if line.startswith("Total reclaimed")]
    if reclaimed:
        say(f"pruned accel's dangling images: {reclaimed[0].split(':', 1)[1].strip()}")
