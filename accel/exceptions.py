"""The errors accel raises.

The library raises these; the CLI formats them as one-line messages with a non-zero exit and
no traceback. Every message says what was wrong, where (argument, file and key) and the fix.
"""

from __future__ import annotations


class AccelError(Exception):
    """Base class of every error accel raises on purpose."""

    exit_code = 1


class ConfigError(AccelError, ValueError):
    """A setting is invalid: bad value, unknown key, malformed file."""

    exit_code = 2


class LaunchError(AccelError, RuntimeError):
    """A launch cannot start or a rank failed."""


class StateError(AccelError, RuntimeError):
    """The process world is not what the call needs (e.g. an Accelerator made too early)."""


class PrepareError(AccelError, TypeError):
    """An object handed to ``prepare()`` (or another API) cannot be used as given."""


class PrecisionError(AccelError, RuntimeError):
    """Mixed precision misuse, e.g. ``loss.backward()`` under fp16 instead of ``accelerator.backward``."""


class CheckpointError(AccelError, RuntimeError):
    """A checkpoint cannot be written or read: missing, truncated, mismatched or newer format."""


class DistributedOperationException(AccelError, RuntimeError):  # noqa: N818  (Accelerate's name)
    """A collective was called with inputs that do not match across ranks (raised in debug mode)."""


def did_you_mean(word: str, choices: list[str] | tuple[str, ...] | set[str] | frozenset[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` when nothing is close."""
    import difflib

    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
