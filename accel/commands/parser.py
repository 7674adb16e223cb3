"""The argument parser the commands share: errors are :class:`~accel.exceptions.ConfigError`, not exits."""

from __future__ import annotations

import argparse
from typing import NoReturn

from accel.exceptions import ConfigError, did_you_mean

__all__ = ["Parser"]


class Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError (one line, closest option suggested) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            word = message.split(":", 1)[1].split()[0]
            known = [s for action in self._actions for s in action.option_strings]
            message = f"unknown option {word!r}{did_you_mean(word.split('=')[0], known)}"
        raise ConfigError(f"{self.prog}: {message}")
