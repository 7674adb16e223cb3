"""Reproducible images: hash-checked wheels, identical rebuilds, drift detection, derived images.

The fast tests need neither Docker nor the network. The others are the long suite (`pytest
--long`, tox -e long): they build the py3.11 CPU image through docker/bootstrap.py, the path
users take.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT
from docker_helpers import CELL, IMAGE, Docker, require_docker

WHEELHOUSE = ROOT / ".cache" / "wheelhouse" / CELL
DERIVED = "accel-derived:test"


def docker_module(name: str) -> object:
    sys.path.insert(0, str(ROOT / "docker"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "docker"))


def test_a_wheel_with_another_hash_is_named_with_both_hashes(tmp_path: Path) -> None:
    wheelhouse = docker_module("wheelhouse")
    lockfile = docker_module("lockfile")
    good, bad = b"the locked wheel", b"a tampered wheel"
    entries = [
        lockfile.Entry("filelock", "4.3.1", hashlib.sha256(good).hexdigest(), "filelock-4.3.1-py3-none-any.whl"),
        lockfile.Entry("jinja2", "3.1.6", hashlib.sha256(good).hexdigest(), "jinja2-3.1.6-py3-none-any.whl"),
    ]
    (tmp_path / entries[0].filename).write_bytes(bad)
    found = wheelhouse.problems({"id": CELL}, entries, tmp_path)
    assert [entry.name for entry, _ in found] == ["filelock", "jinja2"]
    assert found[0][1] == (
        f"cell {CELL}: filelock 4.3.1: {tmp_path / entries[0].filename} has sha256 {hashlib.sha256(bad).hexdigest()}, "
        f"the lock has {entries[0].sha256} (tampered or re-published)"
    )
    assert found[1][1].endswith(f"jinja2-3.1.6-py3-none-any.whl is not in {tmp_path}")


def test_normalised_layers_are_sorted_clamped_and_keep_hard_links(tmp_path: Path) -> None:
    import io
    import tarfile

    normalise = docker_module("normalise")

    def layer(order: list[str], mtime: int) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in order:
                info = tarfile.TarInfo(name)
                if name == "a-link":
                    info.type, info.linkname = tarfile.LNKTYPE, "z-file"
                    tar.addfile(info)
                    continue
                data = name.encode()
                info.size, info.mtime = len(data), mtime
                info.pax_headers = {"atime": "1.5", "ctime": "2.5"}
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    digests = []
    for order, mtime in ((["z-file", "b", "a-link"], 2_000_000_000), (["b", "z-file", "a-link"], 2_100_000_000)):
        out = io.BytesIO()
        digests.append(normalise.rewrite_layer(io.BytesIO(layer(order, mtime)), out, 1_700_000_000))
        with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
            members = tar.getmembers()
            assert [m.name for m in members] == ["a-link", "b", "z-file"]
            assert members[0].isfile() and members[2].islnk() and members[2].linkname == "a-link"
            assert {m.mtime for m in members} == {1_700_000_000}
            assert all("atime" not in m.pax_headers for m in members)
            handle = tar.extractfile(members[0])
            assert handle is not None and handle.read() == b"z-file"
    assert digests[0] == digests[1]


# --- the long suite ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built() -> Iterator[Docker]:
    require_docker()
    harness = Docker()
    harness.build()
    try:
        yield harness
    finally:
        harness.cleanup()


@pytest.mark.long
@pytest.mark.docker
@pytest.mark.timeout(600)
def test_a_tampered_wheel_stops_the_build_naming_the_package(tmp_path: Path) -> None:
    require_docker()
    wheel = next(WHEELHOUSE.glob("filelock-*.whl"))
    aside = tmp_path / wheel.name
    tampered = tmp_path / "tampered.whl"
    shutil.copy2(wheel, tampered)
    with tampered.open("ab") as handle:
        handle.write(b"\0")
    os.replace(wheel, aside)  # the original moves aside untouched (the wheelhouse may be hard links)
    try:
        shutil.copy2(tampered, wheel)
        result = Docker().cmd(sys.executable, "docker/bootstrap.py", "--cell", CELL, "--force", "image", timeout=300)
    finally:
        os.replace(aside, wheel)
    assert result.returncode == 2, result.output
    line = f"has sha256 {hashlib.sha256(tampered.read_bytes()).hexdigest()}, the lock has "
    assert f"bootstrap: cell {CELL}: filelock " in result.output and line in result.output, result.output
    assert "docker build" not in result.output, "the build started although a wheel was altered"


@pytest.mark.long
@pytest.mark.docker
@pytest.mark.timeout(3600)
def test_two_no_cache_builds_give_the_same_venv_digest_and_image_id(tmp_path: Path) -> None:
    require_docker()
    out = tmp_path / "reproduce.json"
    result = Docker().cmd(sys.executable, "docker/reproduce.py", "--cell", CELL, "--json", str(out), timeout=3500)
    print(result.output[-4000:])
    assert result.returncode == 0, result.output[-6000:]
    report = json.loads(out.read_text())
    assert report["reproducible"] is True
    assert "reproducible: yes" in result.output


@pytest.mark.long
@pytest.mark.docker
@pytest.mark.timeout(1800)
def test_pip_install_in_a_container_is_reported_as_drift(built: Docker) -> None:
    ok = built.docker("run", "--rm", "--network", "host", IMAGE, "--verify").check().output
    assert f"environment: locked {CELL}, lock " in ok and ok.strip().endswith("(matches)"), ok
    labels = built.labels()
    assert labels["org.accel.venv.sha256"][:12] in ok and labels["org.accel.lock.sha256"][:12] in ok
    wheel = next(WHEELHOUSE.glob("iniconfig-*.whl"))
    script = f"pip install --no-deps --no-index -q /wheels/{wheel.name} && accel env --verify"
    drift = built.docker(
        "run", "--rm", "--network", "host", "--user", "0", "-v", f"{WHEELHOUSE}:/wheels:ro", "--entrypoint", "sh",
        IMAGE, "-c", script,
    )  # fmt: skip
    assert drift.returncode == 1, drift.output
    assert "(drift: " in drift.output and "distributions added: iniconfig" in drift.output, drift.output


@pytest.mark.long
@pytest.mark.docker
@pytest.mark.timeout(1800)
def test_derived_image_runs_the_users_script_on_two_processes_as_non_root(built: Docker, tmp_path: Path) -> None:
    context = tmp_path / "derived"
    shutil.copytree(ROOT / "examples" / "derived-image", context, ignore=shutil.ignore_patterns("wheels", "output"))
    download = [sys.executable, "-m", "pip", "download", "-q", "--require-hashes", "--no-deps", "--only-binary=:all:"]
    built.cmd(*download, "-r", str(context / "requirements.txt"), "-d", str(context / "wheels")).check()
    try:
        built.docker("build", "--network", "host", "-t", DERIVED, str(context), timeout=900).check()
        output = tmp_path / "output"
        output.mkdir()
        output.chmod(0o777)
        run = built.docker(
            "run", "--rm", "--init", "--shm-size", "2g", "--network", "host", "-v", f"{output}:/output", DERIVED,
            timeout=600,
        ).check()  # fmt: skip
        result = json.loads((output / "derived.json").read_text())
        assert result["num_processes"] == 2 and result["uid"] != 0 and result["six"] == "1.17.0", (result, run.output)
        verify = built.docker("run", "--rm", DERIVED, "--verify").check().output
        assert verify.strip().endswith("(extended: +six 1.17.0)"), verify
    finally:
        built.docker("rmi", "-f", DERIVED)


@pytest.mark.docker
@pytest.mark.timeout(1800)
def test_labels_carry_lock_and_venv_digests_and_no_host_paths(built: Docker) -> None:
    labels = built.labels()
    lock = ROOT / "docker" / "locks" / CELL / "requirements.txt"
    assert labels["org.accel.lock.sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    assert len(labels["org.accel.venv.sha256"]) == 64
    leaks = {k: v for k, v in labels.items() if str(Path.home()) in v or str(ROOT) in v or "/root/" in v}
    assert not leaks, leaks


@pytest.mark.docker
@pytest.mark.timeout(1800)
def test_an_unchanged_checkout_reuses_the_image(built: Docker) -> None:
    before = built.docker("image", "inspect", "-f", "{{.Id}}", IMAGE).check().output.strip()
    again = built.cmd(sys.executable, "docker/bootstrap.py", "--cell", CELL, "image", timeout=600).check()
    assert f"{IMAGE}: up to date" in again.output, again.output
    assert built.docker("image", "inspect", "-f", "{{.Id}}", IMAGE).check().output.strip() == before
    dangling = built.docker("images", "-q", "--filter", "dangling=true", "--filter", "label=org.accel.managed=1")
    raw = built.docker("images", "-q", "--filter", f"reference=accel-cache:{CELL}-raw-*")
    assert not raw.output.split(), "the raw (unnormalised) build was left behind"
    print(f"[docker] reuse check {again.seconds:.1f} s; dangling accel images: {len(dangling.output.split())}")
