"""``accel env``: what to paste into a bug report.

Versions, platform, CPU, memory, ``/dev/shm``, GPUs, the detected cluster environment, the config
file and every resolved setting with its source. It never imports torch (versions come from
package metadata, GPUs from ``nvidia-smi``/procfs), never needs ``accel`` on PATH, and never
crashes: a section that cannot be read says why.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from accel import env
from accel.commands.parser import Parser
from accel.version import __version__

GIB = 1024**3
SMALL_SHM = GIB


def _safe(section: Callable[[], list[str]]) -> list[str]:
    try:
        return section()
    except Exception as exc:  # a report must never crash
        return [f"{section.__name__.lstrip('_')}: unavailable ({type(exc).__name__}: {exc})"]


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _torch_build() -> str:
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return "not installed"
    text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text(encoding="utf-8")
    builds = []
    for name in ("cuda", "hip"):
        match = re.search(rf"^{name}\b[^=]*=\s*['\"]?([^'\"\n]+)", text, re.MULTILINE)
        if match and match.group(1).strip() != "None":
            builds.append(f"{name.upper()} {match.group(1).strip()}")
    return ", ".join(builds) or "CPU only"


def _versions() -> list[str]:
    return [
        f"accel: {__version__}",
        f"python: {platform.python_version()} ({platform.python_implementation()}) at {sys.executable}",
        f"torch: {_version('torch')} (build: {_torch_build()})",
        f"pyyaml: {_version('pyyaml')}, psutil: {_version('psutil')}, safetensors: {_version('safetensors')}",
    ]


def _platform() -> list[str]:
    libc = " ".join(platform.libc_ver()).strip() or "unknown libc"
    return [f"platform: {platform.platform()} ({libc})", f"cpu: {os.cpu_count()} logical cores, {platform.machine()}"]


def _memory() -> list[str]:
    import psutil

    vm = psutil.virtual_memory()
    return [f"memory: {vm.total / GIB:.1f} GiB total, {vm.available / GIB:.1f} GiB available"]


def _shm() -> list[str]:
    if not os.path.isdir("/dev/shm"):
        return ["/dev/shm: absent"]
    stat = os.statvfs("/dev/shm")
    size, free = stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize
    line = f"/dev/shm: {size / GIB:.2f} GiB ({free / GIB:.2f} GiB free)"
    if size < SMALL_SHM:
        line += " - small for multi-process data loading and NCCL: in Docker use --shm-size=2g or --ipc=host"
    return [line]


def _gpu_rows() -> tuple[list[str], str]:
    """GPU descriptions and where they came from (nvidia-smi, procfs), without importing torch."""
    smi = shutil.which("nvidia-smi")
    if smi:
        query = [smi, "--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader"]
        out = subprocess.run(query, capture_output=True, text=True, timeout=10, check=False)
        if out.returncode == 0:
            return [row.strip() for row in out.stdout.splitlines() if row.strip()], "nvidia-smi"
        detail = out.stderr.strip().splitlines()[0] if out.stderr.strip() else str(out.returncode)
        return [], f"nvidia-smi failed: {detail}"
    procfs = Path("/proc/driver/nvidia/gpus")
    if procfs.is_dir():
        return [p.name for p in sorted(procfs.iterdir())], "/proc/driver/nvidia; nvidia-smi not on PATH"
    return [], "no nvidia-smi, no /proc/driver/nvidia"


def _gpus() -> list[str]:
    rows, origin = _gpu_rows()
    if not rows:
        return [f"gpus: none found ({origin})"]
    return [f"gpus: {len(rows)} (from {origin})"] + [f"  gpu {row}" for row in rows]


def detect_cluster(environ: Mapping[str, str]) -> str:
    """Which launcher or scheduler this process runs under, in words."""

    def has(*names: str) -> bool:
        return all(env.is_set(name, environ) for name in names)

    found = []
    if has(env.TORCHELASTIC_RUN_ID):
        found.append(f"torchrun worker (rank {env.get(env.RANK, environ)} of {env.get(env.WORLD_SIZE, environ)})")
    if has(env.PET_NNODES) or has(env.PET_NPROC_PER_NODE):
        found.append(
            f"Kubeflow/torchrun inputs (PET_NNODES={env.get(env.PET_NNODES, environ)}, "
            f"PET_NPROC_PER_NODE={env.get(env.PET_NPROC_PER_NODE, environ)})"
        )
    elif has(env.RANK, env.WORLD_SIZE, env.MASTER_ADDR, env.MASTER_PORT) and not has(env.TORCHELASTIC_RUN_ID):
        found.append(
            f"explicit RANK/WORLD_SIZE (Kubeflow PyTorchJob pod {env.get(env.RANK, environ)} of "
            f"{env.get(env.WORLD_SIZE, environ)}, master {env.get(env.MASTER_ADDR, environ)})"
        )
    if has(env.SLURM_JOB_ID):
        found.append(
            f"SLURM job {env.get(env.SLURM_JOB_ID, environ)} (task {env.get(env.SLURM_PROCID, environ)} of "
            f"{env.get(env.SLURM_NTASKS, environ)}, nodes {env.get(env.SLURM_JOB_NODELIST, environ)})"
        )
    mpi = [name for name in env.OMPI_SIZE_ALIASES if has(name)]
    if mpi:
        found.append(f"MPI ({mpi[0]}={env.get(mpi[0], environ)})")
    return "; ".join(found) or "none detected (a plain machine)"


def _settings(config_file: str | None) -> list[str]:
    from accel.config import resolve

    resolved = resolve(config_file=config_file)
    lines = [f"config file: {resolved.describe_file()}", "settings (value, source):"]
    for key in resolved:
        value = resolved[key]
        shown = ("unset" if key == "project_dir" else "auto") if value is None else value
        lines.append(f"  {key:<28} {shown!s:<24} {resolved.source(key)}")
    from accel.exceptions import AccelError
    from accel.launch.plan import plan

    try:
        launch = plan(resolved, len(_gpu_rows()[0]), port_free=lambda host, port: True, pick_port=lambda host: 0)
    except AccelError as exc:
        lines.append(f"accel launch would fail: {exc}")
        return lines
    where = "CPU" if launch.use_cpu else "GPU"
    notes = "".join(f"; {note}" for note in launch.notes)
    lines.append(
        f"accel launch would run: {launch.nproc_per_node} process(es) x {launch.num_machines} machine(s) on {where}, "
        f"world size {launch.world_size}{notes}"
    )
    return lines


def report(config_file: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The whole report as text."""
    environ = env.snapshot() if environ is None else environ
    lines: list[str] = []
    for section in (_versions, _platform, _memory, _shm, _gpus):
        lines += _safe(section)

    def _cluster() -> list[str]:
        return [f"cluster: {detect_cluster(environ)}"]

    def _config() -> list[str]:
        return _settings(config_file)

    lines += _safe(_cluster)
    lines += _safe(_config)
    accel_vars = env.accel_settings(environ)
    lines.append("ACCEL_* variables: " + (", ".join(f"{k}={v}" for k, v in sorted(accel_vars.items())) or "none"))
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """``accel env [--config_file PATH] [--verify]``."""
    parser = Parser(prog="accel env")
    parser.add_argument("--config_file", "--config-file", dest="config_file")
    parser.add_argument("--verify", action="store_true", help="only check the image's environment against its seal")
    args = parser.parse_args(argv)
    from accel.envlock import report as environment

    lines, code = environment(verbose=args.verify)
    if args.verify:
        sys.stdout.write("\n".join(lines) + "\n")
        return code
    sys.stdout.write(report(args.config_file) + "\n".join(lines) + "\n")
    return 0
