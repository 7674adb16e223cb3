"""The environment contract: every environment variable accel reads or writes.

No other module touches ``os.environ`` (a ruff rule enforces it). Readers take an optional
mapping so that callers and tests can resolve against any environment, not only the process's.

Variables accel reads (set by torch's elastic launcher, schedulers, or the user):

========================================  =================================================
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``  process coordinates (torchrun / explicit)
``LOCAL_WORLD_SIZE``, ``GROUP_RANK``      processes on this node / node index (torchrun)
``MASTER_ADDR``, ``MASTER_PORT``          rendezvous address of the process group
``TORCHELASTIC_RUN_ID``                   present under torch's elastic launcher
``TORCHELASTIC_RESTART_COUNT``            > 0 after a worker-group restart (auto-resume)
``SLURM_PROCID``, ``SLURM_NTASKS`` …      SLURM tasks (srun)
``OMPI_COMM_WORLD_*``, ``PMI_*``          MPI launchers (OpenMPI, MPICH/Intel MPI)
``ACCEL_*``                               accel's own settings, listed in :data:`ACCEL_VARIABLES`
========================================  =================================================
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from accel.exceptions import ConfigError

# torch elastic / explicit world
RANK = "RANK"
WORLD_SIZE = "WORLD_SIZE"
LOCAL_RANK = "LOCAL_RANK"
LOCAL_WORLD_SIZE = "LOCAL_WORLD_SIZE"
GROUP_RANK = "GROUP_RANK"
MASTER_ADDR = "MASTER_ADDR"
MASTER_PORT = "MASTER_PORT"
TORCHELASTIC_RUN_ID = "TORCHELASTIC_RUN_ID"
TORCHELASTIC_RESTART_COUNT = "TORCHELASTIC_RESTART_COUNT"
TORCHELASTIC_USE_AGENT_STORE = "TORCHELASTIC_USE_AGENT_STORE"  # "True": the agent hosts the store
# SLURM
SLURM_PROCID = "SLURM_PROCID"
SLURM_NTASKS = "SLURM_NTASKS"
SLURM_LOCALID = "SLURM_LOCALID"
SLURM_NODEID = "SLURM_NODEID"
SLURM_JOB_ID = "SLURM_JOB_ID"
SLURM_LAUNCH_NODE_IPADDR = "SLURM_LAUNCH_NODE_IPADDR"
# MPI
OMPI_RANK = "OMPI_COMM_WORLD_RANK"
OMPI_SIZE = "OMPI_COMM_WORLD_SIZE"
OMPI_LOCAL_RANK = "OMPI_COMM_WORLD_LOCAL_RANK"
PMI_RANK = "PMI_RANK"
PMI_SIZE = "PMI_SIZE"
MPI_LOCALRANKID = "MPI_LOCALRANKID"
# Kubeflow PyTorchJob (PET_* are torchrun settings injected by the training operator)
PET_NPROC_PER_NODE = "PET_NPROC_PER_NODE"
PET_NNODES = "PET_NNODES"
# other
XDG_CONFIG_HOME = "XDG_CONFIG_HOME"

# accel's own settings
CONFIG_FILE = "ACCEL_CONFIG_FILE"
CONFIG_SOURCE = "ACCEL_CONFIG_SOURCE"
CONFIG_NOSYSTEM = "ACCEL_CONFIG_NOSYSTEM"
MIXED_PRECISION = "ACCEL_MIXED_PRECISION"
GRADIENT_ACCUMULATION_STEPS = "ACCEL_GRADIENT_ACCUMULATION_STEPS"
USE_CPU = "ACCEL_USE_CPU"
STRATEGY = "ACCEL_STRATEGY"
CLUSTER = "ACCEL_CLUSTER"
REQUESTED_WORLD_SIZE = "ACCEL_REQUESTED_WORLD_SIZE"
AUTO_RESUME = "ACCEL_AUTO_RESUME"
PROJECT_DIR = "ACCEL_PROJECT_DIR"
PROCESS_GROUP_TIMEOUT = "ACCEL_PROCESS_GROUP_TIMEOUT"
LOG_LEVEL = "ACCEL_LOG_LEVEL"
DEBUG_MODE = "ACCEL_DEBUG_MODE"
ENVIRONMENT_DIR = "ACCEL_ENVIRONMENT_DIR"

ACCEL_VARIABLES: dict[str, str] = {
    CONFIG_FILE: "path of the config file to use (beats the user and system files)",
    CONFIG_NOSYSTEM: "1 ignores the system file /etc/accel/config.yaml (as an image bakes it)",
    CONFIG_SOURCE: "set by `accel launch`: the config file the launch resolved (informational)",
    MIXED_PRECISION: "no | bf16 | fp16",
    GRADIENT_ACCUMULATION_STEPS: "micro-batches per optimizer step (integer >= 1)",
    USE_CPU: "1 forces the CPU even when a GPU is present",
    STRATEGY: "ddp | fsdp (world size > 1)",
    CLUSTER: "force the process-discovery source: auto | torchrun | env | slurm | mpi | single",
    REQUESTED_WORLD_SIZE: "set by `accel launch`: world size each rank must see",
    AUTO_RESUME: "0 disables loading the latest checkpoint after an elastic restart",
    PROJECT_DIR: "default project directory for checkpoints and trackers",
    PROCESS_GROUP_TIMEOUT: "seconds a collective may wait before failing (default 1800)",
    LOG_LEVEL: "level of loggers made by accel.logging.get_logger without log_level (e.g. INFO, DEBUG)",
    DEBUG_MODE: "1: collectives first compare shapes across ranks and raise naming each rank's shape",
    ENVIRONMENT_DIR: "where an image's sealed environment lies (default /opt/accel/environment)",
}

TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", "n", ""})


def _source(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def get(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Return the variable's value, or None when unset."""
    return _source(environ).get(name)


def is_set(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """True when the variable is present (even if empty)."""
    return name in _source(environ)


def get_int(name: str, environ: Mapping[str, str] | None = None) -> int | None:
    """Return the variable as an int, None when unset; a ConfigError naming it when not an integer."""
    raw = get(name, environ)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw.strip())
    except ValueError:
        raise ConfigError(
            f"environment variable {name}={raw!r} is not an integer; set it to a whole number or unset it"
        ) from None


def get_bool(name: str, environ: Mapping[str, str] | None = None) -> bool | None:
    """Return the variable as a bool, None when unset; a ConfigError naming it when not a yes/no word."""
    raw = get(name, environ)
    if raw is None:
        return None
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"environment variable {name}={raw!r} is not a yes/no value; use 1/0, true/false or yes/no")


def snapshot(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the whole environment (for child processes and reports)."""
    return dict(_source(environ))


def accel_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every ``ACCEL_*`` variable that is set."""
    return {k: v for k, v in _source(environ).items() if k.startswith("ACCEL_")}


def update(values: Mapping[str, str | None]) -> None:
    """Write variables into this process's environment; a None value removes the variable."""
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@contextlib.contextmanager
def patched(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, with None, remove) variables for the duration of the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    update(values)
    try:
        yield
    finally:
        update(saved)


# ---------------------------------------------------------------- launcher settings (accel launch)
# Every config key can come from ACCEL_<KEY>; the launcher reads these between flags and the file.
NUM_PROCESSES = "ACCEL_NUM_PROCESSES"
NUM_MACHINES = "ACCEL_NUM_MACHINES"
MACHINE_RANK = "ACCEL_MACHINE_RANK"
MAIN_PROCESS_IP = "ACCEL_MAIN_PROCESS_IP"
MAIN_PROCESS_PORT = "ACCEL_MAIN_PROCESS_PORT"
RDZV_BACKEND = "ACCEL_RDZV_BACKEND"
RDZV_ID = "ACCEL_RDZV_ID"
RDZV_TIMEOUT = "ACCEL_RDZV_TIMEOUT"
MAX_RESTARTS = "ACCEL_MAX_RESTARTS"
MONITOR_INTERVAL = "ACCEL_MONITOR_INTERVAL"
SHUTDOWN_TIMEOUT_S = "ACCEL_SHUTDOWN_TIMEOUT"
# torchrun's own inputs (Kubeflow Trainer and elastic PyTorchJobs inject these)
PET_NODE_RANK = "PET_NODE_RANK"
PET_MASTER_ADDR = "PET_MASTER_ADDR"
PET_MASTER_PORT = "PET_MASTER_PORT"
PET_RDZV_ENDPOINT = "PET_RDZV_ENDPOINT"
PET_RDZV_BACKEND = "PET_RDZV_BACKEND"
PET_RDZV_ID = "PET_RDZV_ID"
PET_MAX_RESTARTS = "PET_MAX_RESTARTS"
# set for workers by `accel launch`
GLOO_SOCKET_IFNAME = "GLOO_SOCKET_IFNAME"
OMP_NUM_THREADS = "OMP_NUM_THREADS"
TORCHELASTIC_ERROR_FILE = "TORCHELASTIC_ERROR_FILE"
CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"  # --gpu_ids
TORCHELASTIC_SIGNALS_TO_HANDLE = "TORCHELASTIC_SIGNALS_TO_HANDLE"
# cluster detection in `accel env`
OMPI_SIZE_ALIASES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
SLURM_JOB_NODELIST = "SLURM_JOB_NODELIST"

ACCEL_VARIABLES.update(
    {
        NUM_PROCESSES: "processes per machine for `accel launch`",
        NUM_MACHINES: "machines taking part in the launch",
        MACHINE_RANK: "index of this machine (0 hosts the rendezvous)",
        MAIN_PROCESS_IP: "address of machine 0",
        MAIN_PROCESS_PORT: "rendezvous port on machine 0 (0: a free port, one machine only)",
        RDZV_BACKEND: "c10d | static",
        RDZV_ID: "rendezvous id shared by the machines of one job",
        RDZV_TIMEOUT: "seconds to wait for every machine to join",
        MAX_RESTARTS: "worker-group restarts after a failure",
        MONITOR_INTERVAL: "seconds between worker health checks",
        SHUTDOWN_TIMEOUT_S: "seconds between SIGTERM and SIGKILL when stopping ranks",
    }
)
TORCH_CPP_LOG_LEVEL = "TORCH_CPP_LOG_LEVEL"
