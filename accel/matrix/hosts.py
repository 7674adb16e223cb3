"""The host interpreters' rows of the report: what the tox envs py310-py313 ran, with which torch.

Each tox test env records its Python and the torch build it got in ``.tox/host-results/<env>.json``
(``python -m accel.matrix.torch_wheel --record FILE``, before pytest), and pytest writes its JUnit
report to ``<env>.xml`` beside it. ``accel-matrix check`` turns them into a table of the report;
an env that has not run since keeps its row from the last report. Standard library only.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from accel.matrix.stages import parse_junit

RESULTS = Path(".tox") / "host-results"
_TEST_ENV = re.compile(r"py3\d+")


@dataclass(frozen=True)
class HostRun:
    """One tox env's last run on this host."""

    env: str
    python: str
    torch: str
    status: str
    tests: str
    measured: str
    failing: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostRun:
        names = {f.name for f in fields(cls)}
        return cls(**{k: str(v) for k, v in data.items() if k in names})


def _stamp(path: Path) -> str:
    return datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read(record: Path) -> HostRun:
    """The row of one env from its record and, when pytest finished, its JUnit report."""
    data = json.loads(record.read_text())
    env, python, torch = record.stem, str(data.get("python", "?")), str(data.get("torch", "?"))
    junit = record.with_suffix(".xml")
    if not junit.is_file():
        return HostRun(env, python, torch, "fail (pytest wrote no report)", "n/a", _stamp(record))
    suite = parse_junit(junit.read_text(), 0.0)
    status = f"fail (tests: {suite.failed} of {suite.passed + suite.failed} failed)" if suite.failed else "pass"
    return HostRun(env, python, torch, status, suite.summary, _stamp(junit), ", ".join(suite.failing[:20]))


def collect(results: Path) -> list[HostRun]:
    """Rows of the test envs (py310, py311, …) recorded under ``results``; unreadable records are skipped."""
    rows = []
    for record in sorted(results.glob("*.json")):
        if not _TEST_ENV.fullmatch(record.stem):
            continue
        try:
            rows.append(read(record))
        except (OSError, ValueError) as exc:
            rows.append(HostRun(record.stem, "?", "?", f"fail (unreadable record: {exc})", "n/a", _stamp(record)))
    return rows


def merge(previous: Iterable[dict[str, Any]], fresh: Sequence[HostRun]) -> list[HostRun]:
    """Fresh rows over the previous report's, sorted by env."""
    rows = {r.env: r for r in (HostRun.from_dict(d) for d in previous)}
    rows.update({r.env: r for r in fresh})
    return [rows[env] for env in sorted(rows, key=lambda e: int(e[3:]) if e[3:].isdigit() else 0)]


def section(rows: Sequence[HostRun]) -> list[str]:
    """The report's Markdown for the host envs (nothing when there are none)."""
    if not rows:
        return []
    lines = [
        "## Host interpreters (tox)",
        "",
        "The non-container suite (`tox -e py310,py311,py312,py313`; py311 also runs the container tests) on",
        "this host's interpreters, with the torch build each env got (see README, *Which torch*).",
        "",
        "| env | python | torch | status | tests | measured |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r.env} | {r.python} | {r.torch} | {r.status} | {r.tests} | {r.measured} |" for r in rows]
    lines += [f"- `{r.env}` failing: {r.failing}" for r in rows if r.failing]
    return lines


def as_json(rows: Sequence[HostRun]) -> list[dict[str, str]]:
    return [asdict(r) for r in rows]
