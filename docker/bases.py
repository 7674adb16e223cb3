"""Base images without a registry: ``debian:bookworm-slim`` (debootstrap) and ``python:X-slim-bookworm``.

Both steps pull when a registry answers and otherwise build here; each is skipped when the image
exists (``--force`` rebuilds).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cells import CACHE, ROOT, BuildInputError, Cell

BOOTSTRAP_LABEL = "org.accel.bootstrap"
# The python3 each Debian suite ships (usable as a cell's interpreter when no other is here).
DEBIAN_PYTHON = {"bookworm": "3.11", "trixie": "3.13"}


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


def run(*cmd: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    say("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kwargs)  # type: ignore[call-overload, no-any-return]


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


def scratch() -> Path:
    path = CACHE / "bootstrap"
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def build_debian(matrix: dict[str, Any], offline: bool, force: bool) -> None:
    debian = matrix["debian"]
    tag = debian["image"]
    if image_exists(tag) and not force:
        say(f"{tag}: present")
        return
    if not force and try_pull(tag, offline):
        return
    if shutil.which("debootstrap") is None:
        raise BuildInputError("debootstrap is missing (apt-get install -y debootstrap)")
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=scratch()) as tmp:
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
                raise BuildInputError("tar of the rootfs failed")


# --- python --------------------------------------------------------------------------------------


def find_cpython(minor: str, preferred: str) -> tuple[Path, str] | None:
    """A CPython ``minor`` on this host (the ``preferred`` patch release first): (prefix, version)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [pyenv / preferred]
    for folder in (pyenv, Path("/opt/python")):
        candidates += sorted(folder.glob(f"{minor}.*"), key=_version_key, reverse=True)
    candidates.append(Path("/usr/local"))
    for prefix in candidates:
        exe = prefix / "bin" / f"python{minor}"
        if not exe.exists() or not (prefix / "lib" / f"python{minor}").is_dir():
            continue
        found = subprocess.run(
            [exe, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True
        )
        version = found.stdout.strip()
        if found.returncode == 0 and ".".join(version.split(".")[:2]) == minor:
            return prefix, version
    return None


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in path.name.split("."))


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


def build_python(matrix: dict[str, Any], cell: Cell, offline: bool, force: bool) -> None:
    """The cell's ``python:X-slim-bookworm``: pulled, or made from a CPython of the cell's minor version.

    Any patch release will do (the cell's ``cpython`` is preferred): pyenv's or /opt/python's
    builds, /usr/local, or, when the Debian suite's own python3 is that minor version (bookworm:
    3.11), Debian's package. The version used is recorded in the image (label org.accel.cpython,
    ENV PYTHON_VERSION).
    """
    tag = str(cell["base"])
    if cell["libc"] != "glibc":
        say(f"{tag}: not made here (no {cell['libc']} userland can be obtained offline)")
        return
    if image_exists(tag) and not force:
        say(f"{tag}: present")
        return
    if not force and try_pull(tag, offline):
        return
    minor = str(cell["python"])
    debian = matrix["debian"]
    found = find_cpython(minor, str(cell["cpython"]))
    if found is None and DEBIAN_PYTHON.get(str(debian["suite"])) != minor:
        raise BuildInputError(
            f"cell {cell['id']}: no CPython {minor}.x on this host (looked in pyenv's versions, /opt/python, "
            f"/usr/local) and Debian {debian['suite']} ships {DEBIAN_PYTHON.get(str(debian['suite']), 'another')}; "
            f"install one, e.g. `pyenv install {minor}`"
        )
    with tempfile.TemporaryDirectory(prefix=f"python-{minor}-", dir=scratch()) as tmp:
        context = Path(tmp)
        (context / "python").mkdir()
        if found is None:
            source, version = "debian", f"debian-{debian['suite']}"
            say(f"no CPython {minor} here: using Debian {debian['suite']}'s python{minor} package")
        else:
            prefix, version = found
            source = "copy"
            with step(f"stage CPython {version} from {prefix}"):
                shutil.rmtree(context / "python")
                stage_cpython(prefix, minor, context / "python")
        shutil.copy2(ROOT / "docker" / "python-slim.Dockerfile", context / "Dockerfile")
        with step(f"docker build -> {tag}"):
            run(
                "docker", "build", "--network", "host", "--quiet",
                "--build-arg", f"BASE={debian['image']}",
                "--build-arg", f"PYTHON_MINOR={minor}",
                "--build-arg", f"PYTHON_SOURCE={source}",
                "--build-arg", f"PYTHON_VERSION={version if source == 'copy' else minor}",
                "--label", f"{BOOTSTRAP_LABEL}=python-slim-{source}",
                "--label", f"org.accel.cpython={version}",
                "-t", tag, context,
            )  # fmt: skip
    probe = "import platform; print(platform.python_version())"
    out = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", tag, "python3", "-c", probe], capture_output=True, text=True
    )
    say(f"{tag}: CPython {out.stdout.strip() or '?'} ({source})")
