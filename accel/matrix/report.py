"""The compatibility report: a JSON file a CI system reads and a Markdown table, both written atomically."""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from accel.matrix import hosts as hosts_mod
from accel.matrix.model import Unsupported
from accel.matrix.outcome import Outcome, write_atomic

COLUMNS = (
    ("cell", "cell"),
    ("python", "python"),
    ("os", "os"),
    ("libc", "libc"),
    ("variant", "variant"),
    ("torch", "torch"),
    ("status", "status"),
    ("tests", "tests"),
    ("cuda", "cuda"),
    ("build_s", "build"),
    ("install_s", "install"),
    ("import_s", "import (median)"),
    ("image_bytes", "image size"),
    ("job_s", "2-process job"),
    ("reproducible", "reproducible"),
)

LEGEND = """\
Status words: `pass` (built, installed, imported, ran the 2-process example and the test suite with no
failure); `fail (stage: reason)` (accel's problem); `unsupported (upstream: …)` (a dependency publishes
nothing for the cell; the evidence names the index asked and the tags); `not built (reason)` (this host
could not make the cell, with the reason and how to make it elsewhere); `not tested (time limit: …)` (built,
but the run's `--time-limit` ended before every stage ran; what did run is measured). `tests`: accel's own suite
(unit and real multi-process gloo tests, `pytest -m "not docker"`) run inside the cell's image; the
failing tests are named in the notes. `cuda`: the bf16/fp16 steps and CUDA checkpoint round trip, run
only with `--gpus all` on a host with an NVIDIA runtime. Install: a fresh venv filled from the cell's
wheelhouse with no network. Import: `import torch, accel` in a fresh interpreter, median of 5. Image
size: as `docker image inspect` reports it (uncompressed). A value is `n/a` when its stage did not run
(the status says why). Reproducible: whether two `docker build --no-cache` builds gave this very image ID
(`python3 docker/reproduce.py --cell ID`; `not checked` until it has run for the image built)."""


def git_revision(root: Path) -> str:
    try:
        cmd = ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def metadata(root: Path, engine: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "revision": git_revision(root),
        "host": f"{platform.system()} {platform.machine()}, {platform.node()}",
        "docker": engine,
        "builder": "docker-py APIClient.build (legacy builder)",
        **(extra or {}),
    }


def _value(key: str, value: Any) -> str:
    if value is None or value == "":
        return "n/a"
    if key == "image_bytes":
        return f"{int(value) / 1e9:.2f} GB"
    if key.endswith("_s"):
        return f"{float(value):.1f} s"
    return str(value).replace("|", "\\|")


def table(rows: Sequence[Outcome], columns: Sequence[tuple[str, str]] = COLUMNS) -> list[str]:
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        data = asdict(row)
        lines.append("| " + " | ".join(_value(key, data.get(key)) for key, _ in columns) + " |")
    return lines


def write(
    directory: Path,
    name: str,
    rows: Sequence[Outcome],
    meta: dict[str, str],
    unsupported: Sequence[Unsupported] = (),
    title: str = "Compatibility",
    intro: str = "",
    columns: Sequence[tuple[str, str]] = COLUMNS,
    hosts: Sequence[hosts_mod.HostRun] = (),
) -> list[Path]:
    """``<name>.json`` and ``<name>.md`` in ``directory``; each replaces the old file in one rename."""
    payload = {
        "meta": meta,
        "cells": [asdict(row) for row in rows],
        "unsupported": [asdict(u) for u in unsupported],
        "hosts": hosts_mod.as_json(hosts),
    }
    json_path = directory / f"{name}.json"
    write_atomic(json_path, json.dumps(payload, indent=2) + "\n")
    lines = [f"# {title}", ""]
    if intro:
        lines += [intro, ""]
    lines += [
        f"Revision {meta['revision']}, {meta['generated']}, {meta['host']}, Docker {meta['docker']}.",
        "",
        LEGEND,
        "",
        *table(rows, columns),
    ]
    if unsupported:
        lines += ["", "## Environments not supported", "", "| environment | status |", "|---|---|"]
        lines += [f"| {u.environment} | {u.reason} |" for u in unsupported]
    if hosts:
        lines += ["", *hosts_mod.section(hosts)]
    lines += ["", "## Evidence and notes", ""]
    for row in rows:
        parts = [
            p for p in (row.wheels, row.notes, f"torch in the image: {row.torch_build}" if row.torch_build else "") if p
        ]
        cached = f" (inputs digest {row.digest}, measured {row.measured})" if row.digest else ""
        lines.append(f"- `{row.cell}`{cached}: " + ("; ".join(parts) or "nothing further"))
    md_path = directory / f"{name}.md"
    write_atomic(md_path, "\n".join(lines) + "\n")
    return [md_path, json_path]
