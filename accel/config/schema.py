"""The configuration schema: every key, its type, its default and what it means.

One table (:data:`KEYS`) drives validation of config files, ``ACCEL_*`` variables, launcher flags,
the questionnaire and ``accel env``. Values from text (flags, environment, answers) go through
:func:`parse_text`; values from YAML go through :func:`check_value`. Both raise
:class:`~accel.exceptions.ConfigError` saying where the value came from, what was given and what
is allowed.

``None`` means "not set here": the next source in the precedence order decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from accel.env import FALSE_WORDS, TRUE_WORDS
from accel.exceptions import ConfigError

CONFIG_VERSION = 1


@dataclass(frozen=True)
class Key:
    """One configuration key.

    Attributes:
        name: the key as written in YAML (``ACCEL_<NAME>`` in the environment).
        kind: ``int``, ``float``, ``str``, ``bool`` or ``choice``.
        default: built-in default; ``None`` means "decided at launch" (see ``help``).
        help: one line for humans.
        choices: allowed words for ``choice`` keys.
        minimum: smallest allowed number (inclusive).
        maximum: largest allowed number (inclusive).
        above: numbers must be strictly greater than this.
        aliases: other words accepted for ``choice`` keys, and the choice each stands for.
    """

    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    aliases: tuple[tuple[str, str], ...] = ()

    def canonical(self, word: str) -> str | None:
        """The choice ``word`` names (case-insensitive, aliases resolved), or None when it names none."""
        word = word.strip().lower()
        word = dict(self.aliases).get(word, word)
        return word if word in self.choices else None

    def describe(self) -> str:
        """What values are allowed, in words (used in error messages)."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        if self.kind == "str":
            return "a string"
        noun = "an integer" if self.kind == "int" else "a number"
        if self.above is not None:
            return f"{noun} > {_num(self.above)}"
        if self.minimum is not None and self.maximum is not None:
            return f"{noun} from {_num(self.minimum)} to {_num(self.maximum)}"
        if self.minimum is not None:
            return f"{noun} >= {_num(self.minimum)}"
        return noun


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_TABLE = (
    Key("num_processes", "int", None, "processes per machine (default: one per GPU, else 1)", minimum=1),
    Key("num_machines", "int", 1, "machines (nodes) taking part", minimum=1),
    Key("machine_rank", "int", 0, "index of this machine, 0 hosts the rendezvous", minimum=0),
    Key("main_process_ip", "str", None, "address of machine 0 (default 127.0.0.1 on one machine)"),
    Key(
        "main_process_port",
        "int",
        None,
        "rendezvous port on machine 0 (default: a free port on one machine, 29500 across machines)",
        minimum=0,
        maximum=65535,
    ),
    Key("rdzv_backend", "choice", "c10d", "rendezvous backend", choices=("c10d", "static")),
    Key("rdzv_id", "str", None, "rendezvous id shared by all machines of one job (default 'accel')"),
    Key("rdzv_timeout", "int", 900, "seconds to wait for all machines to join", minimum=1),
    Key(
        "mixed_precision",
        "choice",
        "no",
        "mixed precision",
        choices=("no", "bf16", "fp16"),
        aliases=(("fp32", "no"), ("none", "no"), ("", "no")),
    ),
    Key("use_cpu", "bool", None, "run on the CPU (default: when no GPU is present)"),
    Key("gradient_accumulation_steps", "int", 1, "micro-batches per optimizer step", minimum=1),
    Key("strategy", "choice", "ddp", "how models are distributed", choices=("ddp", "fsdp")),
    Key("max_restarts", "int", 0, "worker-group restarts after a failure", minimum=0),
    Key("monitor_interval", "float", 0.1, "seconds between worker health checks", above=0),
    Key("shutdown_timeout", "float", 30.0, "seconds between SIGTERM and SIGKILL when stopping ranks", above=0),
    Key("auto_resume", "bool", True, "load the latest checkpoint after an elastic restart"),
    Key("project_dir", "str", None, "default directory for checkpoints and trackers"),
    # Accelerate's launch settings (accel launch applies them, or says in its launch line why not)
    Key("debug", "bool", False, "collectives check shapes across ranks first (ACCEL_DEBUG_MODE for the ranks)"),
    Key("gpu_ids", "str", None, "GPUs the ranks may use, e.g. 0,1 (CUDA_VISIBLE_DEVICES; default all)"),
    Key("enable_cpu_affinity", "bool", False, "bind each GPU rank to the CPUs of its NUMA node"),
    Key("same_network", "bool", None, "kept for Accelerate files: no effect (the rendezvous is c10d)"),
    Key("main_training_function", "str", None, "kept for Accelerate files: TPU launches only, no effect"),
)

KEYS: dict[str, Key] = {key.name: key for key in _TABLE}
DEFAULTS: dict[str, Any] = {key.name: key.default for key in _TABLE}


def _bad(key: Key, origin: str, given: object) -> ConfigError:
    return ConfigError(f"{origin}: {key.name} must be {key.describe()}, got {given!r}")


def _check_range(key: Key, value: float, origin: str) -> None:
    too_small = key.minimum is not None and value < key.minimum
    too_large = key.maximum is not None and value > key.maximum
    not_above = key.above is not None and value <= key.above
    if too_small or too_large or not_above or not math.isfinite(value):
        raise _bad(key, origin, value)


def check_value(name: str, value: Any, origin: str) -> Any:
    """Validate a value read from YAML (or given in Python) for key ``name``; return it normalised.

    Args:
        name: the key.
        value: the value; ``None`` is passed through as "not set".
        origin: where it came from, for the error message (e.g. ``"config.yaml, line 3"``).

    Raises:
        ConfigError: the value has the wrong type or is out of range.
    """
    key = KEYS[name]
    if value is None:
        return None
    if key.kind == "bool":
        if not isinstance(value, bool):
            raise _bad(key, origin, value)
        return value
    if key.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(key, origin, value)
        _check_range(key, value, origin)
        return value
    if key.kind == "float":
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            return parse_text(name, value, origin)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(key, origin, value)
        _check_range(key, float(value), origin)
        return float(value)
    if key.kind == "choice":
        if value is False and "no" in key.choices:  # YAML 1.1 reads a bare `no` as false
            return "no"
        chosen = key.canonical(value) if isinstance(value, str) else None
        if chosen is None:
            raise _bad(key, origin, value)
        return chosen
    if not isinstance(value, str):
        raise _bad(key, origin, value)
    return value


def parse_text(name: str, text: str, origin: str) -> Any:
    """Parse a value given as text (flag, environment variable, answer) for key ``name``.

    Raises:
        ConfigError: the text is not a valid value for the key.
    """
    key = KEYS[name]
    word = text.strip()
    if key.kind == "bool":
        if word.lower() in TRUE_WORDS:
            return True
        if word.lower() in FALSE_WORDS:
            return False
        raise _bad(key, origin, text)
    if key.kind == "int":
        if key.name == "num_machines" and ":" in word:
            word = _fixed_range(word, origin)
        try:
            number = int(word)
        except ValueError:
            raise _bad(key, origin, text) from None
        _check_range(key, number, origin)
        return number
    if key.kind == "float":
        try:
            real = float(word)
        except ValueError:
            raise _bad(key, origin, text) from None
        _check_range(key, real, origin)
        return real
    if key.kind == "choice":
        chosen = key.canonical(word)
        if chosen is None:
            raise ConfigError(
                f"{origin}: {key.name} must be {key.describe()}, got {text!r}" + _closest(word.lower(), key.choices)
            )
        return chosen
    if not word:
        raise _bad(key, origin, text)
    return word


def _fixed_range(word: str, origin: str) -> str:
    low, _, high = word.partition(":")
    if low.strip() != high.strip():
        raise ConfigError(
            f"{origin}: {word!r} asks for an elastic range of machines; accel launches a fixed number "
            "of machines: give one number"
        )
    return low


def _closest(word: str, choices: tuple[str, ...]) -> str:
    from accel.exceptions import did_you_mean

    return did_you_mean(word, choices)


def to_text(value: Any) -> str:
    """Render a value the way :func:`parse_text` reads it back (``1``/``0`` for booleans)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
