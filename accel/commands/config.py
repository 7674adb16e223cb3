"""``accel config``: write, edit or show the config file (never imports torch)."""

from __future__ import annotations

import sys

from accel.commands.parser import Parser
from accel.exceptions import ConfigError, did_you_mean

__all__ = ["main"]

CONFIG_HELP = """usage: accel config [--config_file PATH]                     interactive questions
       accel config default [--config_file PATH] [--force] [KEY options...]
       accel config set KEY=VALUE [KEY=VALUE...] [--config_file PATH]
       accel config show [--config_file PATH]

Writes a flat YAML file with a `version:` key. Default location: ACCEL_CONFIG_FILE, else
$XDG_CONFIG_HOME/accel/config.yaml (~/.config/accel/config.yaml). `default` never overwrites an
existing file unless --force. Keys (also settable as ACCEL_<KEY> or `accel launch --<key>`):

"""


def _keys_table() -> str:
    from accel.config import KEYS

    rows = [f"  {k.name:<28} {k.describe():<34} {k.help}" for k in KEYS.values()]
    return "\n".join(rows) + "\n"


def _target(explicit: str | None) -> str:
    from accel import env
    from accel.config import user_config_path

    return explicit or env.get(env.CONFIG_FILE) or str(user_config_path())


def _config_default(argv: list[str]) -> int:
    from accel.config import KEYS, parse_text, write_basic_config, write_config

    parser = Parser(prog="accel config default", add_help=True)
    parser.add_argument("--config_file", "--config-file", dest="config_file")
    parser.add_argument("--force", action="store_true")
    for key in KEYS:
        parser.add_argument(*sorted({f"--{key}", f"--{key.replace('_', '-')}"}), dest=key)
    args = parser.parse_args(argv)
    values = {k: parse_text(k, getattr(args, k), f"--{k}") for k in KEYS if getattr(args, k) is not None}
    values.setdefault("mixed_precision", "no")
    path = _target(args.config_file)
    written = write_config(path, values) if args.force else write_basic_config(save_location=path, **values)
    if written is False:
        sys.stderr.write(f"accel config: {path} exists; kept it (use --force to overwrite, or `config set`)\n")
    else:
        sys.stdout.write(f"accel config: wrote {written}\n")
    return 0


def _config_set(argv: list[str]) -> int:
    from pathlib import Path

    from accel.config import KEYS, parse_text, read_config, write_config

    parser = Parser(prog="accel config set")
    parser.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    parser.add_argument("--config_file", "--config-file", dest="config_file")
    args = parser.parse_args(argv)
    path = _target(args.config_file)
    values = read_config(path) if Path(path).is_file() else {}
    for pair in args.pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ConfigError(f"accel config set: expected KEY=VALUE, got {pair!r}")
        if key not in KEYS:
            raise ConfigError(f"accel config set: unknown key {key!r}{did_you_mean(key, list(KEYS))}")
        values[key] = None if raw.strip().lower() in ("null", "none", "") else parse_text(key, raw, f"{key}=")
    sys.stdout.write(f"accel config: wrote {write_config(path, values)}\n")
    return 0


def _config_show(argv: list[str]) -> int:
    from accel.config import find_config_file, read_config, render_config

    parser = Parser(prog="accel config show")
    parser.add_argument("--config_file", "--config-file", dest="config_file")
    args = parser.parse_args(argv)
    path, how = find_config_file(args.config_file)
    if path is None:
        sys.stdout.write("# no config file: built-in defaults\n")
        return 0
    sys.stdout.write(f"# {path} ({how})\n" + render_config(read_config(path)))
    return 0


def main(argv: list[str]) -> int:
    """``accel config ...``."""
    if argv and argv[0] in ("-h", "--help"):
        sys.stdout.write(CONFIG_HELP + _keys_table())
        return 0
    commands = {"default": _config_default, "set": _config_set, "show": _config_show}
    if argv and not argv[0].startswith("-"):
        if argv[0] not in commands:
            raise ConfigError(f"accel config: unknown command {argv[0]!r}{did_you_mean(argv[0], list(commands))}")
        return commands[argv[0]](argv[1:])
    parser = Parser(prog="accel config")
    parser.add_argument("--config_file", "--config-file", dest="config_file")
    args = parser.parse_args(argv)
    from accel.commands.questionnaire import run_questionnaire

    path = run_questionnaire(_target(args.config_file), sys.stdin, sys.stdout)
    sys.stdout.write(f"accel config: wrote {path}\n")
    return 0
