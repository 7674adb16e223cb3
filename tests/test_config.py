"""accel.config: schema validation, file format, lookup order and the precedence rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from accel.config import (
    CONFIG_VERSION,
    KEYS,
    Setting,
    check_value,
    find_config_file,
    parse_text,
    read_config,
    resolve,
    split_endpoint,
    user_config_path,
    write_basic_config,
    write_config,
)
from accel.exceptions import ConfigError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- schema
@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("num_processes", "4", 4),
        ("use_cpu", "yes", True),
        ("use_cpu", "0", False),
        ("mixed_precision", "BF16", "bf16"),
        ("monitor_interval", "0.5", 0.5),
        ("num_machines", "2:2", 2),
        ("main_process_port", "0", 0),
    ],
)
def test_parse_text_accepts_valid_values(key, text, expected):
    assert parse_text(key, text, "test") == expected


@pytest.mark.parametrize(
    ("key", "text", "fragment"),
    [
        ("num_processes", "0", "integer >= 1, got 0"),
        ("num_processes", "-2", "integer >= 1, got -2"),
        ("num_processes", "two", "got 'two'"),
        ("main_process_port", "70000", "from 0 to 65535"),
        ("mixed_precision", "fp8", "one of no, bf16, fp16"),
        ("mixed_precision", "bf61", "did you mean 'bf16'"),
        ("monitor_interval", "0", "number > 0"),
        ("use_cpu", "maybe", "true or false"),
        ("num_machines", "1:4", "elastic range"),
    ],
)
def test_parse_text_rejects_bad_values_with_origin_and_rule(key, text, fragment):
    with pytest.raises(ConfigError, match=r"^--flag: ") as info:
        parse_text(key, text, "--flag")
    assert fragment in str(info.value)


def test_check_value_is_strict_about_yaml_types():
    assert check_value("mixed_precision", False, "f") == "no"  # YAML 1.1 reads a bare `no` as false
    assert check_value("monitor_interval", "1e-3", "f") == 0.001
    assert check_value("shutdown_timeout", 5, "f") == 5.0
    for key, value in [("num_processes", True), ("num_processes", "2"), ("use_cpu", "yes"), ("strategy", 1)]:
        with pytest.raises(ConfigError, match=f"f: {key} must be"):
            check_value(key, value, "f")


# ---------------------------------------------------------------- files
def test_write_then_read_round_trips_with_version_first(tmp_path):
    path = write_config(tmp_path / "sub" / "c.yaml", {"num_processes": 2, "mixed_precision": "no", "use_cpu": True})
    text = path.read_text()
    assert yaml.safe_load(text) == {
        "version": CONFIG_VERSION,
        "num_processes": 2,
        "mixed_precision": "no",
        "use_cpu": True,
    }
    assert text.splitlines()[1] == "version: 1"
    assert read_config(path) == {"num_processes": 2, "mixed_precision": "no", "use_cpu": True}


def test_unknown_key_names_file_line_key_and_closest(tmp_path):
    path = _write(tmp_path / "c.yaml", "version: 1\nmixed_precision: bf16\nnum_process: 2\n")
    with pytest.raises(ConfigError) as info:
        read_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "line 3" in message
    assert "'num_process'" in message
    assert "did you mean 'num_processes'" in message


def test_wrong_type_names_file_key_given_and_allowed(tmp_path):
    path = _write(tmp_path / "c.yaml", "num_processes: two\n")
    with pytest.raises(ConfigError, match=r"c\.yaml, line 1: num_processes must be an integer >= 1, got 'two'"):
        read_config(path)


def test_malformed_yaml_reports_line(tmp_path):
    path = _write(tmp_path / "c.yaml", "num_processes: 2\nmixed_precision: [bf16\nuse_cpu: true\n")
    with pytest.raises(ConfigError, match=r"c\.yaml, line \d+: malformed YAML"):
        read_config(path)


def test_newer_version_is_rejected_with_fix(tmp_path):
    path = _write(tmp_path / "c.yaml", "version: 99\n")
    with pytest.raises(ConfigError, match=r"newer than this accel understands.*upgrade accel"):
        read_config(path)


def test_missing_version_reads_as_version_one_and_empty_file_is_empty(tmp_path):
    assert read_config(_write(tmp_path / "a.yaml", "num_processes: 3\n")) == {"num_processes": 3}
    assert read_config(_write(tmp_path / "b.yaml", "")) == {}
    with pytest.raises(ConfigError, match=r"expected a mapping"):
        read_config(_write(tmp_path / "c.yaml", "- 1\n- 2\n"))


def test_accelerate_config_is_accepted_and_mapped(tmp_path):
    text = (
        "compute_environment: LOCAL_MACHINE\ndebug: false\ndistributed_type: MULTI_CPU\ndowncast_bf16: 'no'\n"
        "enable_cpu_affinity: false\ngpu_ids: all\nmachine_rank: 0\nmain_training_function: main\n"
        "mixed_precision: bf16\nnum_machines: 1\nnum_processes: 2\nrdzv_backend: static\nsame_network: true\n"
        "tpu_env: []\ntpu_use_cluster: false\ntpu_use_sudo: false\nmain_process_ip: null\n"
    )
    values = read_config(_write(tmp_path / "acc.yaml", text))
    assert values == {
        "debug": False,
        "enable_cpu_affinity": False,
        "gpu_ids": "all",
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": "bf16",
        "num_machines": 1,
        "num_processes": 2,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": True,
    }
    assert read_config(_write(tmp_path / "g.yaml", "gpu_ids: 0\n")) == {"gpu_ids": "0"}
    assert read_config(_write(tmp_path / "f.yaml", "distributed_type: FSDP\nfp16: true\n")) == {
        "strategy": "fsdp",
        "mixed_precision": "fp16",
    }


@pytest.mark.parametrize("text", ["distributed_type: DEEPSPEED\n", "compute_environment: AMAZON_SAGEMAKER\n"])
def test_unsupported_accelerate_settings_are_errors(tmp_path, text):
    with pytest.raises(ConfigError, match=r"not supported"):
        read_config(_write(tmp_path / "c.yaml", text))


def test_write_basic_config_never_overwrites(tmp_path):
    target = tmp_path / "basic.yaml"
    assert write_basic_config("bf16", save_location=target, num_processes=2) == target
    assert read_config(target) == {"mixed_precision": "bf16", "num_processes": 2}
    assert write_basic_config("fp16", save_location=target) is False
    assert read_config(target)["mixed_precision"] == "bf16"
    with pytest.raises(ConfigError, match=r"mixed_precision must be one of"):
        write_basic_config("fp8", save_location=tmp_path / "other.yaml")
    with pytest.raises(ConfigError, match=r"unknown key 'num_proc'"):
        write_basic_config(save_location=tmp_path / "other.yaml", num_proc=2)


# ---------------------------------------------------------------- lookup and precedence
def test_lookup_order(tmp_path):
    explicit = _write(tmp_path / "explicit.yaml", "")
    from_env = _write(tmp_path / "env.yaml", "")
    system = _write(tmp_path / "system.yaml", "")
    xdg = tmp_path / "xdg"
    environ = {"XDG_CONFIG_HOME": str(xdg)}
    assert find_config_file(None, environ, tmp_path / "nope.yaml") == (None, "none")
    assert find_config_file(None, environ, system) == (system, "system file")
    assert find_config_file(None, {**environ, "ACCEL_CONFIG_NOSYSTEM": "1"}, system) == (None, "none")
    user = user_config_path(environ)
    assert user == xdg / "accel" / "config.yaml"
    user.parent.mkdir(parents=True)
    _write(user, "")
    assert find_config_file(None, environ, system) == (user, "user file")
    environ["ACCEL_CONFIG_FILE"] = str(from_env)
    assert find_config_file(None, environ, system) == (from_env, "ACCEL_CONFIG_FILE")
    assert find_config_file(str(explicit), environ, system) == (explicit, "--config_file")
    with pytest.raises(ConfigError, match=r"does not exist"):
        find_config_file(str(tmp_path / "missing.yaml"), environ, system)


def test_precedence_flag_env_file_default_with_sources(tmp_path):
    config = _write(tmp_path / "c.yaml", "num_processes: 3\nmixed_precision: fp16\nmax_restarts: 2\n")
    environ = {"ACCEL_MIXED_PRECISION": "bf16", "ACCEL_MAX_RESTARTS": "1", "XDG_CONFIG_HOME": str(tmp_path)}
    flags = {"max_restarts": Setting(5, "--max_restarts")}
    r = resolve(flags, environ, str(config), system=tmp_path / "none.yaml")
    assert (r["max_restarts"], r.source("max_restarts")) == (5, "--max_restarts")
    assert (r["mixed_precision"], r.source("mixed_precision")) == ("bf16", "ACCEL_MIXED_PRECISION")
    assert (r["num_processes"], r.source("num_processes")) == (3, f"file {config}")
    assert (r["strategy"], r.source("strategy")) == ("ddp", "default")
    assert set(r) == set(KEYS)
    assert r.describe_file() == f"{config} (--config_file)"


def test_kubeflow_pod_variables_become_machine_settings(tmp_path):
    environ = {"RANK": "1", "WORLD_SIZE": "3", "MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456"}
    r = resolve(None, environ, system=tmp_path / "none.yaml")
    assert (r["machine_rank"], r["num_machines"]) == (1, 3)
    assert (r["main_process_ip"], r["main_process_port"]) == ("job-master-0", 23456)
    assert r.source("machine_rank") == "RANK (Kubeflow pod)"
    # inside a torchrun worker the same variables describe ranks, not machines
    worker = resolve(None, {**environ, "TORCHELASTIC_RUN_ID": "x"}, system=tmp_path / "none.yaml")
    assert worker["num_machines"] == 1
    # an explicit flag beats the pod variables
    flagged = resolve({"num_machines": Setting(1, "--num_machines")}, environ, system=tmp_path / "none.yaml")
    assert flagged["num_machines"] == 1


def test_torchrun_pet_variables(tmp_path):
    environ = {"PET_NNODES": "2", "PET_NPROC_PER_NODE": "auto", "PET_RDZV_ENDPOINT": "host-0:29400", "RANK": "0"}
    r = resolve(None, environ, system=tmp_path / "none.yaml")
    assert r["num_machines"] == 2
    assert r["num_processes"] is None
    assert (r["main_process_ip"], r["main_process_port"]) == ("host-0", 29400)
    with pytest.raises(ConfigError, match=r"elastic range"):
        resolve(None, {"PET_NNODES": "1:3"}, system=tmp_path / "none.yaml")


def test_split_endpoint():
    assert split_endpoint("10.0.0.1:29500", "x") == ("10.0.0.1", 29500)
    assert split_endpoint("node0", "x") == ("node0", None)
    assert split_endpoint("[::1]:80", "x") == ("::1", 80)
    with pytest.raises(ConfigError, match=r"x: main_process_port must be"):
        split_endpoint("h:http", "x")
