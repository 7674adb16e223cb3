"""Offline bootstrap: base images and a wheelhouse for accel's images, with no registry needed.

    python3 docker/bootstrap.py [--cell ID] [--offline] [--force] [STEP ...]

Steps, in order (default: all of them). Each one is skipped when its result already exists:

  debian   `debian:bookworm-slim`: pulled when a registry answers, otherwise made here with
           `debootstrap --variant=minbase`, trimmed the way the slim images are (no apt lists,
           docs, man pages or locales) and loaded with `docker import`.
  python   `python:X-slim-bookworm`: pulled, otherwise an equivalent built by
           docker/python-slim.Dockerfile from a CPython on this host (pyenv's build of the
           cell's `cpython` version): interpreter and standard library only, no site-packages.
  wheels   `.cache/wheelhouse/<cell>/`: `pip download` on the host for the cell's Python and
           platform tags, so that the image build installs with `--no-index` and needs neither
           network nor the host's proxy certificate inside the build.
  image    `accel:<cell>`: `docker build` of the cell's Dockerfile with its build args.

Cells (python x os/libc x variant, pinned versions) come from docker/matrix.json. The script
prints what it builds and how long each step took. It needs root for debootstrap and a running
Docker engine; it talks to the engine through the `docker` CLI and uses only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / "docker" / "matrix.json"
CACHE = ROOT / ".cache"
WHEELHOUSE = CACHE / "wheelhouse"
STEPS = ("debian", "python", "wheels", "image")
BOOTSTRAP_LABEL = "org.accel.bootstrap"

# What the rootfs of a slim image leaves out (docker-library's debian:*-slim does the same with
# dpkg path excludes). Written into the base so later `apt-get install`s skip these paths too.
DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
"""
_APT_RM = "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"
APT_CLEAN = f"""\
DPkg::Post-Invoke {{ "{_APT_RM}"; }};
APT::Update::Post-Invoke {{ "{_APT_RM}"; }};
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
"""
# Parts of a CPython install that a runtime image does not need.
CPYTHON_SKIP_DIRS = {"test", "idlelib", "tkinter", "turtledemo", "__pycache__", "site-packages"}
CPYTHON_SKIP_FILES = ("_tkinter", "_test", "xxlimited", "libpython3.", "_ctypes_test")


def say(message: str) -> None:
    print(f"[bootstrap] {message}", flush=True)


@contextmanager
def step(name: str) -> Iterator[None]:
    say(f"{name} ...")
    start = time.monotonic()
    try:
        yield
    finally:
        say(f"{name}: {time.monotonic() - start:.1f} s")


def run(*cmd: str | Path, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    say("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kwargs)  # type: ignore[call-overload]


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def try_pull(tag: str, offline: bool) -> bool:
    """Pull `tag` when a registry is reachable; False (quietly) when none is."""
    if offline:
        return False
    result = subprocess.run(["docker", "pull", "--quiet", tag], capture_output=True, text=True)
    if result.returncode == 0:
        say(f"pulled {tag}")
        return True
    reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
    say(f"no registry for {tag} ({reason[:160]}); building it here")
    return False


def load_matrix() -> dict[str, object]:
    """docker/matrix.json, validated by the cell model (accel/matrix/model.py: standard library only)."""
    sys.path.insert(0, str(ROOT))
    from accel.matrix.model import MatrixError, load

    try:
        return load(MATRIX).raw
    except MatrixError as exc:
        raise SystemExit(f"bootstrap: {exc}") from None


def find_cell(matrix: dict[str, object], cell_id: str | None) -> dict[str, object]:
    cells = matrix["cells"]
    assert isinstance(cells, list)
    if cell_id is None:
        return next(c for c in cells if c.get("default"))
    for cell in cells:
        if cell["id"] == cell_id:
            return cell
    known = ", ".join(c["id"] for c in cells)
    raise SystemExit(f"bootstrap: unknown cell {cell_id!r}; docker/matrix.json has: {known}")


def accel_version() -> str:
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    return "0"


# --- debian --------------------------------------------------------------------------------------


def trim_rootfs(rootfs: Path) -> None:
    for pattern in (
        "var/lib/apt/lists/*",
        "var/cache/apt/*.bin",
        "var/cache/apt/archives/*.deb",
        "var/cache/debconf/*-old",
        "var/log/*",
        "usr/share/doc/*",
        "usr/share/man/*",
        "usr/share/info/*",
        "usr/share/locale/*",
        "usr/share/lintian/*",
        "tmp/*",
    ):
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc/dpkg/dpkg.cfg.d/docker-slim").write_text(DPKG_EXCLUDES)
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(APT_CLEAN)
    (rootfs / "etc/apt/apt.conf.d/docker-no-recommends").write_text(
        'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
    )


def build_debian(matrix: dict[str, object], offline: bool, force: bool) -> None:
    debian = matrix["debian"]
    assert isinstance(debian, dict)
    tag = debian["image"]
    if image_exists(tag) and not force:
        say(f"{tag}: present")
        return
    if not force and try_pull(tag, offline):
        return
    if shutil.which("debootstrap") is None:
        raise SystemExit("bootstrap: debootstrap is missing (apt-get install -y debootstrap)")
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=_scratch()) as tmp:
        rootfs = Path(tmp) / "rootfs"
        with step(f"debootstrap {debian['suite']} (minbase) from {debian['mirror']}"):
            run(
                "debootstrap",
                "--variant=minbase",
                "--include=ca-certificates",
                debian["suite"],
                rootfs,
                debian["mirror"],
                stdout=subprocess.DEVNULL,
            )
        with step("trim rootfs"):
            trim_rootfs(rootfs)
        with step(f"docker import -> {tag}"):
            tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            run(
                "docker",
                "import",
                "--change",
                'CMD ["bash"]',
                "--change",
                f"LABEL {BOOTSTRAP_LABEL}=debootstrap-{debian['suite']}-minbase",
                "-",
                tag,
                stdin=tar.stdout,
                stdout=subprocess.DEVNULL,
            )
            if tar.wait() != 0:
                raise SystemExit("bootstrap: tar of the rootfs failed")


def _scratch() -> Path:
    path = CACHE / "bootstrap"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- python --------------------------------------------------------------------------------------


def find_cpython(version: str) -> Path:
    candidates = [Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions" / version]
    candidates += [Path("/opt/python") / version, Path("/usr/local")]
    minor = ".".join(version.split(".")[:2])
    for prefix in candidates:
        exe = prefix / "bin" / f"python{minor}"
        if exe.exists():
            found = subprocess.run(
                [exe, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True
            )
            if found.stdout.strip() == version:
                return prefix
    raise SystemExit(
        f"bootstrap: no local CPython {version} (looked in {', '.join(str(c) for c in candidates)}); "
        f"build it with `pyenv install {version}` or set PYENV_ROOT"
    )


def stage_cpython(prefix: Path, minor: str, dest: Path) -> None:
    """Copy interpreter, shared library, headers and standard library (nothing installed on top)."""
    (dest / "bin").mkdir(parents=True)
    shutil.copy2(prefix / "bin" / f"python{minor}", dest / "bin" / f"python{minor}")
    for name in ("python3", "python"):
        (dest / "bin" / name).symlink_to(f"python{minor}")
    shutil.copytree(prefix / "include", dest / "include", symlinks=True)
    (dest / "lib").mkdir()
    for lib in (prefix / "lib").glob("libpython*.so*"):
        shutil.copy2(lib, dest / "lib" / lib.name, follow_symlinks=False)

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in CPYTHON_SKIP_DIRS}
        skipped |= {n for n in names if n.startswith(CPYTHON_SKIP_FILES) and n.endswith((".so", ".a"))}
        return skipped

    shutil.copytree(prefix / "lib" / f"python{minor}", dest / "lib" / f"python{minor}", symlinks=True, ignore=ignore)
    (dest / "lib" / f"python{minor}" / "site-packages").mkdir()


def build_python(matrix: dict[str, object], cell: dict[str, object], offline: bool, force: bool) -> None:
    tag = str(cell["base"])
    if cell["libc"] != "glibc":
        say(f"{tag}: not made here (no {cell['libc']} userland can be obtained offline)")
        return
    if image_exists(tag) and not force:
        say(f"{tag}: present")
        return
    if not force and try_pull(tag, offline):
        return
    version = str(cell["cpython"])
    minor = str(cell["python"])
    prefix = find_cpython(version)
    debian = matrix["debian"]
    assert isinstance(debian, dict)
    with tempfile.TemporaryDirectory(prefix=f"python-{version}-", dir=_scratch()) as tmp:
        context = Path(tmp)
        with step(f"stage CPython {version} from {prefix}"):
            stage_cpython(prefix, minor, context / "python")
            shutil.copy2(ROOT / "docker" / "python-slim.Dockerfile", context / "Dockerfile")
        with step(f"docker build -> {tag}"):
            run(
                "docker", "build", "--network", "host", "--quiet",
                "--build-arg", f"BASE={debian['image']}",
                "--build-arg", f"PYTHON_VERSION={version}",
                "--label", f"{BOOTSTRAP_LABEL}=cpython-{version}-from-{prefix}",
                "-t", tag, context,
            )  # fmt: skip


# --- wheels --------------------------------------------------------------------------------------


def wheelhouse_for(cell: dict[str, object]) -> Path:
    return WHEELHOUSE / str(cell["id"])


MARKER = re.compile(r'^python_version\s*(==|!=|<=|>=|<|>)\s*["\']([\d.]+)["\']$')


def requirements_for(minor: str, name: str) -> list[str]:
    """The pins of docker/<name> that apply to Python ``minor``.

    pip evaluates environment markers against the interpreter running it, not the target of
    ``--python-version``, so the markers (only ``python_version`` comparisons) are resolved here.
    """
    import operator as op

    ops = {"==": op.eq, "!=": op.ne, "<=": op.le, ">=": op.ge, "<": op.lt, ">": op.gt}
    target = tuple(int(part) for part in minor.split("."))
    pins = []
    for raw in (ROOT / "docker" / name).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        spec, _, marker = (part.strip() for part in line.partition(";"))
        if marker:
            match = MARKER.match(marker)
            if match is None:
                raise SystemExit(f"docker/{name}: unsupported marker {marker!r} (only python_version comparisons)")
            if not ops[match[1]](target, tuple(int(part) for part in match[2].split("."))):
                continue
        pins.append(spec)
    return pins


def downloader(cell: dict[str, object]) -> Path | str:
    """The interpreter that runs ``pip download``: the cell's own CPython when this host has it.

    pip applies environment markers (``exceptiongroup; python_version < "3.11"``) for the
    interpreter running it, whatever ``--python-version`` says; with the host's Python a py3.10
    wheelhouse would lack what only 3.10 needs.
    """
    minor = str(cell["python"])
    try:
        exe = find_cpython(str(cell["cpython"])) / "bin" / f"python{minor}"
    except SystemExit:
        exe = None
    if exe is not None and subprocess.run([exe, "-m", "pip", "--version"], capture_output=True).returncode == 0:
        return exe
    if minor != f"{sys.version_info.major}.{sys.version_info.minor}":
        say(f"no CPython {cell['cpython']} with pip here: dependencies' markers follow this host's Python")
    return sys.executable


def fill_wheelhouse(matrix: dict[str, object], cell: dict[str, object], force: bool) -> None:
    dest = wheelhouse_for(cell)
    stamp = dest / "wheelhouse.json"
    torch_spec = f"torch=={cell['torch']}"
    if stamp.exists() and not force and json.loads(stamp.read_text()).get("torch") == torch_spec:
        say(f"{dest.relative_to(ROOT)}: present")
        return
    tags = matrix["platform_tags"]
    assert isinstance(tags, dict)
    minor = str(cell["python"])
    abi = "cp" + minor.replace(".", "")
    base_cmd: list[str | Path] = [downloader(cell), "-m", "pip", "download", "--only-binary=:all:", "--dest", dest]
    base_cmd += ["--python-version", minor, "--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none"]
    for tag in tags[str(cell["libc"])]:
        base_cmd += ["--platform", tag]
    # setuptools/wheel: the build backend for accel itself, installed offline in the builder.
    base_cmd += [*requirements_for(minor, "requirements.txt"), torch_spec, "setuptools>=69", "wheel"]
    base_cmd += requirements_for(minor, "requirements-dev.txt")
    dest.mkdir(parents=True, exist_ok=True)
    with step(f"pip download for {cell['id']} ({abi}, {cell['libc']})"):
        try:
            run(*base_cmd, "--quiet")
        except subprocess.CalledProcessError:
            index = matrix["torch_index"]
            assert isinstance(index, dict)
            extra = index.get(str(cell["variant"]))
            if not extra:
                raise
            say(f"{torch_spec} is not on this host's indexes; trying {extra}")
            run(*base_cmd, "--quiet", "--extra-index-url", extra)
    wheels = sorted(p.name for p in dest.glob("*.whl"))
    size = sum(p.stat().st_size for p in dest.glob("*.whl"))
    stamp.write_text(json.dumps({"cell": cell["id"], "torch": torch_spec, "wheels": wheels}, indent=1) + "\n")
    say(f"{len(wheels)} wheels, {size / 1e6:.0f} MB in {dest.relative_to(ROOT)}")


# --- image ---------------------------------------------------------------------------------------


def image_tag(cell: dict[str, object]) -> str:
    return f"accel:{cell['id']}"


def build_args(cell: dict[str, object]) -> dict[str, str]:
    return {
        "PYTHON_VERSION": str(cell["python"]),
        "VARIANT": str(cell["variant"]),
        "TORCH_VERSION": str(cell["torch"]),
        "ACCEL_VERSION": accel_version(),
        "VCS_REF": _git("rev-parse", "--short=12", "HEAD") or "unknown",
        "SOURCE_URL": _git("config", "--get", "remote.origin.url") or "https://github.com/accel-dev/accel",
    }


def _git(*args: str) -> str:
    result = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


# The build context, as .dockerignore allows it, but with only this cell's wheelhouse: every
# cell's wheelhouse together is several GB (a CUDA one alone is ~3 GB).
CONTEXT_FILES = ("Dockerfile", "pyproject.toml", "README.md", "LICENSE")
CONTEXT_DIRS = ("accel", "docker")


def write_context(cell: dict[str, object], fileobj: IO[bytes]) -> None:
    """Stream the build context of `cell` as a tar to `fileobj` (docker build - / docker-py fileobj)."""

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if "__pycache__" in info.name.split("/") or info.name.endswith(".pyc") else info

    # GNU format: a PAX header as the first member hides the archive from docker build's sniffing.
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for name in CONTEXT_FILES:
            if (ROOT / name).exists():
                tar.add(ROOT / name, arcname=name, filter=keep)
        for name in CONTEXT_DIRS:
            tar.add(ROOT / name, arcname=name, filter=keep)
        wheels = wheelhouse_for(cell)
        if wheels.is_dir():
            tar.add(wheels, arcname=f".cache/wheelhouse/{cell['id']}", filter=keep)


def build_image(cell: dict[str, object], force: bool) -> None:
    tag = image_tag(cell)
    dockerfile = str(cell["dockerfile"])
    cmd: list[str | Path] = ["docker", "build", "--network", "host", "-f", dockerfile, "-t", tag]
    if dockerfile == "Dockerfile":
        cmd += ["--target", "runtime"]
    args = {**build_args(cell), "WHEELHOUSE": f".cache/wheelhouse/{cell['id']}"}
    for key, value in args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    if force:
        cmd.append("--no-cache")
    with step(f"docker build -> {tag}"):
        say("$ " + " ".join(map(str, cmd)) + " - < context")
        proc = subprocess.Popen([*map(str, cmd), "-"], stdin=subprocess.PIPE)
        assert proc.stdin is not None
        try:
            write_context(cell, proc.stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # docker build stopped reading; its exit status says why
        if proc.wait() != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd)
    size = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", tag], capture_output=True, text=True)
    say(f"{tag}: {int(size.stdout.strip()) / 1e9:.3f} GB")


# --- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("steps", nargs="*", metavar="STEP", help=f"any of {', '.join(STEPS)} (default: all)")
    parser.add_argument("--cell", help="a cell id from docker/matrix.json (default: the cell marked default)")
    parser.add_argument("--offline", action="store_true", help="never try a registry; build the bases here")
    parser.add_argument("--force", action="store_true", help="rebuild even what exists")
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
        fill_wheelhouse(matrix, cell, args.force)
    if "image" in steps:
        build_image(cell, args.force)
    say(f"done in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        say(f"failed: {' '.join(map(str, exc.cmd))} exited {exc.returncode}")
        sys.exit(exc.returncode or 1)
