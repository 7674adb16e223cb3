"""The bridge to torch's elastic launcher, shared by ``accel launch`` and ``notebook_launcher``.

:func:`launch_config` turns a :class:`~accel.launch.plan.LaunchPlan` into torch's ``LaunchConfig``
(every field set explicitly: its defaults differ from torchrun's), and :func:`execute` runs
``elastic_launch`` with the plan's variables exported, then restores the environment and the
signal handlers. Failures become :class:`~accel.exceptions.LaunchError` whose message starts with
the first failing rank's traceback (rank, host, exit code) and whose ``exit_code`` follows it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import signal
import tempfile
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from accel import env
from accel.exceptions import LaunchError
from accel.launch.failures import describe, latest_attempt, record_failure
from accel.launch.plan import LaunchPlan

if TYPE_CHECKING:
    from torch.distributed.launcher.api import LaunchConfig

SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"  # forwarded to every rank (SIGUSR1: SLURM preemption)


def launch_config(plan: LaunchPlan, start_method: str = "spawn", log_dir: str | None = None) -> LaunchConfig:
    """torch's ``LaunchConfig`` for the plan (fields this torch lacks are left out)."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.launcher.api import LaunchConfig

    host = f"[{plan.host}]" if ":" in plan.host else plan.host
    streams = plan.streams
    logs = DefaultLogsSpecs(
        log_dir=streams.log_dir or log_dir,
        redirects=Std.from_str(streams.redirects),
        tee=Std.from_str(streams.tee),
        local_ranks_filter=set(streams.local_ranks_filter) if streams.local_ranks_filter is not None else None,
    )
    values: dict[str, Any] = {
        "min_nodes": plan.num_machines,
        "max_nodes": plan.num_machines,
        "nproc_per_node": plan.nproc_per_node,
        "logs_specs": logs,
        "run_id": plan.rdzv_id,
        "role": plan.role,
        "rdzv_endpoint": f"{host}:{plan.port}",
        "rdzv_backend": plan.rdzv_backend,
        "rdzv_configs": dict(plan.rdzv_configs),
        "rdzv_timeout": -1,
        "max_restarts": plan.max_restarts,
        "monitor_interval": plan.monitor_interval,
        "start_method": start_method,
        "log_line_prefix_template": streams.prefix_template,
        "metrics_cfg": {},
        "local_addr": plan.local_addr,
        "event_log_handler": "null",
        "numa_options": _numa_options(plan.numa_binding),
        "signals_to_handle": SIGNALS,
        "duplicate_stdout_filters": None,
        "duplicate_stderr_filters": None,
        "virtual_local_rank": False,
        "shutdown_timeout": max(1, math.ceil(plan.shutdown_timeout)),
    }
    known = {f.name for f in dataclasses.fields(LaunchConfig)}
    return LaunchConfig(**{k: v for k, v in values.items() if k in known})


def _numa_options(mode: str | None) -> Any:
    """torch's NUMA binding options for ``mode`` (None: no binding; this torch may lack them)."""
    if mode is None:
        return None
    try:
        from torch.numa.binding import AffinityMode, NumaOptions
    except ImportError:
        return None
    return NumaOptions(affinity_mode=AffinityMode(mode))


@contextlib.contextmanager
def _quiet_torch_logs(quiet: bool) -> Iterator[None]:
    """Hide torch elastic's log lines (accel reports failures itself); ``--verbose`` shows them."""
    import logging

    names = [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed.elastic")]
    saved = {name: logging.getLogger(name).level for name in names}
    if quiet:
        for name in names:
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _kept_signal_handlers() -> Iterator[None]:
    """torch's agent installs handlers for SIGTERM/SIGINT/…; put the caller's back afterwards."""
    names = [name for name in SIGNALS.split(",") if hasattr(signal, name)]
    saved = {name: signal.getsignal(getattr(signal, name)) for name in names}
    try:
        yield
    finally:
        for name, handler in saved.items():
            with contextlib.suppress(ValueError, TypeError):  # not the main thread / foreign handler
                signal.signal(getattr(signal, name), handler)


@contextlib.contextmanager
def scratch_dir(prefix: str = "accel-launch-") -> Iterator[str]:
    """A temporary folder for what torch's launcher writes (rank logs, error files), removed afterwards.

    Pass it as the launcher's log folder. While the block runs it is also the default temp folder of
    this process (``tempfile.tempdir``): torch leaves the error files of function ranks
    (``pytorch-errorfile-*``) there and never removes them. Ranks keep their own temp folder.
    """
    path = tempfile.mkdtemp(prefix=prefix)
    saved = tempfile.tempdir
    tempfile.tempdir = path
    try:
        yield path
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(path, ignore_errors=True)


def execute(
    plan: LaunchPlan, entrypoint: str | Callable[..., Any], args: list[Any], start_method: str
) -> dict[int, Any]:
    """Run ``entrypoint(*args)`` on every rank of the plan; return ``{global_rank: return value}``.

    Raises:
        LaunchError: a rank failed (first failure's traceback first), the rendezvous failed, or the
            launcher was stopped by a signal (after every rank was stopped).
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.launcher.api import elastic_launch

    exports: dict[str, str | None] = {env.TORCHELASTIC_SIGNALS_TO_HANDLE: env.get(env.TORCHELASTIC_SIGNALS_TO_HANDLE)}
    exports.update(plan.exports)
    with contextlib.ExitStack() as stack:
        scratch = stack.enter_context(scratch_dir())  # error files, and rank logs unless --log_dir keeps them
        logs = plan.streams.log_dir or scratch
        config = launch_config(plan, start_method, logs)
        stack.enter_context(env.patched(exports))
        stack.enter_context(_kept_signal_handlers())
        stack.enter_context(_quiet_torch_logs(not plan.verbose))
        try:
            return dict(elastic_launch(config, entrypoint)(*args))
        except ChildFailedError as exc:
            message, code = describe(exc.failures, latest_attempt(logs))
            raise _error(message, code) from None
        except SignalException as exc:
            name = signal.Signals(exc.sigval).name
            raise _error(f"stopped by {name}: every rank was sent {name} and has exited", 128 + exc.sigval) from None
        except RendezvousError as exc:
            raise _error(_rendezvous_message(plan, exc), 1) from None


def _error(message: str, code: int) -> LaunchError:
    error = LaunchError(message)
    error.exit_code = code
    return error


def _rendezvous_message(plan: LaunchPlan, exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    where = f"{plan.host}:{plan.port}"
    if plan.num_machines > 1:
        fix = (
            f"check that machine 0 runs `accel launch` with the same --num_machines/--main_process_port, that "
            f"{where} is reachable from here, or raise --rdzv_timeout (now {plan.rdzv_configs.get('join_timeout')} s)"
        )
    else:
        fix = "check that the address belongs to this machine and the port is free"
    detail = str(cause).splitlines()[0] if str(cause) else "no detail"
    return f"rendezvous at {where} failed ({type(exc).__name__}: {detail}); {fix}"


class FunctionWorker:
    """Picklable wrapper that records a function's failure for the launcher (notebook_launcher)."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        # torch's agent names the entrypoint by these
        self.__name__ = getattr(function, "__name__", type(function).__name__)
        self.__qualname__ = getattr(function, "__qualname__", self.__name__)

    def __call__(self, *args: Any) -> Any:
        try:
            return self.function(*args)
        except BaseException as exc:
            tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # skip this frame
            record_failure(exc, "".join(traceback.format_exception(type(exc), exc, tb)))
            raise
