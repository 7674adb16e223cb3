"""Configuration: the schema, config files, and the one precedence rule.

``flag > environment (ACCEL_*) > config file > built-in default``; see :mod:`accel.config.schema`
for the keys, :mod:`accel.config.io` for the file lookup and format, and
:mod:`accel.config.resolve` for the precedence rule.
"""

from __future__ import annotations

from accel.config.io import (
    SYSTEM_CONFIG,
    find_config_file,
    read_config,
    render_config,
    user_config_path,
    write_basic_config,
    write_config,
)
from accel.config.resolve import Resolved, Setting, env_variable, resolve, split_endpoint
from accel.config.schema import CONFIG_VERSION, DEFAULTS, KEYS, Key, check_value, parse_text

__all__ = [
    "CONFIG_VERSION",
    "DEFAULTS",
    "KEYS",
    "SYSTEM_CONFIG",
    "Key",
    "Resolved",
    "Setting",
    "check_value",
    "env_variable",
    "find_config_file",
    "parse_text",
    "read_config",
    "render_config",
    "resolve",
    "split_endpoint",
    "user_config_path",
    "write_basic_config",
    "write_config",
]
