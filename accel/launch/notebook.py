"""``notebook_launcher``: run a training function on N processes from a notebook or a script.

It takes the same path as ``accel launch`` (resolve → plan → torch ``elastic_launch``), with the
function as the entrypoint. Explicit arguments beat ``ACCEL_*`` variables and the config file,
which beat the built-in defaults. Children start with ``fork`` when that is safe (CUDA not
initialised here), else ``spawn`` (the function must then be importable, i.e. defined in a module).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import pickle
import sys
from collections.abc import Callable, Sequence
from typing import Any

from accel.config import Setting, check_value, resolve, split_endpoint
from accel.exceptions import ConfigError, StateError


def _explicit(values: dict[str, Any]) -> dict[str, Setting]:
    return {
        key: Setting(check_value(key, value, f"notebook_launcher({key}=...)"), "argument")
        for key, value in values.items()
        if value is not None
    }


def _port(use_port: int | str | None) -> int | None:
    if use_port is None:
        return None
    if isinstance(use_port, bool) or not isinstance(use_port, (int, str)):
        raise ConfigError(f"notebook_launcher(use_port=...) must be a port number, got {use_port!r}")
    try:
        return int(use_port)
    except ValueError:
        raise ConfigError(f"notebook_launcher(use_port=...) must be a port number, got {use_port!r}") from None


def _check_parent_is_clean() -> None:
    import torch.distributed as dist

    from accel.state import live_states

    states = live_states()
    if states or (dist.is_available() and dist.is_initialized()):
        what = type(states[0]).__name__ if states else "a torch.distributed process group"
        raise StateError(
            f"{what} already exists in this process, so the launched processes could not form their own "
            "world; create the Accelerator/PartialState inside the training function, then restart the "
            "kernel (or delete it) and call notebook_launcher again"
        )


def _start_method(function: Callable[..., Any]) -> str:
    import torch

    from accel.launch.elastic import FunctionWorker

    if "fork" in multiprocessing.get_all_start_methods() and not torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        return "fork"
    try:
        pickle.dumps(FunctionWorker(function))
    except Exception as exc:
        raise ConfigError(
            f"CUDA is already initialised here, so processes must be spawned, and {function!r} cannot be "
            f"pickled for that ({type(exc).__name__}); define the function in a module, or restart and avoid "
            "touching CUDA before notebook_launcher"
        ) from None
    return "spawn"


def notebook_launcher(
    function: Callable[..., Any],
    args: Sequence[Any] = (),
    num_processes: int | None = None,
    mixed_precision: str | None = None,
    use_port: int | str | None = None,
    master_addr: str = "127.0.0.1",
    node_rank: int = 0,
    num_nodes: int = 1,
    max_restarts: int = 0,
    monitor_interval: float = 0.1,
    rdzv_backend: str = "c10d",
    rdzv_endpoint: str = "",
    rdzv_conf: dict[str, Any] | None = None,
    rdzv_id: str = "none",
    log_line_prefix_template: str | None = None,
) -> dict[int, Any]:
    """Run ``function(*args)`` on ``num_processes`` processes (per node); return ``{rank: result}``.

    Args:
        function: the training function; create the Accelerator inside it.
        args: positional arguments for ``function``.
        num_processes: processes per node; default ``ACCEL_NUM_PROCESSES``, the config file, else one
            per GPU (required on a machine without GPUs). 1 runs ``function`` in this process.
        mixed_precision: ``no``, ``bf16`` or ``fp16``, exported to the processes as ``ACCEL_MIXED_PRECISION``.
        use_port: rendezvous port; default a free port (29500 across nodes).
        master_addr: address of node 0.
        node_rank: index of this node.
        num_nodes: nodes taking part.
        max_restarts: restarts of the process group after a failure.
        monitor_interval: seconds between health checks.
        rdzv_backend: ``c10d`` or ``static``.
        rdzv_endpoint: ``host:port`` of the rendezvous (beats ``master_addr`` / ``use_port``).
        rdzv_conf: extra rendezvous options (torch's ``rdzv_configs``).
        rdzv_id: rendezvous id shared by the nodes (``"none"``: accel's default).
        log_line_prefix_template: prefix every output line of the processes, e.g. ``"[${rank}]:"``.

    Raises:
        ConfigError: an invalid argument.
        StateError: an Accelerator, PartialState or process group already exists in this process.
        LaunchError: a process failed (the first failure's traceback first).
    """
    if not callable(function):
        raise ConfigError(f"notebook_launcher() needs a function to run, got {function!r}")
    host, port = (
        split_endpoint(rdzv_endpoint, "notebook_launcher(rdzv_endpoint=...)") if rdzv_endpoint else (None, None)
    )
    flags = _explicit(
        {
            "num_processes": num_processes,
            "mixed_precision": mixed_precision,
            "main_process_port": port if port is not None else _port(use_port),
            "main_process_ip": host or master_addr,
            "rdzv_id": None if rdzv_id in ("none", "") else rdzv_id,
            "machine_rank": node_rank,
            "num_machines": num_nodes,
            "max_restarts": max_restarts,
            "monitor_interval": monitor_interval,
            "rdzv_backend": rdzv_backend,
        }
    )
    resolved = resolve(flags)
    import torch

    from accel import env
    from accel.launch.elastic import FunctionWorker, execute
    from accel.launch.extras import Streams
    from accel.launch.plan import announcement, plan

    gpus = torch.cuda.device_count()
    if resolved["num_processes"] is None and (gpus == 0 or resolved["use_cpu"]):
        raise ConfigError(
            "notebook_launcher(num_processes=...) is required without GPUs: pass num_processes=2 for two CPU "
            "processes, or 1 to run in this process"
        )
    p = plan(resolved, gpu_count=gpus)
    if rdzv_conf:
        p = dataclasses.replace(p, rdzv_configs={**p.rdzv_configs, **rdzv_conf})
    if log_line_prefix_template is not None:
        p = dataclasses.replace(p, streams=Streams(tee="3", prefix_template=log_line_prefix_template))
    if p.world_size == 1:
        with env.patched(p.exports):
            return {0: function(*args)}
    _check_parent_is_clean()
    method = _start_method(function)
    sys.stderr.write(
        announcement(resolved, p, f"{getattr(function, '__name__', 'function')}() ({method})", "notebook_launcher")
        + "\n"
    )
    return execute(p, FunctionWorker(function), list(args), start_method=method)
