"""COMPATIBILITY.md and COMPATIBILITY.json from the runner's outcomes."""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docker import DockerClient

COLUMNS = (
    ("cell", "cell"),
    ("python", "python"),
    ("os", "os"),
    ("libc", "libc"),
    ("variant", "variant"),
    ("torch", "torch"),
    ("status", "status"),
    ("build_s", "build"),
    ("install_s", "install"),
    ("import_s", "import (median)"),
    ("image_bytes", "image size"),
    ("job_s", "2-process job"),
)


def git_revision(root: Path) -> str:
    proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def _cell(key: str, value: Any) -> str:
    if value is None or value == "":
        return "n/a"
    if key == "image_bytes":
        return f"{int(value) / 1e9:.2f} GB"
    if key.endswith("_s"):
        return f"{float(value):.1f} s"
    return str(value).replace("|", "\\|")


def write(root: Path, rows: list[dict[str, Any]], client: DockerClient) -> list[Path]:
    version = client.version()
    meta = {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "revision": git_revision(root),
        "host": f"{platform.system()} {platform.machine()}, {platform.node()}",
        "docker": f"engine {version.get('Version')} (API {version.get('ApiVersion')})",
        "builder": "docker-py images.build (legacy builder)",
    }
    json_path = root / "COMPATIBILITY.json"
    json_path.write_text(json.dumps({"meta": meta, "cells": rows}, indent=2) + "\n")
    lines = [
        "# Compatibility",
        "",
        "Written by `tox -e matrix` (`python -m accel.matrix`) from docker/matrix.json; do not edit by hand.",
        f"Revision {meta['revision']}, {meta['generated']}, {meta['host']}, Docker {meta['docker']}.",
        "",
        "Status words: `pass` (built, installed, imported, ran the 2-process example); `fail (stage: reason)`",
        "(accel's problem); `unsupported (upstream: …)` (a dependency publishes nothing for the cell);",
        "`not built (…)` (not attempted here, with the reason). Install: a fresh venv filled from the",
        "cell's wheelhouse with no network. Import: `import torch, accel` in a fresh interpreter, median",
        "of 5. Image size: as `docker image inspect` reports it (uncompressed).",
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(key, row.get(key)) for key, _ in COLUMNS) + " |")
    lines += ["", "## Wheels looked for", ""]
    lines += [f"- `{row['cell']}`: {row['wheels'] or 'not probed'}" for row in rows]
    md_path = root / "COMPATIBILITY.md"
    md_path.write_text("\n".join(lines) + "\n")
    return [md_path, json_path]
