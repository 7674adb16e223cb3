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

import argparse
import sys
from typing import NoReturn

from accel.exceptions import AccelError, ConfigError, did_you_mean

COMMANDS = ("launch", "config", "env", "test")

CONFIG_HELP = """usage: accel config [--config_file PATH]                     interactive questions
       accel config default [--config_file PATH] [--force] [KEY options...]
       accel config set KEY=VALUE [KEY=VALUE...] [--config_file PATH]
       accel config show [--config_file PATH]

Writes a flat YAML file with a `version:` key. Default location: ACCEL_CONFIG_FILE, else
$XDG_CONFIG_HOME/accel/config.yaml (~/.config/accel/config.yaml). `default` never overwrites an
existing file unless --force. Keys (also settable as ACCEL_<KEY> or `accel launch --<key>`):

"""


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError (one line, closest option suggested) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            word = message.split(":", 1)[1].split()[0]
            known = [s for action in self._actions for s in action.option_strings]
            message = f"unknown option {word!r}{did_you_mean(word.split('=')[0], known)}"
        raise ConfigError(f"{self.prog}: {message}")


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

    parser = _Parser(prog="accel config default", add_help=True)
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

    parser = _Parser(prog="accel config set")
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

    parser = _Parser(prog="accel config show")
    parser.add_argument("--config_file", "--config-file", dest="config_file")
    args = parser.parse_args(argv)
    path, how = find_config_file(args.config_file)
    if path is None:
        sys.stdout.write("# no config file: built-in defaults\n")
        return 0
    sys.stdout.write(f"# {path} ({how})\n" + render_config(read_config(path)))
    return 0


def config_main(argv: list[str]) -> int:
    """``accel config ...``."""
    if argv and argv[0] in ("-h", "--help"):
        sys.stdout.write(CONFIG_HELP + _keys_table())
        return 0
    commands = {"default": _config_default, "set": _config_set, "show": _config_show}
    if argv and not argv[0].startswith("-"):
        if argv[0] not in commands:
            raise ConfigError(f"accel config: unknown command {argv[0]!r}{did_you_mean(argv[0], list(commands))}")
        return commands[argv[0]](argv[1:])
    parser = _Parser(prog="accel config")
    parser.add_argument("--config_file", "--config-file", dest="config_file")
    args = parser.parse_args(argv)
    from accel.questionnaire import run_questionnaire

    path = run_questionnaire(_target(args.config_file), sys.stdin, sys.stdout)
    sys.stdout.write(f"accel config: wrote {path}\n")
    return 0


def env_main(argv: list[str]) -> int:
    """``accel env [--config_file PATH] [--verify]``."""
    parser = _Parser(prog="accel env")
    parser.add_argument("--config_file", "--config-file", dest="config_file")
    parser.add_argument("--verify", action="store_true", help="only check the image's environment against its seal")
    args = parser.parse_args(argv)
    from accel.envlock import report as environment

    lines, code = environment(verbose=args.verify)
    if args.verify:
        sys.stdout.write("\n".join(lines) + "\n")
        return code
    from accel.envreport import report

    sys.stdout.write(report(args.config_file) + "\n".join(lines) + "\n")
    return 0


def test_main(argv: list[str]) -> int:
    """``accel test [launch options]``: the self-check through the real launch path."""
    if argv and argv[0] in ("-h", "--help"):
        sys.stdout.write("usage: accel test [accel launch options]\n\nRuns accel.selftest on the resolved setup.\n")
        return 0
    from accel.selftest import run_selftest

    return run_selftest(argv)


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(__doc__ or "")
        return 0
    if argv[0] in ("-V", "--version"):
        from accel import __version__

        sys.stdout.write(f"accel {__version__}\n")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "launch":
        from accel.launch import main as launch_main

        return launch_main(rest)
    handlers = {"config": config_main, "env": env_main, "test": test_main}
    if command not in handlers:
        raise ConfigError(f"unknown command {command!r}{did_you_mean(command, COMMANDS)}; see `accel --help`")
    return handlers[command](rest)


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
