"""accel launch: Accelerate's and torchrun's remaining flags, their config-file twins, and rank-prefixed output."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT, run_cli

from accel.config import resolve
from accel.exceptions import ConfigError, LaunchError
from accel.launch import extras
from accel.launch.arguments import parse_args
from accel.launch.plan import announcement, plan

SCRIPTS = ROOT / "tests" / "scripts"
NO_SYSTEM = Path("/nonexistent/accel/config.yaml")


def _plan(tmp_path, argv: list[str], gpus: int = 0, config: str | None = None):
    request = parse_args([*argv, "s.py"])
    environ = {"XDG_CONFIG_HOME": str(tmp_path)}
    file = None
    if config is not None:
        file = tmp_path / "config.yaml"
        file.write_text(config)
    resolved = resolve(request.flags, environ, config_file=str(file) if file else None, system=NO_SYSTEM)
    p = plan(resolved, gpu_count=extras.visible_gpu_count(resolved, gpus), pick_port=lambda host: 4321)
    return resolved, extras.apply(resolved, p, request.launch, request.env)


def test_every_flag_parses_in_underscore_and_dash_spellings():
    underscore = parse_args(
        [
            "--tee",
            "3",
            "--log_dir",
            "L",
            "--redirects=1",
            "--local_ranks_filter",
            "0",
            "--role",
            "trainer",
            "--log_line_prefix_template",
            "[${rank}]",
            "--start_method",
            "fork",
            "--rdzv_conf",
            "a=1",
            "--gpu_ids",
            "0,1",
            "--same_network",
            "--debug",
            "--main_training_function",
            "main",
            "--enable_cpu_affinity",
            "--gradient_clipping",
            "1.0",
            "--env",
            "A=1",
            "--env",
            "B=2",
            "s.py",
        ]
    )
    dashed = parse_args(
        [
            "-t",
            "3",
            "--log-dir",
            "L",
            "-r",
            "1",
            "--local-ranks-filter",
            "0",
            "--role",
            "trainer",
            "--log-line-prefix-template",
            "[${rank}]",
            "--start-method",
            "fork",
            "--rdzv-conf",
            "a=1",
            "--gpu-ids",
            "0,1",
            "--same-network",
            "--debug",
            "--main-training-function",
            "main",
            "--enable-cpu-affinity",
            "--gradient-clipping",
            "1.0",
            "--env",
            "A=1",
            "--env",
            "B=2",
            "s.py",
        ]
    )
    assert underscore.launch == dashed.launch and underscore.env == dashed.env == ["A=1", "B=2"]
    assert {k: v.value for k, v in underscore.flags.items()} == {k: v.value for k, v in dashed.flags.items()}
    assert underscore.flags["gpu_ids"].value == "0,1" and underscore.flags["debug"].value is True
    with pytest.raises(ConfigError, match="given twice"):
        parse_args(["--tee", "1", "--tee", "2", "s.py"])


def test_flags_that_apply_here_reach_the_plan(tmp_path):
    _, p = _plan(
        tmp_path,
        [
            "--gpu",
            "--num_processes",
            "2",
            "--gpu_ids",
            "1,3",
            "--enable_cpu_affinity",
            "--debug",
            "--role",
            "trainer",
            "--start_method",
            "forkserver",
            "--rdzv_conf",
            "join_timeout=5,last_call_timeout=2",
            "--env",
            "FOO=bar",
            "--log_dir",
            str(tmp_path / "logs"),
        ],
        gpus=4,
    )
    assert p.exports["CUDA_VISIBLE_DEVICES"] == "1,3" and p.exports["ACCEL_DEBUG_MODE"] == "1"
    assert p.exports["FOO"] == "bar" and p.numa_binding == "node"
    assert (p.role, p.start_method) == ("trainer", "forkserver")
    assert p.rdzv_configs["join_timeout"] == "5" and p.rdzv_configs["last_call_timeout"] == "2"
    assert p.streams.tee == "3" and p.streams.log_dir == str(tmp_path / "logs")
    assert p.streams.prefix_template == extras.DEFAULT_PREFIX


def test_flags_that_cannot_apply_are_reported_in_the_launch_line(tmp_path):
    resolved, p = _plan(
        tmp_path,
        [
            "--cpu",
            "--gpu_ids",
            "0",
            "--enable_cpu_affinity",
            "--same_network",
            "--main_training_function",
            "main",
            "--gradient_clipping",
            "1.0",
        ],
    )
    line = announcement(resolved, p, "s.py")
    assert "\n" not in line
    for fragment in (
        "gpu_ids 0 not applied: the ranks run on the CPU",
        "enable_cpu_affinity not applied",
        "same_network has no effect",
        "main_training_function 'main' has no effect",
        "gradient_clipping 1.0 not applied",
    ):
        assert fragment in line
    assert "CUDA_VISIBLE_DEVICES" not in p.exports and p.numa_binding is None
    assert p.streams.tee == "0" and p.streams.prefix_template is None  # one process: plain output


def test_config_file_keys_behave_like_the_flags(tmp_path):
    config = (
        "gpu_ids: 1\ndebug: true\nenable_cpu_affinity: true\nsame_network: true\nmain_training_function: main\n"
        "num_processes: 1\nuse_cpu: false\n"
    )
    resolved, from_file = _plan(tmp_path, [], gpus=2, config=config)
    _, from_flags = _plan(
        tmp_path,
        [
            "--gpu",
            "--num_processes",
            "1",
            "--gpu_ids",
            "1",
            "--debug",
            "--enable_cpu_affinity",
            "--same_network",
            "--main_training_function",
            "main",
        ],
        gpus=2,
    )
    same = {k: v for k, v in from_file.exports.items() if k != "ACCEL_CONFIG_SOURCE"}
    assert same == {k: v for k, v in from_flags.exports.items() if k != "ACCEL_CONFIG_SOURCE"}
    assert from_file.numa_binding == from_flags.numa_binding == "node"
    assert from_file.notes == from_flags.notes and from_file.exports["CUDA_VISIBLE_DEVICES"] == "1"
    assert resolved.source("debug").startswith("file ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tee", "7"], "--tee '7': expected 0"),
        (["--redirects", "x"], "--redirects 'x'"),
        (["--local_ranks_filter", "a"], "expected local ranks like 0,1"),
        (["--start_method", "thread"], "expected one of spawn, fork, forkserver"),
        (["--env", "NOVALUE"], "expected NAME=VALUE"),
        (["--rdzv_conf", "novalue"], "expected key=value pairs"),
        (["--gpu_ids", "a,b"], "expected all or GPU indices"),
        (["--gpu_ids", "0,0"], "distinct GPU indices"),
        (["--role", " "], "--role needs a name"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_flag(tmp_path, argv, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        _plan(tmp_path, argv)


def test_gpu_ids_beyond_this_machine_fail_before_launch(tmp_path):
    with pytest.raises(LaunchError, match="names GPU 3 but this machine has 2"):
        _plan(tmp_path, ["--gpu", "--gpu_ids", "0,3"], gpus=2)


# ---------------------------------------------------------------- real launches
def _launch(tmp_path, *argv: str):
    result = run_cli("launch", "--cpu", *argv, "streams.py", env={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=SCRIPTS)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.multiprocess
def test_two_ranks_prefix_every_line_and_keep_per_rank_logs(tmp_path):
    logs = tmp_path / "logs"
    result = _launch(tmp_path, "--num_processes", "2", "--log_dir", str(logs), "--debug", "--env", "FOO=bar")
    out = result.stdout.splitlines()
    assert sorted(out) == sorted(f"[default{r}]:out {i} of rank {r}" for r in (0, 1) for i in range(3))
    err = [line for line in result.stderr.splitlines() if line.startswith("[default")]
    assert sorted(err) == [f"[default{r}]:err of rank {r} debug=1 foo=bar bar=None" for r in (0, 1)]
    assert "rank logs kept under" in result.stderr.splitlines()[0]
    for r in (0, 1):
        (stdout,) = logs.glob(f"*/attempt_0/{r}/stdout.log")
        assert stdout.read_text().splitlines() == [f"out {i} of rank {r}" for i in range(3)]
        (stderr,) = logs.glob(f"*/attempt_0/{r}/stderr.log")
        assert "err of rank" in stderr.read_text()


@pytest.mark.multiprocess
def test_rank_filter_prefix_template_role_and_redirects(tmp_path):
    result = _launch(
        tmp_path, "--num_processes", "2", "--local-ranks-filter", "1", "--role", "trainer"
    )  # only rank 1 reaches the console, with the role in its prefix
    assert sorted(result.stdout.splitlines()) == [f"[trainer1]:out {i} of rank 1" for i in range(3)]
    custom = _launch(tmp_path, "--num_processes", "2", "--log-line-prefix-template", "<${local_rank}> ", "-t", "1")
    assert sorted(custom.stdout.splitlines()) == sorted(f"<{r}> out {i} of rank {r}" for r in (0, 1) for i in range(3))
    assert not [line for line in custom.stderr.splitlines() if line.startswith("<")]  # tee 1: stdout only
    quiet = _launch(tmp_path, "--num_processes", "2", "--redirects", "3", "--log_dir", str(tmp_path / "r"))
    assert quiet.stdout == ""  # redirected to files only
    assert len(list((tmp_path / "r").glob("*/attempt_0/*/stdout.log"))) == 2


@pytest.mark.multiprocess
def test_one_process_keeps_plain_output_and_config_file_debug_reaches_the_rank(tmp_path):
    config = tmp_path / "accel" / "config.yaml"
    config.parent.mkdir()
    config.write_text("debug: true\nsame_network: true\n")
    result = _launch(tmp_path, "--env", "BAR=1")
    assert result.stdout.splitlines() == [f"out {i} of rank 0" for i in range(3)]
    assert "err of rank 0 debug=1 foo=None bar=1" in result.stderr
    assert "same_network has no effect" in result.stderr.splitlines()[0]


@pytest.mark.multiprocess
def test_notebook_launcher_takes_accelerates_rendezvous_and_prefix_arguments(monkeypatch, tmp_path, capfd):
    from conftest import free_port
    from parity_workers import notebook_hello

    from accel.launch.notebook import notebook_launcher

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    results = notebook_launcher(
        notebook_hello,
        num_processes=2,
        rdzv_endpoint=f"127.0.0.1:{free_port()}",
        rdzv_id="nb-job",
        rdzv_conf={"last_call_timeout": 1},
        log_line_prefix_template="<${rank}> ",
    )
    assert results == {0: "nb-job", 1: "nb-job"}
    lines = [line for line in capfd.readouterr().out.splitlines() if line.startswith("<")]
    assert sorted(lines) == ["<0> hello from 0", "<1> hello from 1"]
