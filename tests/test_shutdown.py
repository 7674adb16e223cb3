"""Ranks leave in order at exit (accel.group): a final barrier on every group, then destroy_process_group.

Without it a gloo worker thread could drop its last finished work while the interpreter finalised
and abort the rank (``terminate called without an active exception``, SIGABRT) after a successful
run; a collective still in flight at the end of the script made that likely under CPU load.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.multiprocess]

RUNS = 50

SCRIPT = """\
import torch
import torch.distributed as dist
from accel import Accelerator

acc = Accelerator()
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
model, opt, loader = acc.prepare(model, opt, torch.utils.data.DataLoader(data, batch_size=8))
for x, y in loader:
    acc.backward(torch.nn.functional.mse_loss(model(x), y))
    opt.step()
    opt.zero_grad()
work = dist.all_reduce(torch.ones(1 << 16), async_op=True)  # still in flight when the script ends
print("done", acc.process_index, flush=True)
"""


def _launch(script: Path) -> subprocess.CompletedProcess[str]:
    env = {"ACCEL_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    return run_cli("launch", "--num_processes", "2", "--main_process_port", "0", str(script), env=env, timeout=600)


def _clean(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0 and "terminate called" not in result.stderr and "SIGABRT" not in result.stderr


@pytest.fixture
def cpu_hog() -> Iterator[int]:
    """One busy-looping process per core, for the duration of the test."""
    count = os.cpu_count() or 2
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield count
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_a_collective_in_flight_at_the_end_exits_cleanly(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    result = _launch(script)
    assert _clean(result), result.stderr
    assert "done 0" in result.stdout and "done 1" in result.stdout


FAILS_ON_RANK_1 = """\
import time
from accel import PartialState

def main():
    state = PartialState()
    if state.process_index == 1:
        raise ValueError("boom on rank 1")
    time.sleep(600)  # the launcher stops this rank once rank 1 has exited

if __name__ == "__main__":
    {call}
"""


@pytest.mark.parametrize("how", ["accel launch", "notebook_launcher"])
def test_a_rank_that_raises_exits_at_once_without_the_final_barrier(tmp_path: Path, how: str) -> None:
    call = (
        "main()"
        if how == "accel launch"
        else "from accel import notebook_launcher; notebook_launcher(main, num_processes=2)"
    )
    script = tmp_path / "fails.py"
    script.write_text(FAILS_ON_RANK_1.format(call=call))
    start = time.monotonic()
    if how == "accel launch":
        result = _launch(script)
    else:
        env = {**os.environ, "ACCEL_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
        env.pop("PYTEST_CURRENT_TEST", None)
        run = [sys.executable, str(script)]
        result = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - start
    assert result.returncode != 0 and "boom on rank 1" in result.stderr, result.stderr
    assert elapsed < 300, f"took {elapsed:.0f} s: rank 1 waited in a final barrier for rank 0"


@pytest.mark.long
@pytest.mark.timeout(RUNS * 600)
def test_fifty_consecutive_runs_under_a_cpu_hog_exit_cleanly(tmp_path: Path, cpu_hog: int) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    failures = []
    start = time.monotonic()
    for run in range(RUNS):
        result = _launch(script)
        if not _clean(result):
            failures.append(f"run {run}: exit {result.returncode}\n{result.stderr[-1500:]}")
        print(f"[shutdown] run {run + 1}/{RUNS}: {'ok' if _clean(result) else 'FAILED'}", flush=True)
    elapsed = time.monotonic() - start
    print(f"\n[shutdown] {RUNS - len(failures)}/{RUNS} clean runs under {cpu_hog} busy loops in {elapsed:.0f} s")
    assert not failures, "\n".join(failures)
