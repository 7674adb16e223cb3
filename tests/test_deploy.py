"""deploy/: the SLURM batch script forwards the preemption signal to the ranks.

`--signal=B:TERM@120` signals the batch shell only. The script runs here under bash with a fake
`srun` and `scontrol` first on PATH: the fake srun records the signals it receives, as the real
one would forward them to its tasks (the launchers, which forward them to every rank).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SBATCH = ROOT / "deploy" / "slurm" / "train.sbatch"

FAKE_SRUN = """\
#!{python}
# Records its arguments and every signal it receives; exits as the launchers would.
import json, os, signal, sys, time
log = os.environ["FAKE_SRUN_LOG"]
def record(line):
    with open(log, "a") as f:
        f.write(line + "\\n")
codes = {{signal.SIGTERM: 143, signal.SIGINT: 130, signal.SIGUSR1: 0}}
def handle(signum, frame):
    record("signal " + signal.Signals(signum).name)
    time.sleep(0.2)  # the ranks save a checkpoint
    record("exit")
    sys.exit(codes[signum])
for signum in codes:
    signal.signal(signum, handle)
record("pid " + str(os.getpid()))
record("argv " + json.dumps(sys.argv[1:]))
record("started")
while True:
    time.sleep(0.05)
"""

FAKE_SCONTROL = """\
#!/bin/sh
# scontrol show hostnames LIST -> one host a line
[ "$1 $2" = "show hostnames" ] && printf 'node-a\\nnode-b\\n'
"""


@pytest.fixture
def slurm(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN.format(python=sys.executable))
    (bin_dir / "scontrol").write_text(FAKE_SCONTROL)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    log = tmp_path / "srun.log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_SRUN_LOG": str(log),
        "SLURM_JOB_NODELIST": "node-[a-b]",
        "SLURM_JOB_ID": "4242",
        "SLURM_NNODES": "2",
        "SLURM_NODEID": "0",
    }
    try:
        yield env, log
    finally:  # never leave a fake srun behind, whatever the script did
        for line in log.read_text().splitlines() if log.exists() else []:
            if line.startswith("pid "):
                try:
                    os.kill(int(line.split()[1]), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _start(env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with (cwd / "sbatch.out").open("wb") as out:
        proc = subprocess.Popen(["bash", str(SBATCH)], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while "started" not in (log.read_text() if log.exists() else ""):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"the fake srun never started:\n{(cwd / 'sbatch.out').read_text()}")
        time.sleep(0.05)
    return proc


def _finish(proc: subprocess.Popen[bytes], cwd: Path) -> tuple[int, str]:
    try:
        returncode = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return returncode, (cwd / "sbatch.out").read_text()


@pytest.mark.parametrize(("signum", "expected"), [(signal.SIGTERM, 143), (signal.SIGUSR1, 0)], ids=["TERM", "USR1"])
def test_batch_shell_forwards_the_preemption_signal_to_srun(
    slurm: tuple[dict[str, str], Path], tmp_path: Path, signum: signal.Signals, expected: int
) -> None:
    env, log = slurm
    proc = _start(env, log, tmp_path)
    proc.send_signal(signum)  # what --signal=B:TERM@120 (or B:USR1) does: the batch shell only
    returncode, out = _finish(proc, tmp_path)
    lines = log.read_text().splitlines()
    assert f"signal {signum.name}" in lines, f"srun never received {signum.name}: {lines}\n{out}"
    assert lines[-1] == "exit", f"the batch shell did not wait for srun to finish: {lines}\n{out}"
    assert returncode == expected, out  # srun's status: the ranks' exit code


def test_batch_script_launches_one_launcher_per_node(slurm: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    env, log = slurm
    proc = _start(env, log, tmp_path)
    proc.terminate()
    _finish(proc, tmp_path)
    argv = next(line for line in log.read_text().splitlines() if line.startswith("argv "))
    assert "--kill-on-bad-exit=1" in argv
    assert "--main_process_ip node-a" in argv, argv
