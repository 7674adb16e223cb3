"""Parsing ``accel launch`` arguments: options up to the script, the script's arguments untouched.

Each option maps to a config key (or a launch-only setting). Spellings are compared after turning
underscores into dashes, so ``--num_processes`` and ``--num-processes`` are the same option.
Giving one setting two different values (``--num_processes 2 --nproc-per-node 3``, ``--cpu --gpu``)
is an error, as is an unknown option (with the closest spelling suggested).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from accel.config import Setting, parse_text, split_endpoint
from accel.exceptions import ConfigError, did_you_mean


@dataclass(frozen=True)
class Option:
    """A launcher option: its key, its spellings, and the constant it stores (None: takes a value)."""

    key: str
    spellings: tuple[str, ...]
    const: str | None = None


OPTIONS: tuple[Option, ...] = (
    Option("num_processes", ("--num-processes", "--nproc-per-node")),
    Option("num_machines", ("--num-machines", "--nnodes")),
    Option("machine_rank", ("--machine-rank", "--node-rank")),
    Option("main_process_ip", ("--main-process-ip", "--master-addr")),
    Option("main_process_port", ("--main-process-port", "--master-port")),
    Option("rdzv_backend", ("--rdzv-backend",)),
    Option("rdzv_id", ("--rdzv-id",)),
    Option("rdzv_timeout", ("--rdzv-timeout",)),
    Option("mixed_precision", ("--mixed-precision",)),
    Option("gradient_accumulation_steps", ("--gradient-accumulation-steps",)),
    Option("use_cpu", ("--cpu",), "1"),
    Option("use_cpu", ("--gpu", "--multi-gpu"), "0"),
    Option("strategy", ("--strategy",)),
    Option("strategy", ("--use-fsdp",), "fsdp"),
    Option("max_restarts", ("--max-restarts",)),
    Option("monitor_interval", ("--monitor-interval",)),
    Option("shutdown_timeout", ("--shutdown-timeout",)),
    Option("auto_resume", ("--auto-resume",), "1"),
    Option("auto_resume", ("--no-auto-resume",), "0"),
    Option("project_dir", ("--project-dir",)),
    Option("debug", ("--debug",), "1"),
    Option("gpu_ids", ("--gpu-ids",)),
    Option("enable_cpu_affinity", ("--enable-cpu-affinity",), "1"),
    Option("same_network", ("--same-network",), "1"),
    Option("main_training_function", ("--main-training-function",)),
    # launch-only: output streams and torch elastic settings (torchrun's spellings)
    Option("tee", ("--tee", "-t")),
    Option("redirects", ("--redirects", "-r")),
    Option("log_dir", ("--log-dir",)),
    Option("local_ranks_filter", ("--local-ranks-filter",)),
    Option("log_line_prefix_template", ("--log-line-prefix-template",)),
    Option("start_method", ("--start-method",)),
    Option("rdzv_conf", ("--rdzv-conf",)),
    Option("role", ("--role",)),
    Option("env", ("--env",)),
    Option("gradient_clipping", ("--gradient-clipping",)),
    # launch-only
    Option("rdzv_endpoint", ("--rdzv-endpoint",)),
    Option("standalone", ("--standalone",), "1"),
    Option("config_file", ("--config-file",)),
    Option("omp_threads", ("--num-cpu-threads-per-process",)),
    Option("module", ("-m", "--module"), "1"),
    Option("quiet", ("-q", "--quiet"), "1"),
    Option("verbose", ("-v", "--verbose"), "1"),
    Option("help", ("-h", "--help"), "1"),
)
_BY_SPELLING = {spelling: option for option in OPTIONS for spelling in option.spellings}
LAUNCH_ONLY = frozenset(
    {
        "tee",
        "redirects",
        "log_dir",
        "local_ranks_filter",
        "log_line_prefix_template",
        "start_method",
        "rdzv_conf",
        "role",
        "gradient_clipping",
    }
)


@dataclass(frozen=True)
class LaunchRequest:
    """What the command line asked for: explicit settings, the target and its arguments."""

    flags: dict[str, Setting] = field(default_factory=dict)
    target: str = ""
    script_args: list[str] = field(default_factory=list)
    module: bool = False
    config_file: str | None = None
    omp_threads: int | None = None
    quiet: bool = False
    verbose: bool = False
    help: bool = False
    launch: dict[str, str] = field(default_factory=dict)
    env: list[str] = field(default_factory=list)


def _normalise(token: str) -> str:
    if token.startswith("--"):
        return "--" + token[2:].replace("_", "-")
    return token


def _unknown(token: str) -> ConfigError:
    spellings = [s for s in _BY_SPELLING if s.startswith("--")]
    spellings += [s.replace("-", "_").replace("__", "--", 1) for s in spellings]
    hint = did_you_mean(token.split("=", 1)[0], spellings)
    return ConfigError(f"unknown option {token!r}{hint}; see `accel launch --help`")


def split_argv(argv: list[str]) -> tuple[list[tuple[Option, str, str]], list[str]]:
    """Split into ``[(option, spelling, value)]`` and ``[target, *script_args]`` (stops at the script)."""
    given: list[tuple[Option, str, str]] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            return given, argv[i + 1 :]
        if not token.startswith("-") or token == "-":
            return given, argv[i:]
        name, has_value, inline = _normalise(token).partition("=")
        option = _BY_SPELLING.get(name)
        if option is None:
            raise _unknown(token)
        if option.const is not None:
            if has_value:
                raise ConfigError(f"{name} takes no value, got {token!r}")
            given.append((option, token, option.const))
        elif has_value:
            given.append((option, name, inline))
        elif i + 1 < len(argv):
            i += 1
            given.append((option, token, argv[i]))
        else:
            raise ConfigError(f"{token} needs a value (accel launch)")
        i += 1
    return given, []


def _put(flags: dict[str, Setting], key: str, value: object, spelling: str) -> None:
    previous = flags.get(key)
    if previous is not None and previous.value != value:
        raise ConfigError(
            f"conflicting options {previous.source} {previous.value!r} and {spelling} {value!r} "
            "set the same thing; keep one"
        )
    flags[key] = Setting(value, spelling)


def parse_args(argv: list[str]) -> LaunchRequest:
    """Parse ``accel launch`` arguments into a :class:`LaunchRequest`.

    Raises:
        ConfigError: unknown or conflicting options, bad values, or no script.
    """
    given, rest = split_argv(argv)
    flags: dict[str, Setting] = {}
    extra: dict[str, str] = {}
    launch: dict[str, str] = {}
    variables: list[str] = []
    for option, spelling, raw in given:
        origin = spelling
        if option.key == "env":
            variables.append(raw)
        elif option.key in LAUNCH_ONLY:
            if option.key in launch and launch[option.key] != raw:
                raise ConfigError(f"{spelling} given twice with different values; keep one")
            launch[option.key] = raw
        elif option.key == "rdzv_endpoint":
            host, port = split_endpoint(raw, origin)
            _put(flags, "main_process_ip", host, spelling)
            if port is not None:
                _put(flags, "main_process_port", port, spelling)
        elif option.key == "standalone":
            _put(flags, "num_machines", 1, spelling)
            _put(flags, "main_process_port", 0, spelling)
        elif option.key in ("config_file", "omp_threads", "module", "quiet", "verbose", "help"):
            if option.key in extra and extra[option.key] != raw:
                raise ConfigError(f"{spelling} given twice with different values; keep one")
            extra[option.key] = raw
        else:
            _put(flags, option.key, parse_text(option.key, raw, origin), spelling)
    threads = extra.get("omp_threads")
    omp = parse_text("num_processes", threads, "--num_cpu_threads_per_process") if threads else None
    if "help" in extra:
        return LaunchRequest(help=True)
    if not rest:
        raise ConfigError("no script given; usage: accel launch [options] script.py [args...]")
    return LaunchRequest(
        flags=flags,
        target=rest[0],
        script_args=list(rest[1:]),
        module="module" in extra,
        config_file=extra.get("config_file"),
        omp_threads=omp,
        quiet="quiet" in extra,
        verbose="verbose" in extra,
        launch=launch,
        env=variables,
    )
