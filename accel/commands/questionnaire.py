"""``accel config``: a short questionnaire that writes the config file.

Works on a terminal and with piped answers (``printf '2\\nbf16\\n' | accel config``): an empty
answer takes the default shown in brackets, the end of input takes the defaults for the remaining
questions. On a terminal a bad answer is asked again; with piped input it is an error naming the
question, so scripts fail loudly instead of writing a wrong file.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, TextIO

from accel.config import KEYS, parse_text, read_config, write_config
from accel.exceptions import ConfigError


class _Asker:
    def __init__(self, stdin: TextIO, stdout: TextIO) -> None:
        self.stdin, self.stdout = stdin, stdout
        self.interactive = stdin.isatty()
        self.ended = False

    def ask(self, key: str, question: str, default: Any) -> Any:
        shown = ("yes" if default else "no") if isinstance(default, bool) else ("" if default is None else default)
        choices = f" ({'/'.join(KEYS[key].choices)})" if KEYS[key].kind == "choice" else ""
        while True:
            self.stdout.write(f"{question}{choices} [{shown}]: ")
            self.stdout.flush()
            line = "" if self.ended else self.stdin.readline()
            if not line:
                self.ended = True
            answer = line.strip()
            if not self.interactive:
                self.stdout.write(answer + "\n")
            if not answer:
                return default
            try:
                return parse_text(key, answer, f"answer to {question!r}")
            except ConfigError as exc:
                if not self.interactive:
                    raise
                self.stdout.write(f"  {exc}\n")


def _guess_gpus() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia/gpus").is_dir()


def ask_all(asker: _Asker, current: dict[str, Any]) -> dict[str, Any]:
    """Ask every question (defaults: the current file's values, else built-in ones)."""

    def now(key: str, fallback: Any) -> Any:
        value = current.get(key)
        return fallback if value is None else value

    values = dict(current)
    machines = asker.ask("num_machines", "How many machines will take part?", now("num_machines", 1))
    values["num_machines"] = machines
    if machines > 1:
        values["machine_rank"] = asker.ask("machine_rank", "Index of this machine (0 hosts)?", now("machine_rank", 0))
        values["main_process_ip"] = asker.ask(
            "main_process_ip", "Address of machine 0?", now("main_process_ip", "127.0.0.1")
        )
        values["main_process_port"] = asker.ask(
            "main_process_port", "Rendezvous port on machine 0?", now("main_process_port", 29500)
        )
        values["rdzv_backend"] = asker.ask("rdzv_backend", "Rendezvous backend?", now("rdzv_backend", "c10d"))
    use_cpu = asker.ask("use_cpu", "Run on the CPU only?", now("use_cpu", not _guess_gpus()))
    values["use_cpu"] = use_cpu
    values["num_processes"] = asker.ask(
        "num_processes", "How many processes per machine?", now("num_processes", 1 if use_cpu else None)
    )
    values["mixed_precision"] = asker.ask("mixed_precision", "Mixed precision?", now("mixed_precision", "no"))
    values["gradient_accumulation_steps"] = asker.ask(
        "gradient_accumulation_steps", "Gradient accumulation steps?", now("gradient_accumulation_steps", 1)
    )
    values["strategy"] = asker.ask("strategy", "Distribution strategy?", now("strategy", "ddp"))
    return values


def run_questionnaire(path: str, stdin: TextIO, stdout: TextIO) -> Path:
    """Ask the questions, validate the answers and write ``path``; return it."""
    target = Path(path).expanduser()
    current = read_config(target) if target.is_file() else {}
    stdout.write(f"Configuring {target} (empty answer = value in brackets)\n")
    values = ask_all(_Asker(stdin, stdout), current)
    return write_config(target, values)
