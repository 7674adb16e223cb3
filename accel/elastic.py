"""The bridge to torch's elastic launcher, shared by ``accel launch`` and ``notebook_launcher``.

:func:`launch_config` turns a :class:`~accel.launch.LaunchPlan` into torch's ``LaunchConfig``
(every field set explicitly: its defaults differ from torchrun's), and :func:`execute` runs
``elastic_launch`` with the plan's variables exported, then restores the environment and the
signal handlers. Failures become :class:`~accel.exceptions.LaunchError` whose message starts with
the first failing rank's traceback (rank, host, exit code) and whose ``exit_code`` follows it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from accel import env
from accel.exceptions import LaunchError
from accel.launch_worker import record_failure

if TYPE_CHECKING:
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure
    from torch.distributed.launcher.api import LaunchConfig

    from accel.launch import LaunchPlan

SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT"


def launch_config(plan: LaunchPlan, start_method: str = "spawn") -> LaunchConfig:
    """torch's ``LaunchConfig`` for the plan (fields this torch lacks are left out)."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.launcher.api import LaunchConfig

    host = f"[{plan.host}]" if ":" in plan.host else plan.host
    values: dict[str, Any] = {
        "min_nodes": plan.num_machines,
        "max_nodes": plan.num_machines,
        "nproc_per_node": plan.nproc_per_node,
        "logs_specs": DefaultLogsSpecs(log_dir=None, redirects=Std.NONE, tee=Std.NONE, local_ranks_filter=None),
        "run_id": plan.rdzv_id,
        "role": "default",
        "rdzv_endpoint": f"{host}:{plan.port}",
        "rdzv_backend": plan.rdzv_backend,
        "rdzv_configs": dict(plan.rdzv_configs),
        "rdzv_timeout": -1,
        "max_restarts": plan.max_restarts,
        "monitor_interval": plan.monitor_interval,
        "start_method": start_method,
        "log_line_prefix_template": None,
        "metrics_cfg": {},
        "local_addr": plan.local_addr,
        "event_log_handler": "null",
        "numa_options": None,
        "signals_to_handle": SIGNALS,
        "duplicate_stdout_filters": None,
        "duplicate_stderr_filters": None,
        "virtual_local_rank": False,
        "shutdown_timeout": max(1, math.ceil(plan.shutdown_timeout)),
    }
    known = {f.name for f in dataclasses.fields(LaunchConfig)}
    return LaunchConfig(**{k: v for k, v in values.items() if k in known})


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

    config = launch_config(plan, start_method)
    exports: dict[str, str | None] = {env.TORCHELASTIC_SIGNALS_TO_HANDLE: env.get(env.TORCHELASTIC_SIGNALS_TO_HANDLE)}
    exports.update(plan.exports)
    with env.patched(exports), _kept_signal_handlers(), _quiet_torch_logs(not plan.verbose):
        try:
            return dict(elastic_launch(config, entrypoint)(*args))
        except ChildFailedError as exc:
            message, code = describe_failures(exc.failures)
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


def _extra_info(failure: ProcessFailure) -> dict[str, Any]:
    data: Any = failure.error_file_data
    message = data.get("message") if isinstance(data, dict) else None
    extra = message.get("extraInfo") if isinstance(message, dict) else None
    return extra if isinstance(extra, dict) else {}


def _sort_key(item: tuple[int, ProcessFailure]) -> tuple[float, int]:
    rank, failure = item
    extra = _extra_info(failure)
    try:
        return float(extra.get("accel_time", failure.timestamp)), rank
    except (TypeError, ValueError):
        return float(failure.timestamp), rank


def _traceback(failure: ProcessFailure) -> str:
    stack = _extra_info(failure).get("py_callstack")
    if stack:
        return str(stack).rstrip()
    if failure.exitcode < 0:
        return f"(killed by signal {failure.signal_name()}; no traceback)"
    return "(no traceback recorded: the rank exited without raising, e.g. sys.exit or os._exit)"


def exit_code_of(failure: ProcessFailure) -> int:
    """Shell-style exit code: the rank's own code, 1 if it raised before being stopped, or 128 + signal."""
    if failure.exitcode <= 0 and _extra_info(failure).get("py_callstack"):
        return 1
    code = failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
    return code if 0 < code < 256 else 1


def describe_failures(failures: Mapping[int, ProcessFailure]) -> tuple[str, int]:
    """The report for failed ranks (first failure first, with its traceback) and the exit code to use."""
    ordered = sorted(failures.items(), key=_sort_key)
    rank, first = ordered[0]
    host = socket.gethostname()
    if first.exitcode >= 0:
        how = f"exited with code {first.exitcode}"
    elif _extra_info(first).get("py_callstack"):
        how = f"raised an exception (then stopped by {first.signal_name()})"
    else:
        how = f"was killed by {first.signal_name()}"
    lines = [
        f"rank {rank} (host {host}, local rank {first.local_rank}, pid {first.pid}) {how}:",
        _traceback(first),
    ]
    failed = [f"rank {r} (exit code {f.exitcode})" for r, f in ordered[1:] if f.exitcode > 0]
    stopped = [f"rank {r} ({f.signal_name()})" for r, f in ordered[1:] if f.exitcode <= 0]
    if failed:
        lines.append("later failures: " + ", ".join(failed))
    if stopped:
        lines.append("stopped by the launcher: " + ", ".join(stopped))
    return "\n".join(lines), exit_code_of(first)


class FunctionWorker:
    """Picklable wrapper that records a function's failure for the launcher (notebook_launcher)."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function

    def __call__(self, *args: Any) -> Any:
        try:
            return self.function(*args)
        except BaseException as exc:
            record_failure(exc)
            raise
