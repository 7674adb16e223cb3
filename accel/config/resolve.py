"""One precedence rule for every setting, and where each value came from.

``explicit flag > environment > config file > built-in default``

The environment layer reads, for each key, ``ACCEL_<KEY>`` first, then torchrun's ``PET_*``
inputs (Kubeflow Trainer, elastic PyTorchJobs), then a Kubeflow PyTorchJob pod's ``RANK`` /
``WORLD_SIZE`` / ``MASTER_ADDR`` / ``MASTER_PORT`` (the pod index and pod count, read as
``machine_rank`` / ``num_machines`` when all four are set and this process is not itself a
torchrun worker). Every resolved value remembers its source; ``accel env`` prints them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accel import env
from accel.config.io import SYSTEM_CONFIG, find_config_file, read_config
from accel.config.schema import DEFAULTS, KEYS, parse_text
from accel.exceptions import ConfigError

_PET = {
    "num_processes": env.PET_NPROC_PER_NODE,
    "num_machines": env.PET_NNODES,
    "machine_rank": env.PET_NODE_RANK,
    "main_process_ip": env.PET_MASTER_ADDR,
    "main_process_port": env.PET_MASTER_PORT,
    "rdzv_backend": env.PET_RDZV_BACKEND,
    "rdzv_id": env.PET_RDZV_ID,
    "max_restarts": env.PET_MAX_RESTARTS,
}
_KUBEFLOW = {
    "machine_rank": env.RANK,
    "num_machines": env.WORLD_SIZE,
    "main_process_ip": env.MASTER_ADDR,
    "main_process_port": env.MASTER_PORT,
}


@dataclass(frozen=True)
class Setting:
    """A resolved value and its source (``--flag``, ``ACCEL_X``, ``file PATH``, ``default``)."""

    value: Any
    source: str


@dataclass(frozen=True)
class Resolved:
    """Every key's resolved :class:`Setting`, plus the config file consulted."""

    settings: dict[str, Setting]
    config_file: Path | None = None
    config_how: str = "none"
    extra: dict[str, Setting] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.settings[key].value

    def source(self, key: str) -> str:
        """Where the value of ``key`` came from."""
        return self.settings[key].source

    def __iter__(self) -> Iterator[str]:
        return iter(self.settings)

    def describe_file(self) -> str:
        """``/path/config.yaml (user file)`` or ``none: built-in defaults``."""
        if self.config_file is None:
            return "none: built-in defaults"
        return f"{self.config_file} ({self.config_how})"


def env_variable(key: str) -> str:
    """The ``ACCEL_*`` variable for a config key."""
    return "ACCEL_" + key.upper()


def _pet_value(key: str, raw: str) -> str | None:
    if key == "num_processes" and raw.strip().lower() in ("auto", "gpu", "cpu"):
        return None  # torchrun's device words: fall through to the default (one per GPU, else 1)
    return raw


def environment_layer(environ: Mapping[str, str]) -> dict[str, Setting]:
    """Settings given by the environment (``ACCEL_*`` > ``PET_*`` > Kubeflow pod variables)."""
    layer: dict[str, Setting] = {}
    kubeflow = (
        all(env.is_set(name, environ) for name in _KUBEFLOW.values())
        and not env.is_set(env.TORCHELASTIC_RUN_ID, environ)
        and not env.is_set(env.PET_NNODES, environ)
    )
    for key in KEYS:
        candidates = [(env_variable(key), env.get(env_variable(key), environ))]
        if key in _PET:
            raw = env.get(_PET[key], environ)
            candidates.append((_PET[key], _pet_value(key, raw) if raw is not None else None))
        if kubeflow and key in _KUBEFLOW:
            candidates.append((f"{_KUBEFLOW[key]} (Kubeflow pod)", env.get(_KUBEFLOW[key], environ)))
        for name, raw in candidates:
            if raw is not None and raw.strip() != "":
                origin = f"environment variable {name.split(' ')[0]}"
                layer[key] = Setting(parse_text(key, raw, origin), name)
                break
    endpoint = env.get(env.PET_RDZV_ENDPOINT, environ)
    if endpoint and "main_process_ip" not in layer:
        host, port = split_endpoint(endpoint, f"environment variable {env.PET_RDZV_ENDPOINT}")
        layer["main_process_ip"] = Setting(host, env.PET_RDZV_ENDPOINT)
        if port is not None and "main_process_port" not in layer:
            layer["main_process_port"] = Setting(port, env.PET_RDZV_ENDPOINT)
    return layer


def split_endpoint(endpoint: str, origin: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 in brackets); the port is validated like ``main_process_port``."""
    text = endpoint.strip()
    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not host:
        raise ConfigError(f"{origin}: rendezvous endpoint {endpoint!r} has no host; use HOST:PORT")
    return host, parse_text("main_process_port", port, origin) if port else None


def resolve(
    flags: Mapping[str, Setting] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
    system: Path = SYSTEM_CONFIG,
) -> Resolved:
    """Resolve every key: flags > environment > config file > built-in defaults.

    Args:
        flags: values given explicitly (already parsed), with the flag spelling as source.
        environ: the environment to read (default: this process's).
        config_file: an explicit ``--config_file``.
        system: the system-wide file (tests point it elsewhere).

    Raises:
        ConfigError: a bad file, variable or value.
    """
    environ = env.snapshot() if environ is None else environ
    path, how = find_config_file(config_file, environ, system)
    file_values = read_config(path) if path is not None else {}
    layers: list[dict[str, Setting]] = [
        dict(flags or {}),
        environment_layer(environ),
        {k: Setting(v, f"file {path}") for k, v in file_values.items()},
    ]
    settings: dict[str, Setting] = {}
    for key in KEYS:
        chosen = next((layer[key] for layer in layers if key in layer), None)
        settings[key] = chosen if chosen is not None else Setting(DEFAULTS[key], "default")
    return Resolved(settings, path, how)
