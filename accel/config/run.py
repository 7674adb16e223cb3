"""The run configuration: the settings ``accel launch`` hands to every rank, encoded and decoded here only.

The launcher resolves every setting once (flag > environment > config file > default,
:mod:`accel.config.resolve`), builds a :class:`RunConfig` from it and exports it to the ranks as
``ACCEL_*`` variables (:meth:`RunConfig.exports`). A rank decodes them once
(:meth:`RunConfig.from_environment`, validated by the one table in :mod:`accel.config.schema`),
and the :class:`~accel.Accelerator` reads that record: explicit arguments still win, and when one
contradicts a value the launcher announced (``ACCEL_CONFIG_SOURCE`` is set), the main process warns.
Without a launcher the same variables can be set by hand (or by another launcher); unset means
"use the Accelerator's default".
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from accel import env
from accel.config.schema import KEYS, check_value, parse_text, to_text

#: The config keys a rank reads back (the others only steer the launcher), and their variables.
RANK_KEYS: dict[str, str] = {
    "mixed_precision": env.MIXED_PRECISION,
    "gradient_accumulation_steps": env.GRADIENT_ACCUMULATION_STEPS,
    "use_cpu": env.USE_CPU,
    "strategy": env.STRATEGY,
    "auto_resume": env.AUTO_RESUME,
    "project_dir": env.PROJECT_DIR,
}


def _decode(key: str, environ: Mapping[str, str] | None) -> Any:
    name = RANK_KEYS[key]
    kind = KEYS[key].kind
    origin = f"environment variable {name}"
    if kind == "int":
        return check_value(key, env.get_int(name, environ), origin)
    if kind == "bool":
        return env.get_bool(name, environ)
    raw = env.get(name, environ)
    return None if raw is None or raw.strip() == "" else parse_text(key, raw, origin)


@dataclass(frozen=True)
class RunConfig:
    """What the launcher resolved for this run; ``None``: not set (the Accelerator's default applies).

    Attributes:
        mixed_precision: ``no``, ``bf16`` or ``fp16``.
        gradient_accumulation_steps: micro-batches per optimizer step.
        use_cpu: run on the CPU even where GPUs are present.
        strategy: ``ddp`` or ``fsdp``.
        auto_resume: load the latest checkpoint after an elastic restart, save on SIGTERM/SIGUSR1.
        project_dir: default directory for checkpoints and trackers.
        requested_world_size: the world size every rank must see.
        config_source: the config file the launch resolved (``none`` without one); set only by a launcher,
            so it also says that the values above were announced.
    """

    mixed_precision: str | None = None
    gradient_accumulation_steps: int | None = None
    use_cpu: bool | None = None
    strategy: str | None = None
    auto_resume: bool | None = None
    project_dir: str | None = None
    requested_world_size: int | None = None
    config_source: str | None = None

    @property
    def announced(self) -> bool:
        """True when a launcher resolved these values (and printed them)."""
        return self.config_source is not None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RunConfig:
        """Decode the ``ACCEL_*`` variables of this rank.

        Raises:
            ConfigError: a variable holds a value its setting does not allow (the message names it).
        """
        values = {key: _decode(key, environ) for key in RANK_KEYS}
        return cls(
            **values,
            requested_world_size=env.get_int(env.REQUESTED_WORLD_SIZE, environ),
            config_source=env.get(env.CONFIG_SOURCE, environ),
        )

    def exports(self) -> dict[str, str]:
        """The variables that carry this record to the ranks (unset values are not exported)."""
        values: dict[str, Any] = {name: getattr(self, key) for key, name in RANK_KEYS.items()}
        values[env.REQUESTED_WORLD_SIZE] = self.requested_world_size
        values[env.CONFIG_SOURCE] = self.config_source
        return {name: to_text(value) for name, value in values.items() if value is not None}

    def warn_overridden(self, **explicit: Any) -> None:
        """Warn when explicit ``Accelerator(...)`` values (``None``: not given) contradict announced ones."""
        if not self.announced:
            return
        given = [(key, value, getattr(self, key)) for key, value in explicit.items() if value is not None]
        clashes = [(key, value, announced) for key, value, announced in given if announced not in (None, value)]
        if not clashes:
            return
        arguments = ", ".join(f"{key}={value!r}" for key, value, _ in clashes)
        announced = ", ".join(f"{key} {value!r}" for key, _, value in clashes)
        warnings.warn(
            f"Accelerator({arguments}) overrides what the launcher announced for this run ({announced}); the "
            "argument wins: drop it to use the launcher's value, or launch with the value you want",
            UserWarning,
            stacklevel=3,
        )
