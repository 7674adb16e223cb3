"""accel: the command line.

usage: accel <command> [options]

commands:
  launch   run a training script on N processes or machines   (accel launch --help)
  config   write or edit the config file                      (accel config --help)
  env      print versions, hardware, the resolved settings and their sources
  test     run a distributed self-check with the resolved settings (accepts launch options)

``python -m accel`` is the same program, for when ``accel`` is not on PATH. Errors print one line,
``accel: error: ...``, and exit non-zero (2 for bad settings, 1 for failed launches, or the failing
rank's exit code). ``--help``, ``config`` and ``env`` do not import torch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from accel.exceptions import AccelError, ConfigError, did_you_mean

COMMANDS = ("launch", "config", "env", "test")


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(__doc__ or "")
        return 0
    if argv[0] in ("-V", "--version"):
        from accel.version import __version__

        sys.stdout.write(f"accel {__version__}\n")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        raise ConfigError(f"unknown command {command!r}{did_you_mean(command, COMMANDS)}; see `accel --help`")
    verb: Callable[[list[str]], int] = importlib.import_module(f"accel.commands.{command}").main
    return verb(rest)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (errors are printed as one line, without a traceback)."""
    try:
        return _dispatch(sys.argv[1:] if argv is None else argv)
    except AccelError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"accel: error: {exc}\n")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("accel: interrupted\n")
        return 130
