"""One process: nothing to distribute."""

from __future__ import annotations

from accel.strategies.base import Strategy


class SingleStrategy(Strategy):
    """The base behaviour under its own name."""

    name = "single"
