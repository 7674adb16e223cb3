"""The accel CLI through a real subprocess (`python -m accel`): help, config, env, test, bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from conftest import run_cli


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty XDG config home; returns the user config path."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("ACCEL_CONFIG_FILE", raising=False)
    return tmp_path / "xdg" / "accel" / "config.yaml"


def _one_line_error(result, code=2):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("accel: error: ")
    return lines[0]


def test_help_lists_commands_without_importing_torch():
    code = (
        "import sys; from accel.commands import main; "
        "codes = [main(['--help']), main(['config', '--help']), main(['launch', '--help']), main(['env'])]; "
        "assert codes == [0, 0, 0, 0], codes; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    for command in ("launch", "config", "env", "test"):
        assert f"  {command}" in result.stdout
    assert "--nproc-per-node" in result.stdout
    assert "num_processes" in result.stdout


def test_unknown_command_and_option_suggest_the_closest(home):
    assert "did you mean 'launch'" in _one_line_error(run_cli("lanch"))
    assert "did you mean '--mixed_precision'" in _one_line_error(run_cli("launch", "--mixed_precison", "bf16", "x.py"))


def test_config_default_set_show(home):
    result = run_cli("config", "default", "--mixed_precision", "bf16")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(home.read_text()) == {"version": 1, "mixed_precision": "bf16"}
    again = run_cli("config", "default", "--mixed_precision", "fp16")
    assert again.returncode == 0
    assert "kept it" in again.stderr
    assert yaml.safe_load(home.read_text())["mixed_precision"] == "bf16"
    result = run_cli("config", "set", "num_processes=2", "use_cpu=true", "mixed_precision=no")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(home.read_text()) == {
        "version": 1,
        "num_processes": 2,
        "mixed_precision": "no",
        "use_cpu": True,
    }
    shown = run_cli("config", "show")
    assert shown.returncode == 0
    assert f"# {home} (user file)" in shown.stdout
    assert "num_processes: 2" in shown.stdout
    assert "did you mean 'num_processes'" in _one_line_error(run_cli("config", "set", "num_procs=2"))
    assert "integer >= 1" in _one_line_error(run_cli("config", "set", "num_processes=0"))


def test_config_questionnaire_with_piped_answers(home):
    answers = "1\nyes\n2\nbf16\n\n\n"
    cmd = [sys.executable, "-m", "accel", "config"]
    result = subprocess.run(cmd, input=answers, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    written = yaml.safe_load(home.read_text())
    assert written == {
        "version": 1,
        "num_processes": 2,
        "num_machines": 1,
        "mixed_precision": "bf16",
        "use_cpu": True,
        "gradient_accumulation_steps": 1,
        "strategy": "ddp",
    }
    bad = subprocess.run(cmd, input="1\nyes\nmany\n", capture_output=True, text=True, check=False)
    assert "num_processes must be an integer >= 1, got 'many'" in _one_line_error(bad)


def test_env_reports_values_with_sources_and_survives_a_bad_config(home, tmp_path):
    home.parent.mkdir(parents=True)
    home.write_text("num_processes: 2\n")
    result = run_cli("env", env={"ACCEL_MIXED_PRECISION": "bf16", "PATH": "/nonexistent"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for fragment in ("accel: ", "torch: ", "python: ", "memory: ", "/dev/shm: ", "gpus: ", "cluster: "):
        assert fragment in out
    assert f"config file: {home} (user file)" in out
    assert f"file {home}" in next(line for line in out.splitlines() if line.strip().startswith("num_processes"))
    assert "ACCEL_MIXED_PRECISION" in next(line for line in out.splitlines() if line.strip().startswith("mixed_prec"))
    assert "accel launch would run: 2 process(es) x 1 machine(s) on CPU, world size 2" in out
    assert "accel launch would fail: GPUs were requested" in run_cli("env", env={"ACCEL_USE_CPU": "0"}).stdout
    kubeflow = run_cli("env", env={"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "m", "MASTER_PORT": "1"})
    assert "Kubeflow PyTorchJob pod 1 of 2" in kubeflow.stdout
    home.write_text("num_processes: [2\n")
    broken = run_cli("env")
    assert broken.returncode == 0
    assert "malformed YAML" in broken.stdout


def test_launch_rejects_malformed_config_with_line_number(home, tmp_path):
    home.parent.mkdir(parents=True)
    home.write_text("version: 1\nnum_processes: 2\nmixed_precision: [bf16\n")
    script = tmp_path / "s.py"
    script.write_text("print('never')\n")
    line = _one_line_error(run_cli("launch", str(script)))
    assert str(home) in line
    assert "line 4" in line or "line 3" in line
    home.write_text("version: 1\nnum_proceses: 2\n")
    line = _one_line_error(run_cli("launch", str(script)))
    assert "line 2: unknown key 'num_proceses' (did you mean 'num_processes'?)" in line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--num_processes", "2", "--nproc-per-node", "3", "{script}"], "conflicting options"),
        (["--num_processes", "-1", "{script}"], "num_processes must be an integer >= 1"),
        (["{missing}"], "not found"),
        (["{dir}"], "is a directory, not a script"),
        ([], "no script given"),
        (["--gpu", "{script}"], "GPUs were requested (--gpu) but this machine has none"),
    ],
)
def test_launch_bad_input_is_one_line(home, tmp_path, args, fragment):
    script = tmp_path / "s.py"
    script.write_text("print('never')\n")
    values = {"script": str(script), "missing": str(tmp_path / "nope.py"), "dir": str(tmp_path)}
    result = run_cli("launch", *[a.format(**values) for a in args])
    expected_code = 1 if fragment.startswith("GPUs") else 2
    assert fragment in _one_line_error(result, expected_code)
    assert "never" not in result.stdout


@pytest.mark.e2e
@pytest.mark.multiprocess
def test_accel_test_passes_on_two_cpu_ranks(home):
    result = run_cli("test", "--num_processes", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("world size", "collectives", "data sharding", "training equivalence"):
        assert f"accel test: {check}" in result.stdout
    assert "FAILED" not in result.stdout
    assert "accel test: PASSED" in result.stdout
