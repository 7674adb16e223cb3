"""accel launch: argument parsing, planning (no processes), and real launches through the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import ROOT, free_port, run_cli

from accel.config import Setting, resolve
from accel.exceptions import ConfigError, LaunchError
from accel.launch.arguments import parse_args
from accel.launch.plan import announcement, plan

SCRIPTS = ROOT / "tests" / "scripts"
NO_SYSTEM = Path("/nonexistent/accel/config.yaml")


def _resolve(tmp_path, **flags):
    return resolve(
        {k: Setting(v, f"--{k}") for k, v in flags.items()}, {"XDG_CONFIG_HOME": str(tmp_path)}, system=NO_SYSTEM
    )


# ---------------------------------------------------------------- parsing
def test_options_stop_at_the_script():
    request = parse_args(["--num_processes", "2", "train.py", "--num_processes", "5", "--", "-m", "x"])
    assert request.flags["num_processes"] == Setting(2, "--num_processes")
    assert (request.target, request.script_args) == ("train.py", ["--num_processes", "5", "--", "-m", "x"])


def test_double_dash_ends_options_and_module_flag():
    assert parse_args(["--cpu", "--", "--weird.py", "a"]).target == "--weird.py"
    request = parse_args(["-m", "pkg.train", "--lr=1"])
    assert (request.module, request.target, request.script_args) == (True, "pkg.train", ["--lr=1"])


def test_every_spelling_is_accepted():
    request = parse_args(
        [
            "--nproc-per-node=2",
            "--nnodes",
            "2",
            "--node_rank",
            "1",
            "--master-addr",
            "10.0.0.1",
            "--master_port=1234",
            "--rdzv-backend",
            "static",
            "--rdzv_id",
            "job",
            "--max-restarts",
            "3",
            "--monitor_interval",
            "0.5",
            "--mixed-precision",
            "bf16",
            "--gradient_accumulation_steps",
            "4",
            "--use_fsdp",
            "--cpu",
            "--config-file",
            "c.yaml",
            "-q",
            "s.py",
        ]
    )
    values = {key: setting.value for key, setting in request.flags.items()}
    assert values == {
        "num_processes": 2,
        "num_machines": 2,
        "machine_rank": 1,
        "main_process_ip": "10.0.0.1",
        "main_process_port": 1234,
        "rdzv_backend": "static",
        "rdzv_id": "job",
        "max_restarts": 3,
        "monitor_interval": 0.5,
        "mixed_precision": "bf16",
        "gradient_accumulation_steps": 4,
        "strategy": "fsdp",
        "use_cpu": True,
    }
    assert (request.config_file, request.quiet) == ("c.yaml", True)
    endpoint = parse_args(["--rdzv-endpoint", "host:29400", "s.py"]).flags
    assert (endpoint["main_process_ip"].value, endpoint["main_process_port"].value) == ("host", 29400)


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["--num_processes", "2", "--nproc-per-node", "3", "s.py"], "conflicting options --num_processes 2 and"),
        (["--cpu", "--gpu", "s.py"], "conflicting options"),
        (["--num_proceses", "2", "s.py"], "unknown option '--num_proceses' .did you mean '--num_processes'"),
        (["--num_processes", "0", "s.py"], "--num_processes: num_processes must be an integer >= 1, got 0"),
        (["--num_processes", "-1", "s.py"], "got -1"),
        (["--num_processes"], "needs a value"),
        (["--cpu"], "no script given"),
        (["--nnodes", "1:2", "s.py"], "elastic range"),
    ],
)
def test_bad_arguments_are_one_line_config_errors(argv, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        parse_args(argv)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- planning (pure)
def test_plan_without_settings_on_cpu_is_one_announced_process(tmp_path):
    r = _resolve(tmp_path)
    p = plan(r, gpu_count=0, pick_port=lambda host: 40000)
    assert (p.nproc_per_node, p.use_cpu, p.host, p.port, p.world_size) == (1, True, "127.0.0.1", 40000, 1)
    line = announcement(r, p, "train.py")
    assert "config none: built-in defaults" in line
    assert "1 process per machine by default (no GPU found" in line
    assert "\n" not in line


def test_plan_exports_the_worker_contract(tmp_path):
    r = _resolve(tmp_path, num_processes=2, mixed_precision="bf16", gradient_accumulation_steps=4, project_dir="/p")
    p = plan(r, gpu_count=0, pick_port=lambda host: 40000)
    assert p.exports["ACCEL_MIXED_PRECISION"] == "bf16"
    assert p.exports["ACCEL_GRADIENT_ACCUMULATION_STEPS"] == "4"
    assert p.exports["ACCEL_USE_CPU"] == "1"
    assert p.exports["ACCEL_STRATEGY"] == "ddp"
    assert p.exports["ACCEL_REQUESTED_WORLD_SIZE"] == "2"
    assert p.exports["ACCEL_CONFIG_SOURCE"] == "none"
    assert p.exports["ACCEL_AUTO_RESUME"] == "1"
    assert p.exports["ACCEL_PROJECT_DIR"] == "/p"
    assert p.rdzv_configs["is_host"] is True


def test_plan_refuses_gpus_that_are_not_there(tmp_path):
    with pytest.raises(LaunchError, match=r"GPUs were requested \(--use_cpu\).*pass --cpu"):
        plan(_resolve(tmp_path, use_cpu=False), gpu_count=0)
    with pytest.raises(LaunchError, match=r"4 processes per machine were requested.*has 2 GPU"):
        plan(_resolve(tmp_path, num_processes=4), gpu_count=2)
    assert plan(_resolve(tmp_path), gpu_count=2, pick_port=lambda h: 1).nproc_per_node == 2
    assert plan(_resolve(tmp_path, num_processes=4, use_cpu=True), gpu_count=2, pick_port=lambda h: 1).use_cpu


def test_plan_replaces_a_busy_port_on_one_machine_and_says_so(tmp_path):
    p = plan(
        _resolve(tmp_path, main_process_port=29500),
        gpu_count=0,
        port_free=lambda h, port: False,
        pick_port=lambda h: 41000,
    )
    assert p.port == 41000
    assert "port 29500 is busy; using free port 41000" in p.notes


def test_plan_rejects_a_foreign_address_on_one_machine(tmp_path):
    with pytest.raises(ConfigError, match=r"'192\.0\.2\.1' is not an address of this machine"):
        plan(_resolve(tmp_path, main_process_ip="192.0.2.1"), gpu_count=0)


def test_plan_multi_machine_rules(tmp_path):
    with pytest.raises(ConfigError, match=r"need the address of machine 0"):
        plan(_resolve(tmp_path, num_machines=2), gpu_count=0)
    with pytest.raises(ConfigError, match=r"machine_rank 2 .* must be below num_machines 2"):
        plan(_resolve(tmp_path, num_machines=2, machine_rank=2, main_process_ip="h"), gpu_count=0)
    with pytest.raises(ConfigError, match=r"works on one machine only"):
        plan(_resolve(tmp_path, num_machines=2, main_process_ip="h", main_process_port=0), gpu_count=0)
    p = plan(_resolve(tmp_path, num_machines=2, machine_rank=1, main_process_ip="10.1.1.1"), gpu_count=0)
    assert (p.port, p.rdzv_id, p.rdzv_configs["is_host"], p.local_addr) == (29500, "accel", False, None)
    # machines simulated on one host get distinct loopback addresses (containers can share launcher pids)
    sim = plan(_resolve(tmp_path, num_machines=2, machine_rank=1, main_process_ip="127.0.0.1"), gpu_count=0)
    assert (sim.host, sim.local_addr) == ("127.0.0.1", "127.0.0.2")
    static = plan(_resolve(tmp_path, num_machines=2, main_process_ip="h", rdzv_backend="static"), gpu_count=0)
    assert static.rdzv_configs["rank"] == 0
    assert "is_host" not in static.rdzv_configs


def test_launch_config_sets_every_field(tmp_path):
    import dataclasses

    from accel.launch.elastic import launch_config

    p = plan(_resolve(tmp_path, num_processes=2, max_restarts=1, shutdown_timeout=2.5), gpu_count=0)
    config = launch_config(p)
    assert (config.min_nodes, config.max_nodes, config.nproc_per_node) == (1, 1, 2)
    assert (config.rdzv_backend, config.max_restarts, config.start_method) == ("c10d", 1, "spawn")
    assert config.rdzv_endpoint == f"127.0.0.1:{p.port}"
    assert config.local_addr == "127.0.0.1"
    if "shutdown_timeout" in {f.name for f in dataclasses.fields(config)}:
        assert config.shutdown_timeout == 3


# ---------------------------------------------------------------- real launches
def _ranks(out: Path) -> dict[int, dict]:
    return {int(p.stem[4:]): json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))}


@pytest.mark.e2e
@pytest.mark.multiprocess
def test_a_rank_writes_each_line_in_one_piece(tmp_path):
    """Ranks start with -u; print() there wrote the text and the newline apart, and torch's prefixing
    tailer could catch a line in between and split it. The worker makes both streams line-buffered."""
    script = tmp_path / "streams_state.py"
    script.write_text(
        "import sys\nfor s in (sys.stdout, sys.stderr):\n    print(s.line_buffering, s.write_through, file=s)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-u", "-m", "accel.launch.worker", str(script)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("True False\n", "True False\n")


def test_two_cpu_ranks_with_config_file_and_untouched_script_args(tmp_path):
    config = tmp_path / "xdg" / "accel" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("version: 1\nmixed_precision: bf16\ngradient_accumulation_steps: 4\n")
    out = tmp_path / "out"
    out.mkdir()
    script_args = ["--num_processes", "7", "--", "--lr=1", "-m"]
    result = run_cli(
        "launch",
        "--num_processes",
        "2",
        str(SCRIPTS / "world.py"),
        str(out),
        *script_args,
        env={"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "ACCEL_STRATEGY": "ddp"},
    )
    assert result.returncode == 0, result.stderr
    assert f"accel launch: config {config} (user file); 2 processes on CPU (gloo)" in result.stderr
    ranks = _ranks(out)
    assert sorted(ranks) == [0, 1]
    for rank, seen in ranks.items():
        assert (seen["world_size"], seen["backend"], seen["distributed_type"]) == (2, "gloo", "MULTI_CPU")
        assert seen["sum"] == 3.0
        assert seen["argv"] == [str(SCRIPTS / "world.py"), str(out), *script_args]
        assert seen["main"] == "__main__"
        assert seen["env"]["ACCEL_MIXED_PRECISION"] == "bf16"
        assert seen["env"]["ACCEL_GRADIENT_ACCUMULATION_STEPS"] == "4"
        assert seen["env"]["ACCEL_USE_CPU"] == "1"
        assert seen["env"]["ACCEL_REQUESTED_WORLD_SIZE"] == "2"
        assert seen["env"]["ACCEL_CONFIG_SOURCE"] == str(config)
        assert seen["env"]["GLOO_SOCKET_IFNAME"] == "lo"
        assert seen["env"]["TORCH_CPP_LOG_LEVEL"] is None
        assert seen["local_rank"] == rank
    assert ranks[0]["params"] == ranks[1]["params"]


@pytest.mark.e2e
def test_no_config_announces_built_in_defaults_and_runs_one_process_as_module(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("launch", "-m", "world", str(out), env={"XDG_CONFIG_HOME": str(tmp_path)}, cwd=SCRIPTS)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("accel launch:"))
    assert "config none: built-in defaults" in line
    assert "1 process per machine by default (no GPU found; set --num_processes)" in line
    ranks = _ranks(out)
    assert list(ranks) == [0]
    assert ranks[0]["world_size"] == 1
    assert ranks[0]["env"]["ACCEL_CONFIG_SOURCE"] == "none"


def test_failure_report_puts_the_rank_that_raised_before_the_ranks_the_launcher_stopped(tmp_path):
    """torch stamps a stopped rank to the whole second; a sidecar's sub-second time must still come first."""
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    from accel.launch.failures import SIDECAR, describe

    now = time.time()
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / SIDECAR).write_text(json.dumps({"traceback": "ValueError: boom\n", "time": now, "pid": 11}))
    stopped = ProcessFailure(local_rank=0, pid=10, exitcode=-signal.SIGTERM, error_file="<N/A>")
    stopped.timestamp = int(now)  # earlier than the sidecar's time within the same second
    raised = ProcessFailure(local_rank=1, pid=11, exitcode=1, error_file="<N/A>")
    message, code = describe({0: stopped, 1: raised}, tmp_path)
    assert message.splitlines()[0].startswith("rank 1 ") and "boom" in message
    assert message.splitlines()[-1] == "stopped by the launcher: rank 0 (SIGTERM)"
    assert code == 1


@pytest.mark.e2e
@pytest.mark.multiprocess
def test_crashing_rank_traceback_comes_first(tmp_path):
    result = run_cli(
        "launch", "--num_processes", "2", str(SCRIPTS / "crash.py"), env={"XDG_CONFIG_HOME": str(tmp_path)}
    )
    assert result.returncode == 1
    report = result.stderr[result.stderr.index("accel: error:") :]
    first_line = report.splitlines()[0]
    assert first_line.startswith("accel: error: rank 1 (host ")
    assert "exited with code 1:" in first_line
    assert report.index("ValueError: rank 1 exploded") < report.index("rank 0")
    assert 'crash.py", line' in report
    assert "runpy" not in report


@pytest.mark.e2e
@pytest.mark.multiprocess
def test_two_machines_on_one_host_train_together(tmp_path):
    """Machine 0 is configured by flags, machine 1 like a Kubeflow pod (RANK/WORLD_SIZE/MASTER_*)."""
    from accel import env

    out = tmp_path / "out"
    out.mkdir()
    port = str(free_port())
    base = {**env.snapshot(), "XDG_CONFIG_HOME": str(tmp_path)}
    launch = [sys.executable, "-m", "accel", "launch", "--num_processes", "1"]
    machine0 = [*launch, "--num_machines", "2", "--machine_rank", "0", "--main_process_ip", "127.0.0.1"]
    machine0 += ["--main_process_port", port]
    pod1 = {**base, "RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    procs = [
        subprocess.Popen([*cmd, str(SCRIPTS / "world.py"), str(out)], stderr=subprocess.PIPE, text=True, env=environ)
        for cmd, environ in ((machine0, base), (launch, pod1))
    ]
    errors = [proc.communicate(timeout=180)[1] for proc in procs]
    for proc, err in zip(procs, errors, strict=True):
        assert proc.returncode == 0, err
    assert "1 process x 2 machines (this is machine 0)" in errors[0]
    assert "1 process x 2 machines (this is machine 1)" in errors[1]
    assert "machines from the pod's RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (Kubeflow)" in errors[1]
    ranks = _ranks(out)
    assert sorted(ranks) == [0, 1]
    assert {seen["world_size"] for seen in ranks.values()} == {2}
    assert {seen["sum"] for seen in ranks.values()} == {3.0}
    assert ranks[0]["params"] == ranks[1]["params"]


@pytest.mark.e2e
@pytest.mark.multiprocess
def test_max_restarts_restarts_the_group_after_a_failure(tmp_path):
    args = ["launch", "--num_processes", "2", "--max_restarts", "1", str(SCRIPTS / "flaky.py"), str(tmp_path)]
    result = run_cli(*args, env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "RuntimeError: first attempt fails" in result.stderr
    assert sorted(p.name for p in tmp_path.glob("rank*")) == ["rank0-attempt1", "rank1-attempt1"]


@pytest.mark.e2e
def test_unreachable_rendezvous_fails_in_bounded_time(tmp_path):
    start = time.monotonic()
    result = run_cli(
        "launch",
        "--num_machines",
        "2",
        "--machine_rank",
        "1",
        "--rdzv-endpoint",
        f"127.0.0.1:{free_port()}",
        "--rdzv_timeout",
        "2",
        str(SCRIPTS / "world.py"),
        str(tmp_path),
        env={"XDG_CONFIG_HOME": str(tmp_path)},
        timeout=60,
    )
    assert time.monotonic() - start < 45
    assert result.returncode == 1
    assert "accel: error: rendezvous at 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.e2e
@pytest.mark.multiprocess
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
def test_signals_reach_every_rank_and_leave_no_orphans(tmp_path, monkeypatch, sig):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    cmd = [
        sys.executable,
        "-m",
        "accel",
        "launch",
        "--num_processes",
        "2",
        "--shutdown_timeout",
        "5",
        str(SCRIPTS / "sleeper.py"),
        str(tmp_path),
    ]
    launcher = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while len(list(tmp_path.glob("pid*"))) < 2:
        assert launcher.poll() is None and time.monotonic() < deadline, "ranks did not start"
        time.sleep(0.1)
    pids = [int(p.read_text()) for p in tmp_path.glob("pid*")]
    launcher.send_signal(sig)
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 128 + sig, err
    assert f"stopped by {sig.name}" in err
    for pid in pids:
        alive = psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        assert not alive, f"rank process {pid} outlived the launcher"
