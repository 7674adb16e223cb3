"""One rank of ``accel launch``: run the user's script or module and record a failure for the launcher.

``python -u -m accel.launch.worker script.py ARGS...`` behaves like ``python -u script.py ARGS...``
(same ``sys.argv``, ``sys.path[0]`` is the script's folder, ``__name__ == "__main__"``), and
``python -u -m accel.launch.worker -m pkg.mod ARGS...`` like ``python -u -m pkg.mod ARGS...``.
When the script raises, its traceback (without this module's frames) is printed and recorded for
the launcher (:mod:`accel.launch.failures`), which shows the first failing rank first. Nothing here
imports torch.
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback

_SKIP = (os.path.abspath(__file__), os.path.abspath(runpy.__file__), "<frozen runpy>")


def _bootstrap_frame(filename: str) -> bool:
    return filename in _SKIP or os.path.abspath(filename) in _SKIP


def format_traceback(exc: BaseException) -> str:
    """The exception's traceback without the bootstrap frames (this module and runpy)."""
    tb = exc.__traceback__
    while tb is not None and _bootstrap_frame(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def run(argv: list[str]) -> None:
    """Run ``script.py ARGS`` or ``-m module ARGS`` as ``__main__``."""
    if not argv or (argv[0] == "-m" and len(argv) < 2):
        raise SystemExit("usage: python -m accel.launch.worker (script.py | -m module) [args...]")
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
        runpy.run_path(argv[0], run_name="__main__")


def line_buffered() -> None:
    """Write each line of stdout and stderr in one piece, as soon as it ends.

    Ranks start with ``-u`` (nothing held back), where ``print(text)`` writes ``text`` and then the
    newline as two writes; torch's launcher tails each rank's output to prefix it
    (``[default0]:``, ``--log-line-prefix-template``, ``--tee``) and, catching a line between the
    two, printed it split and interleaved with another rank's. Line buffering keeps the promptness
    and makes every line one write.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # absent when a caller swapped the stream
        if reconfigure is not None:
            reconfigure(line_buffering=True, write_through=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run, and on an exception print and record the trimmed traceback, exit 1."""
    line_buffered()
    try:
        run(sys.argv[1:] if argv is None else argv)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        from accel.launch.failures import record_failure  # only on failure: keeps rank start-up lean

        text = format_traceback(exc)
        record_failure(exc, text)
        sys.stderr.write(text)
        sys.stderr.flush()
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
