"""Finding, reading and writing config files.

Lookup order (the first that applies wins):

1. ``--config_file PATH`` (must exist),
2. ``ACCEL_CONFIG_FILE`` (must exist),
3. the user file ``$XDG_CONFIG_HOME/accel/config.yaml`` (``~/.config/accel/config.yaml``),
4. the system file ``/etc/accel/config.yaml`` (unless ``ACCEL_CONFIG_NOSYSTEM=1``),
5. none: built-in defaults.

Files are flat YAML mappings with a ``version:`` key (missing means 1). Unknown keys, wrong types
and malformed YAML are errors naming the file, the line and the fix.

Keys that Accelerate writes are accepted so that existing files keep working:
``compute_environment`` (``LOCAL_MACHINE`` only), ``distributed_type`` (``NO``, ``MULTI_CPU`` →
``use_cpu: true``, ``MULTI_GPU`` → ``use_cpu: false``, ``FSDP`` → ``strategy: fsdp``), the legacy
``fp16: true`` (→ ``mixed_precision: fp16``); ``debug``, ``gpu_ids``, ``enable_cpu_affinity``,
``same_network`` and ``main_training_function`` are keys of accel's own (``accel launch`` applies
them or says why not, as for the flags); ``downcast_bf16`` and ``tpu_*`` only matter to Accelerate
and are ignored. Anything else (DeepSpeed, FSDP or dynamo
blocks, TPU or SageMaker environments) is an error saying so.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accel import env
from accel.config.schema import CONFIG_VERSION, KEYS, check_value
from accel.exceptions import ConfigError, did_you_mean

SYSTEM_CONFIG = Path("/etc/accel/config.yaml")
IGNORED_ACCELERATE_KEYS = frozenset({"downcast_bf16"})
_DISTRIBUTED_TYPES = {"NO": {}, "MULTI_CPU": {"use_cpu": True}, "MULTI_GPU": {"use_cpu": False}, "FSDP": {}}
_HEADER = "# accel configuration (see `accel config --help`); edit with `accel config set KEY=VALUE`\n"


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/accel/config.yaml`` (``~/.config/accel/config.yaml`` when unset)."""
    base = env.get(env.XDG_CONFIG_HOME, environ)
    root = Path(base) if base else Path.home() / ".config"
    return root / "accel" / "config.yaml"


def find_config_file(
    explicit: str | None = None, environ: Mapping[str, str] | None = None, system: Path = SYSTEM_CONFIG
) -> tuple[Path | None, str]:
    """Return ``(path, how)`` for the config file to use, or ``(None, "none")``.

    ``how`` is ``--config_file``, ``ACCEL_CONFIG_FILE``, ``user file`` or ``system file``.

    Raises:
        ConfigError: an explicitly named file (flag or variable) does not exist.
    """
    for named, how in ((explicit, "--config_file"), (env.get(env.CONFIG_FILE, environ), env.CONFIG_FILE)):
        if named:
            chosen = Path(named).expanduser()
            if not chosen.is_file():
                raise ConfigError(
                    f"config file {str(chosen)!r} (from {how}) does not exist; "
                    "create it with `accel config default --config_file PATH` or fix the path"
                )
            return chosen, how
    candidates = [(user_config_path(environ), "user file")]
    if not env.get_bool(env.CONFIG_NOSYSTEM, environ):
        candidates.append((system, "system file"))
    for path, how in candidates:
        if path.is_file():
            return path, how
    return None, "none"


def _lines(text: str) -> dict[str, int]:
    """Line number (1-based) of each top-level key, for error messages."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): k.start_mark.line + 1 for k, _ in node.value}


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a config file; return the keys it sets (Accelerate keys mapped).

    Raises:
        ConfigError: unreadable file, malformed YAML, newer version, unknown key or bad value.
    """
    import yaml

    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {where!r}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{where}{line}: malformed YAML ({problem}); fix the file or rewrite it") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of `key: value` lines, got {type(data).__name__}")
    return _validate(data, where, _lines(text))


def _validate(data: dict[Any, Any], where: str, lines: dict[str, int]) -> dict[str, Any]:
    def at(key: str) -> str:
        return f"{where}, line {lines[key]}" if key in lines else where

    version = data.pop("version", CONFIG_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"{at('version')}: version must be a positive integer, got {version!r}")
    if version > CONFIG_VERSION:
        raise ConfigError(
            f"{at('version')}: config version {version} is newer than this accel understands ({CONFIG_VERSION}); "
            "upgrade accel or rewrite the file with `accel config default`"
        )
    values: dict[str, Any] = {}
    mapped: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key)
        if key == "gpu_ids" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # `gpu_ids: 0` is one GPU, as Accelerate writes it
        if key in KEYS:
            values[key] = check_value(key, value, at(key))
        else:
            mapped.update(_accelerate_key(key, value, at(key)))
    for key, value in mapped.items():
        values.setdefault(key, value)
    return {k: v for k, v in values.items() if v is not None}


def _accelerate_key(key: str, value: Any, where: str) -> dict[str, Any]:
    if key in IGNORED_ACCELERATE_KEYS or key.startswith("tpu_"):
        return {}
    if key == "compute_environment":
        if value not in (None, "LOCAL_MACHINE"):
            raise ConfigError(f"{where}: compute_environment {value!r} is not supported; accel runs LOCAL_MACHINE")
        return {}
    if key == "distributed_type":
        if value not in _DISTRIBUTED_TYPES:
            raise ConfigError(
                f"{where}: distributed_type {value!r} is not supported by accel "
                f"(supported: {', '.join(_DISTRIBUTED_TYPES)}); remove the key and set strategy/use_cpu"
            )
        return {**_DISTRIBUTED_TYPES[value], **({"strategy": "fsdp"} if value == "FSDP" else {})}
    if key == "fp16":
        return {"mixed_precision": "fp16"} if value is True else {}
    raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, list(KEYS))}; see `accel config --help`")


def render_config(values: Mapping[str, Any]) -> str:
    """The YAML text for ``values`` (validated, schema order, ``version`` first)."""
    import yaml

    body: dict[str, Any] = {"version": CONFIG_VERSION}
    for key in KEYS:
        if values.get(key) is not None:
            body[key] = check_value(key, values[key], f"value for {key}")
    unknown = sorted(set(values) - set(KEYS) - {"version"})
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}{did_you_mean(unknown[0], list(KEYS))}")
    return _HEADER + yaml.safe_dump(body, sort_keys=False, default_flow_style=False)


def write_config(path: str | os.PathLike[str], values: Mapping[str, Any]) -> Path:
    """Validate ``values`` and write them to ``path`` atomically (temp file + rename); return the path."""
    target = Path(path).expanduser()
    text = render_config(values)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".yaml", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_basic_config(
    mixed_precision: str = "no", save_location: str | os.PathLike[str] | None = None, **values: Any
) -> Path | bool:
    """Write a minimal config file, as Accelerate's ``write_basic_config`` does.

    Args:
        mixed_precision: ``no``, ``bf16`` or ``fp16``.
        save_location: where to write; default the user file (``$XDG_CONFIG_HOME/accel/config.yaml``).
        **values: any other schema key, e.g. ``num_processes=2, use_cpu=True``.

    Returns:
        The path written, or ``False`` when the file already exists (it is never overwritten).

    Raises:
        ConfigError: an unknown key or invalid value.
    """
    target = Path(save_location).expanduser() if save_location is not None else user_config_path()
    settings = {"mixed_precision": mixed_precision, **values}
    render_config(settings)  # validate before looking at the disk
    if target.exists():
        return False
    return write_config(target, settings)
