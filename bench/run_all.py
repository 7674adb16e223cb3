"""Regenerate BENCHMARKS.md and its plots: every benchmark, then the plots, then the document.

usage: python bench/run_all.py [--smoke] [--only NAME,...] [--render] [--results DIR] [--output FILE] [--plots DIR]

Each benchmark runs as its own process (``bench/<script>.py``) and leaves its table in
``<results>/<name>.md`` (and, for the curves, its numbers in ``<name>.json``). The plots go to
``bench/plots/`` beside the results, and ``bench/BENCHMARKS.in.md`` with every ``{{name}}``
replaced by that table becomes ``BENCHMARKS.md``; ``{{name_notes}}`` is ``bench/notes/<name>.md``,
the reading of a table, written by hand after a run.

``--smoke`` runs every benchmark in its quick mode (a few seconds each; what CI runs) into a
temporary directory, checks the document renders, and leaves the committed files alone.
``--render`` only redraws the plots and the document from the results already there.
``--only ddp,stall`` reruns those benchmarks and renders with the others' stored results.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import common  # noqa: E402
import peer  # noqa: E402
import plots  # noqa: E402

# name: (script and its arguments, arguments in smoke mode); a "{json}" argument is the results file
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "cli": (["bench_cli.py", "--rounds", "8"], ["bench_cli.py", "--rounds", "1", "--help-runs", "2"]),
    "core": (["bench_core.py", "--rounds", "3"], ["bench_core.py", "--quick"]),
    "ddp": (["bench_ddp.py", "--rounds", "3", "--blocks", "4", "--json", "{json}"], ["bench_ddp.py", "--smoke"]),
    "step": (["curves_step.py", "--json", "{json}"], ["curves_step.py", "--smoke", "--json", "{json}"]),
    "dist": (["curves_dist.py", "--json", "{json}"], ["curves_dist.py", "--smoke", "--json", "{json}"]),
    "checkpoint": (
        ["bench_checkpoint.py", "--repeat", "3"],
        ["bench_checkpoint.py", "--repeat", "1", "--params", "4e6"],
    ),
    "ckpt_curve": (["curves_ckpt.py", "--json", "{json}"], ["curves_ckpt.py", "--smoke", "--json", "{json}"]),
    "stall": (
        ["bench_stall.py", "--rounds", "5", "--json", "{json}"],
        ["bench_stall.py", "--smoke", "--json", "{json}"],
    ),
    "containers": (["bench_containers.py", "--rounds", "9", "--json", "{json}"], ["bench_containers.py", "--smoke"]),
}
#: The benchmarks that run the Accelerate peer beside accel (its venv is made first when missing).
WITH_PEER = frozenset({"core", "ddp"})
TEMPLATE = HERE / "BENCHMARKS.in.md"
NOTES = HERE / "notes"


def run_one(name: str, smoke: bool, results: Path) -> None:
    argv = BENCHES[name][1 if smoke else 0]
    argv = [str(results / f"{name}.json") if a == "{json}" else a for a in argv]
    start = time.perf_counter()
    print(f"[run_all] {name}: {' '.join(argv)}", flush=True)
    proc = subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:]], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"[run_all] {name} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    (results / f"{name}.md").write_text(proc.stdout.strip() + "\n")
    print(f"[run_all] {name}: {time.perf_counter() - start:.0f} s", flush=True)


def render(results: Path, output: Path, plot_dir: Path) -> None:
    """Fill the template with the stored tables; a missing table is named as missing."""
    text = TEMPLATE.read_text()

    def table(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "machine":
            return common.machine()
        if key.endswith("_notes"):  # the reading of a table: written by hand, kept in bench/notes/
            notes = NOTES / f"{key[: -len('_notes')]}.md"
            return notes.read_text().strip() if notes.exists() else ""
        path = results / f"{key}.md"
        if path.exists():
            return path.read_text().strip()
        if key == "gpu":
            return "Not run on a GPU: `python bench/gpu.py` on a machine with one writes `bench/results/gpu.md`."
        return f"(not measured: run `python bench/run_all.py --only {key}`)"

    rel = plot_dir.relative_to(output.parent) if plot_dir.is_relative_to(output.parent) else plot_dir
    text = re.sub(r"\{\{(\w+)\}\}", table, text).replace("(plots/", f"({rel.as_posix()}/")
    output.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", default=None, help="comma-separated: " + ",".join(BENCHES))
    parser.add_argument("--render", action="store_true", help="no benchmark, only plots and the document")
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--plots", type=Path, default=None)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-smoke-")) if args.smoke else None
    results = args.results or (scratch / "results" if scratch else HERE / "results")
    output = args.output or (scratch / "BENCHMARKS.md" if scratch else ROOT / "BENCHMARKS.md")
    plot_dir = args.plots or ((scratch / "plots") if scratch else HERE / "plots")
    results.mkdir(parents=True, exist_ok=True)
    names = [] if args.render else (args.only.split(",") if args.only else list(BENCHES))
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"run_all: unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    if not args.smoke and WITH_PEER.intersection(names):
        print(f"[run_all] the Accelerate peer: {peer.create()}", flush=True)  # a table without it would mislead
    for name in names:
        run_one(name, args.smoke, results)
    for path in plots.draw(results, plot_dir):
        print(f"[run_all] plot {path}")
    render(results, output, plot_dir)
    print(f"[run_all] wrote {output}")


if __name__ == "__main__":
    main()
