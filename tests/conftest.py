"""Shared fixtures: environment hygiene and a real multi-process runner on torch's elastic launcher."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# accel's images bake a default config (ACCEL_CONFIG_FILE=/etc/accel/config.yaml, 2 CPU processes).
# The suite tests accel itself, also when the matrix runs it inside a cell's image, so it starts
# from no config file, as on a host; tests that want one write their own (or pass ``system=``).
os.environ.pop("ACCEL_CONFIG_FILE", None)
os.environ["ACCEL_CONFIG_NOSYSTEM"] = "1"

# Variables torch or its launcher may legitimately leave behind in the test process.
_ALLOWED_LEAKS = {
    "GLOO_SOCKET_IFNAME",
    "TORCHELASTIC_USE_AGENT_STORE",
    "TORCHINDUCTOR_CACHE_DIR",
    "OMP_NUM_THREADS",
    "CUDA_MODULE_LOADING",
    "PYTEST_CURRENT_TEST",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", help="also run the long suite (tests marked long)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without --long, tests marked ``long`` are deselected (not skipped): CI runs the rest."""
    if config.getoption("--long"):
        return
    long_items = [item for item in items if item.get_closest_marker("long") is not None]
    if long_items:
        config.hook.pytest_deselected(items=long_items)
        items[:] = [item for item in items if item.get_closest_marker("long") is None]


@pytest.fixture(autouse=True)
def _hygiene() -> Iterator[None]:
    """Fail a test that leaks environment variables or a process group."""
    before = dict(os.environ)
    yield
    leaked = {k for k in set(os.environ) ^ set(before) if k not in _ALLOWED_LEAKS}
    changed = {k for k in set(os.environ) & set(before) if os.environ[k] != before[k] and k not in _ALLOWED_LEAKS}
    os.environ.clear()
    os.environ.update(before)
    import torch.distributed as dist

    initialised = dist.is_available() and dist.is_initialized()
    if initialised:
        dist.destroy_process_group()
    assert not leaked and not changed, f"test leaked environment variables: {sorted(leaked | changed)}"
    assert not initialised, "test left a torch.distributed process group initialised"


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dist_run(fn: Callable[..., Any], *args: Any, nproc: int = 2) -> dict[int, Any]:
    """Run ``fn(*args)`` on ``nproc`` real gloo ranks through torch's elastic launcher; return {rank: result}."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from accel.launch.elastic import scratch_dir

    saved = dict(os.environ)
    os.environ["ACCEL_USE_CPU"] = "1"
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    try:
        with scratch_dir() as logs:  # nothing left in the temp folder (torchelastic_*, pytorch-errorfile-*)
            config = LaunchConfig(
                min_nodes=1,
                max_nodes=1,
                nproc_per_node=nproc,
                run_id=uuid.uuid4().hex,
                rdzv_backend="c10d",
                rdzv_endpoint=f"127.0.0.1:{free_port()}",
                rdzv_configs={"timeout": 60},
                max_restarts=0,
                monitor_interval=0.1,
                start_method="spawn",
                local_addr="127.0.0.1",
                logs_specs=DefaultLogsSpecs(log_dir=logs),
            )
            return dict(elastic_launch(config, fn)(*args))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 240) -> Any:
    """Run ``python -m accel ARGS`` in a subprocess; return the CompletedProcess."""
    import subprocess

    full_env = dict(os.environ)
    full_env.pop("PYTEST_CURRENT_TEST", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "accel", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
