"""accel-matrix's pure parts: selection, statuses, JUnit counts, the report, the cache (no Docker needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from accel.matrix import engine, pipeline, probe, report, stages, user
from accel.matrix.model import Matrix, load
from accel.matrix.outcome import Outcome, ResultCache, write_atomic
from accel.matrix.runner import selection

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.test_a" name="test_skip" time="0"><skipped message="no gpu"/></testcase>
<testcase classname="tests.test_b" name="test_bad[2]" time="0.2"><failure message="boom"/></testcase>
<testcase classname="tests.test_b" name="test_err" time="0.2"><error message="fixture"/></testcase>
</testsuite></testsuites>"""


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load(ROOT)


def matrix_cli(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-m", "accel.matrix", *args], capture_output=True, text=True, cwd=cwd, env=environ
    )


def test_unknown_cell_is_one_line_and_the_others_still_run(matrix: Matrix) -> None:
    cells, problems = selection(matrix, ["py3.13-cpu,py3.9-cpu", "py3.10-cuda"])
    assert [c.id for c in cells] == ["py3.13-cpu", "py3.10-cuda"]
    assert len(problems) == 1 and problems[0].startswith("unknown cell 'py3.9-cpu'; docker/matrix.json has: ")
    assert [c.id for c in selection(matrix, [])[0]] == [c.id for c in matrix.cells]


def test_malformed_cell_is_left_out_with_its_error(tmp_path: Path) -> None:
    (tmp_path / "docker").mkdir()
    raw = json.loads((ROOT / "docker" / "matrix.json").read_text())
    raw["cells"][2]["variant"] = "rocm"
    raw["cells"][4]["id"] = raw["cells"][3]["id"]
    (tmp_path / "docker" / "matrix.json").write_text(json.dumps(raw))
    proc = matrix_cli("list", cwd=tmp_path)
    assert proc.returncode == 1
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 2
    assert "cell 'py3.12-cpu': unknown variant 'rocm'" in errors[0] and "the others run" in errors[0]
    assert "duplicate cell id 'py3.13-cpu'" in errors[1]
    listed = [line.split()[0] for line in proc.stdout.splitlines()]
    assert len(listed) == 14 and "py3.12-cpu" not in listed and "py3.11-cpu" in listed


def test_no_engine_is_one_line_and_non_zero() -> None:
    pytest.importorskip("docker", reason="docker-py (the matrix extra) is not installed here")
    proc = matrix_cli("check", "--cells", "py3.11-cpu", "--no-report", DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("accel-matrix: Docker engine not reachable (") and "no cell was run" in proc.stderr


def test_statuses_say_why(matrix: Matrix) -> None:
    cell = matrix.find("py3.12-cpu")
    unreachable = probe.WheelProbe(
        "torch", cell.torch, False, ("2.14.1",), "PyPI (... is not reachable from here: x)", "t"
    )
    status = probe.missing_status(cell, unreachable)
    assert status.startswith("not built (torch 2.13.0+cpu: no cp312 wheel")
    assert "python3 docker/bootstrap.py --cell py3.12-cpu" in status
    reached = probe.WheelProbe(
        "torch", cell.torch, False, (), "PyPI + https://download.pytorch.org/whl/cpu", "cp312 on x"
    )
    assert (
        probe.missing_status(cell, reached)
        == "unsupported (upstream: torch 2.13.0+cpu publishes no wheel for cp312 on x)"
    )
    assert "asked PyPI + https://download.pytorch.org/whl/cpu for cp312 on x" in reached.evidence


def test_disk_full_is_named_and_not_blamed_on_accel() -> None:
    reason = engine._reason("write /var/lib/docker/tmp/x: no space left on device", ["Step 9/22 : RUN pip install"])
    assert reason.startswith("disk full (no space left on device)")
    assert engine.StageError("build", reason).environmental
    assert not engine.StageError("build", "exit code 2: VARIANT must be cpu or cuda").environmental


def test_junit_counts_and_failing_names() -> None:
    result = stages.parse_junit(JUNIT, 12.5)
    assert (result.passed, result.failed, result.skipped) == (1, 2, 1)
    assert result.failing == ("tests.test_b::test_bad[2] (boom)", "tests.test_b::test_err (fixture)")
    assert result.summary == "1 passed, 2 failed, 1 skipped"


def test_pytest_counts_from_output() -> None:
    logs = "....s.F\nFAILED tests/test_x.py::test_y\n=== 1 failed, 5 passed, 1 skipped in 2.31s ===\n"
    assert user.pytest_counts(logs) == "1 failed, 5 passed, 1 skipped"
    assert user.pytest_counts("7 passed in 0.5s") == "7 passed"
    assert user.pytest_counts("hello\n") == ""


def test_report_is_complete_and_written_atomically(tmp_path: Path, matrix: Matrix) -> None:
    rows = []
    for cell in matrix.cells:
        row = Outcome.start(cell)
        row.status = "pass" if cell.default else "not built (reason)"
        rows.append(row)
    rows[0].tests, rows[0].build_s, rows[0].image_bytes = "150 passed, 0 failed, 2 skipped", 75.25, 830_000_000
    meta = report.metadata(ROOT, "engine test")
    written = report.write(tmp_path, "COMPATIBILITY", rows, meta, matrix.unsupported)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["COMPATIBILITY.json", "COMPATIBILITY.md"]
    assert [p.name for p in written] == ["COMPATIBILITY.md", "COMPATIBILITY.json"]
    data = json.loads((tmp_path / "COMPATIBILITY.json").read_text())
    assert len(data["cells"]) == 16 and data["cells"][0]["tests"].startswith("150 passed")
    assert {u["environment"] for u in data["unsupported"]} >= {"Python 3.9"}
    md = (tmp_path / "COMPATIBILITY.md").read_text()
    assert (
        "| py3.11-cpu | 3.11 | debian-bookworm | glibc | cpu | 2.13.0+cpu | pass | 150 passed, 0 failed, 2 skipped |"
        in md
    )
    assert "| Python 3.9 | unsupported (accel requires Python >= 3.10) |" in md
    assert "75.2 s" in md and "0.83 GB" in md and " — " not in md and "| - |" not in md


def test_write_atomic_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    write_atomic(target, "old\n")

    with pytest.raises(TypeError):
        write_atomic(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_result_cache_by_digest(tmp_path: Path, matrix: Matrix) -> None:
    cache = ResultCache(tmp_path)
    row = Outcome.start(matrix.default)
    row.status, row.digest, row.tests = "pass", "0123456789abcdef", "3 passed, 0 failed, 0 skipped"
    cache.put(row)
    assert cache.get(row.cell, row.digest) == row
    assert cache.get(row.cell, "fedcba9876543210") is None
    assert cache.latest(row.cell) == row and cache.latest("py3.11-cuda") is None
    skipped = Outcome.start(matrix.find("py3.12-cpu"))
    skipped.status, skipped.digest = "not built (no wheel)", "0000000000000000"
    cache.put(skipped)
    assert cache.latest("py3.12-cpu") is None, "only measured outcomes are cached"


def test_digest_follows_the_inputs(tmp_path: Path, matrix: Matrix) -> None:
    from accel.matrix import context

    cell = matrix.default
    first = context.digest(ROOT, cell)
    assert first == context.digest(ROOT, cell) and len(first) == 16
    assert context.digest(ROOT, matrix.find("py3.12-cpu")) != first


def test_the_training_library_never_imports_the_matrix() -> None:
    offenders = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "accel").rglob("*.py")
        if "matrix" not in path.relative_to(ROOT / "accel").parts and "accel.matrix" in path.read_text()
    ]
    assert offenders == []


def test_gpu_check_fails_honestly_without_a_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has a GPU: the check would run for real")
    proc = subprocess.run([sys.executable, "-m", "accel.matrix.gpu_check"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stdout.strip() == "fail (bf16: gpu_check: torch.cuda.is_available() is False inside the container)"


def test_time_limit_stops_later_stages_with_the_reason() -> None:
    import io

    from accel.matrix.outcome import Progress

    progress = Progress(io.StringIO(), time_limit=0)
    with pytest.raises(engine.StageError) as info, progress.stage("py3.11-cpu", "test suite"):
        pass
    assert info.value.stage == "time limit" and info.value.environmental
    assert "before the test suite stage" in info.value.reason
    assert Progress(io.StringIO(), time_limit=100).remaining(30) == 30


def test_cells_not_run_keep_their_last_reported_row(tmp_path: Path, matrix: Matrix) -> None:
    from accel.matrix.runner import previous_rows

    row = Outcome.start(matrix.find("py3.12-cuda"))
    row.status, row.tests = "pass", "200 passed, 0 failed, 3 skipped"
    report.write(tmp_path, "COMPATIBILITY", [row], report.metadata(ROOT, "engine test"))
    assert previous_rows(tmp_path / "COMPATIBILITY.json") == {"py3.12-cuda": row}
    assert previous_rows(tmp_path / "missing.json") == {}


def test_suite_shards_cover_every_test_file_once() -> None:
    parts = stages.shards(ROOT, 4)
    files = sorted(f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py"))
    assert len(parts) == 4 and sorted(f for part in parts for f in part) == files
    assert stages.shards(ROOT, 1) == [sorted(files, key=lambda f: (-(ROOT / f).stat().st_size, f))]


def test_a_built_cell_that_runs_out_of_time_is_not_tested_not_unbuilt(
    tmp_path: Path, matrix: Matrix, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    def built_then_out_of_time(settings: object, cell: object, outcome: Outcome) -> None:
        outcome.build_s = 12.0
        raise engine.StageError("time limit", "the suite did not finish in the 30 s left")

    monkeypatch.setattr(pipeline, "debian", built_then_out_of_time)
    settings = SimpleNamespace(cache=ResultCache(tmp_path))
    row = pipeline.run_cell(settings, matrix.default)  # type: ignore[arg-type]
    assert row.status == "not tested (time limit: the suite did not finish in the 30 s left)"
    assert row.build_s == 12.0


def test_a_cached_cell_picks_up_a_reproduce_record_written_after_it(
    tmp_path: Path, matrix: Matrix, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    from types import SimpleNamespace

    from accel.matrix.outcome import Progress

    cell = matrix.default
    monkeypatch.setattr(pipeline.probe, "probe", lambda *args: SimpleNamespace(available=True, evidence="found"))
    monkeypatch.setattr(pipeline, "bootstrap", lambda root, cell: None)
    monkeypatch.setattr(pipeline.context, "digest", lambda root, cell: "0123456789abcdef")
    monkeypatch.setattr(pipeline.engine, "image_present", lambda client, tag: True)
    cache = ResultCache(tmp_path / "matrix")
    earlier = Outcome.start(cell)
    earlier.status, earlier.digest, earlier.measured = "pass", "0123456789abcdef", "2026-12-01T00:00:00Z"
    earlier.reproducible = f"not checked (python3 docker/reproduce.py --cell {cell.id})"
    cache.put(earlier)
    record = tmp_path / ".cache" / "reproduce" / f"{cell.id}.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"cell": cell.id, "reproducible": True, "image": "sha256:abc"}))
    client = SimpleNamespace(images=SimpleNamespace(get=lambda tag: SimpleNamespace(id="sha256:abc")))
    settings = SimpleNamespace(
        root=tmp_path,
        client=client,
        cache=cache,
        use_cache=True,
        indexes="",
        progress=Progress(io.StringIO()),
        tag=lambda cell, target=None: f"accel:{cell.id}",
    )
    row = pipeline.run_cell(settings, cell)  # type: ignore[arg-type]
    assert (row.status, row.measured) == ("pass", "2026-12-01T00:00:00Z"), "the cached result stands"
    assert row.reproducible == "yes (2 no-cache builds, same image ID)"
    client.images.get = lambda tag: SimpleNamespace(id="sha256:rebuilt")
    assert pipeline.run_cell(settings, cell).reproducible.startswith("not checked for this image")  # type: ignore[arg-type]


def test_host_envs_become_the_reports_host_table_and_keep_their_last_row(tmp_path: Path, matrix: Matrix) -> None:
    from accel.matrix import hosts

    results = tmp_path / ".tox" / "host-results"
    results.mkdir(parents=True)
    for env in ("py312", "py313", "type"):
        (results / f"{env}.json").write_text(json.dumps({"python": "3.12.1", "torch": "torch 2.13.0: CUDA build"}))
    (results / "py312.xml").write_text(JUNIT)  # py313 died before pytest wrote its report
    fresh = hosts.collect(results)
    assert [r.env for r in fresh] == ["py312", "py313"], "only the test envs"
    assert fresh[0].status == "fail (tests: 2 of 3 failed)" and fresh[0].tests == "1 passed, 2 failed, 1 skipped"
    assert "tests.test_b::test_bad[2]" in fresh[0].failing
    assert fresh[1].status == "fail (pytest wrote no report)"
    earlier = {
        "env": "py310",
        "python": "3.10.13",
        "torch": "t",
        "status": "pass",
        "tests": "9 passed",
        "measured": "x",
    }
    rows = hosts.merge([earlier, {**earlier, "env": "py312"}], fresh)
    assert [(r.env, r.status[:4]) for r in rows] == [("py310", "pass"), ("py312", "fail"), ("py313", "fail")]
    row = Outcome.start(matrix.default)
    row.status = "pass"
    meta = {"revision": "abc", "generated": "now", "host": "h", "docker": "d"}
    md, js = report.write(tmp_path, "COMPATIBILITY", [row], meta, hosts=rows)
    text = md.read_text()
    assert "## Host interpreters (tox)" in text and "| py310 | 3.10.13 | t | pass | 9 passed | x |" in text
    assert [h["env"] for h in json.loads(js.read_text())["hosts"]] == ["py310", "py312", "py313"]


def test_torch_wheel_record_writes_the_env_and_drops_a_stale_junit_report(tmp_path: Path) -> None:
    record = tmp_path / "host-results" / "py311.json"
    record.parent.mkdir()
    record.with_suffix(".xml").write_text(JUNIT)
    proc = subprocess.run(
        [sys.executable, "-m", "accel.matrix.torch_wheel", "--record", str(record)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(record.read_text())
    assert data["python"] == ".".join(map(str, sys.version_info[:3])) and data["torch"].startswith("torch ")
    assert not record.with_suffix(".xml").exists()


def test_a_measured_cell_leaves_no_image_behind_but_the_default_keeps_its_own(
    tmp_path: Path, matrix: Matrix, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    from types import SimpleNamespace

    from accel.matrix.outcome import Progress

    removed: list[str] = []
    monkeypatch.setattr(pipeline, "build", lambda *args, **kwargs: 1)
    monkeypatch.setattr(pipeline.engine, "remove_image", lambda client, tag: removed.append(tag) or True)
    suite = stages.SuiteResult(3, 0, 0, (), 1.0)
    for name, value in {"import_time": 1.0, "torch_build": "t", "two_process_job": 1.0, "run_suite": suite}.items():
        monkeypatch.setattr(pipeline.stages, name, lambda *args, value=value, **kwargs: value)
    client = SimpleNamespace(images=SimpleNamespace(get=lambda tag: SimpleNamespace(id="sha256:x")))
    settings = SimpleNamespace(
        root=tmp_path, client=client, progress=Progress(io.StringIO()), install_time=False, reuse_images=False,
        keep_images=False, repo="accel", gpu=False,
    )  # fmt: skip
    settings.tag = lambda cell, target=None: pipeline.Settings.tag(settings, cell, target)  # type: ignore[arg-type]
    cuda = next(c for c in matrix.cells if c.id == "py3.12-cuda")
    pipeline.measure(settings, cuda, Outcome.start(cuda))  # type: ignore[arg-type]
    assert removed == ["accel:py3.12-cuda-dev", "accel:py3.12-cuda", "accel-cache:py3.12-cuda-builder"]
    removed.clear()
    pipeline.measure(settings, matrix.default, Outcome.start(matrix.default))  # type: ignore[arg-type]
    assert removed == [f"accel:{matrix.default.id}-dev"], "compose and CI use the default cell's image and cache"
