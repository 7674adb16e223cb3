"""``accel.utils.random``: seeding and RNG synchronisation, at the path Accelerate scripts import them from."""

from __future__ import annotations

from accel.rng import RNGType, set_seed, synchronize_rng_states

__all__ = ["RNGType", "set_seed", "synchronize_rng_states"]
