"""The version of accel, in a module of its own so that any part of the library can read it."""

__version__ = "0.1.0"
