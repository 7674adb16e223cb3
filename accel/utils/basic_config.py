"""``write_basic_config``: Accelerate's helper for a default config file, on accel's config writer."""

from __future__ import annotations

from typing import Any

__all__ = ["write_basic_config"]


def write_basic_config(mixed_precision: str = "no", save_location: str | None = None, **settings: Any) -> Any:
    """Write a default config file (see ``accel config default``); returns its path."""
    from accel import config

    return config.write_basic_config(mixed_precision=mixed_precision, save_location=save_location, **settings)
