"""The rest of Accelerate's and torchrun's launch options: output streams, elastic settings, GPU selection.

Each option does what it does under ``accelerate launch`` / ``torchrun``, or, where it cannot apply
here, is accepted and the launch line says why (a note):

- ``--tee``, ``--redirects``, ``--log_dir``, ``--local_ranks_filter``, ``--log_line_prefix_template``:
  torch elastic's ``logs_specs`` and line prefix. With more than one process every output line gets
  a rank prefix (``[default0]:``, ``[default1]:`` …: the role and global rank) and lines never mix;
  ``--log_dir DIR`` keeps each rank's stdout/stderr in files under ``DIR``.
- ``--role``, ``--start_method``, ``--rdzv_conf k=v,...``: passed to torch's ``LaunchConfig``.
- ``--env KEY=VALUE`` (repeatable): set for every rank.
- ``--gpu_ids 0,2``: ``CUDA_VISIBLE_DEVICES`` for the ranks; ``--enable_cpu_affinity``: NUMA binding
  of GPU ranks (torch's ``numa_options``); ``--debug``: ``ACCEL_DEBUG_MODE=1`` for the ranks.
- ``--same_network``, ``--main_training_function``, ``--gradient_clipping``: accepted, no effect
  here (a note says so). The first five are config keys too and behave the same from a file.

Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accel import env
from accel.config import Resolved
from accel.exceptions import ConfigError, LaunchError

if TYPE_CHECKING:
    from accel.launch.plan import LaunchPlan

__all__ = ["DEFAULT_PREFIX", "Streams", "apply", "visible_gpu_count"]

DEFAULT_PREFIX = "[${role_name}${rank}]:"
START_METHODS = ("spawn", "fork", "forkserver")
_STD = re.compile(r"^[0-3]$|^\d+:[0-3](,\d+:[0-3])*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Streams:
    """Where rank output goes: torch elastic's ``tee`` / ``redirects`` specs, log directory, filter, prefix."""

    tee: str = "0"
    redirects: str = "0"
    log_dir: str | None = None
    local_ranks_filter: frozenset[int] | None = None
    prefix_template: str | None = None


def _std(option: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not _STD.match(value.strip()):
        raise ConfigError(
            f"--{option} {value!r}: expected 0 (none), 1 (stdout), 2 (stderr), 3 (both), or per local rank like 0:3,1:1"
        )
    return value.strip()


def _streams(launch: dict[str, str], world_size: int) -> Streams:
    tee, redirects = _std("tee", launch.get("tee")), _std("redirects", launch.get("redirects"))
    log_dir = launch.get("log_dir")
    if tee is None and redirects is None and (world_size > 1 or log_dir):
        tee = "3"  # every line through torch's tail: rank prefix, whole lines, and files when log_dir is set
    ranks = None
    if "local_ranks_filter" in launch:
        try:
            ranks = frozenset(int(part) for part in launch["local_ranks_filter"].split(","))
        except ValueError:
            raise ConfigError(
                f"--local_ranks_filter {launch['local_ranks_filter']!r}: expected local ranks like 0,1"
            ) from None
    template = launch.get("log_line_prefix_template")
    if template is None and world_size > 1:
        template = DEFAULT_PREFIX
    return Streams(tee or "0", redirects or "0", log_dir, ranks, template)


def _rdzv_conf(text: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--rdzv_conf {text!r}: expected key=value pairs separated by commas")
        found[key.strip()] = value.strip()
    return found


def _variables(given: list[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise ConfigError(f"--env {item!r}: expected NAME=VALUE (a variable for every rank)")
        found[name] = value
    return found


def _gpu_ids(r: Resolved) -> list[int] | None:
    raw = r["gpu_ids"]
    if raw is None or str(raw).strip().lower() == "all":
        return None
    try:
        ids = [int(part) for part in str(raw).split(",") if part.strip() != ""]
    except ValueError:
        raise ConfigError(f"gpu_ids {raw!r} ({r.source('gpu_ids')}): expected all or GPU indices like 0,1") from None
    if not ids or len(set(ids)) != len(ids) or min(ids) < 0:
        raise ConfigError(f"gpu_ids {raw!r} ({r.source('gpu_ids')}): expected distinct GPU indices like 0,1")
    return ids


def visible_gpu_count(r: Resolved, device_count: int) -> int:
    """GPUs the ranks will see: the ``gpu_ids`` chosen (checked against this machine), else all of them."""
    ids = _gpu_ids(r)
    if ids is None or r["use_cpu"] is True or device_count == 0:
        return device_count
    missing = [i for i in ids if i >= device_count]
    if missing:
        raise LaunchError(
            f"gpu_ids {r['gpu_ids']} ({r.source('gpu_ids')}) names GPU {missing[0]} but this machine has "
            f"{device_count} (0..{device_count - 1}); pick existing ones"
        )
    return len(ids)


def apply(r: Resolved, p: LaunchPlan, launch: dict[str, str], variables: list[str]) -> LaunchPlan:
    """The launch plan with these options applied, and a note for each that cannot apply here."""
    notes = list(p.notes)
    exports = dict(p.exports)
    if r["debug"]:
        exports[env.DEBUG_MODE] = "1"
        notes.append("debug: collectives check shapes across ranks first")
    ids = _gpu_ids(r)
    if ids is not None:
        if p.use_cpu:
            notes.append(f"gpu_ids {r['gpu_ids']} not applied: the ranks run on the CPU")
        else:
            exports[env.CUDA_VISIBLE_DEVICES] = ",".join(map(str, ids))
    numa = None
    if r["enable_cpu_affinity"]:
        if p.use_cpu:
            notes.append("enable_cpu_affinity not applied: CPU ranks (it binds GPU ranks to their NUMA node)")
        else:
            numa = "node"
    if r["same_network"] is not None:
        notes.append(f"same_network has no effect (c10d rendezvous at {p.host}:{p.port})")
    if r["main_training_function"] is not None:
        notes.append(f"main_training_function {r['main_training_function']!r} has no effect (TPU launches only)")
    if "gradient_clipping" in launch:
        notes.append(
            f"gradient_clipping {launch['gradient_clipping']} not applied (a DeepSpeed setting): "
            "call accelerator.clip_grad_norm_(parameters, max_norm)"
        )
    start_method = launch.get("start_method", p.start_method)
    if start_method not in START_METHODS:
        raise ConfigError(f"--start_method {start_method!r}: expected one of {', '.join(START_METHODS)}")
    role = launch.get("role", p.role).strip()
    if not role:
        raise ConfigError("--role needs a name, e.g. --role trainer")
    streams = _streams(launch, p.world_size)
    if streams.log_dir:
        notes.append(f"rank logs kept under {streams.log_dir}")
    exports.update(_variables(variables))
    configs = {**p.rdzv_configs, **_rdzv_conf(launch.get("rdzv_conf", ""))}
    return dataclasses.replace(
        p,
        notes=notes,
        exports=exports,
        rdzv_configs=configs,
        role=role,
        start_method=start_method,
        streams=streams,
        numa_binding=numa,
    )
