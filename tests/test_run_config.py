"""The run configuration: encoded by the launcher, decoded once per rank, one table per setting."""

from __future__ import annotations

import pytest

from accel import Accelerator
from accel.config import parse_text
from accel.config.run import RunConfig
from accel.config.schema import KEYS
from accel.exceptions import ConfigError
from accel.precision import MODES, check_mode


def test_exports_round_trip_through_the_environment() -> None:
    run = RunConfig("bf16", 4, True, "fsdp", False, "/p", 2, "none")
    exported = run.exports()
    assert exported["ACCEL_MIXED_PRECISION"] == "bf16"
    assert exported["ACCEL_USE_CPU"] == "1"
    assert RunConfig.from_environment(exported) == run
    assert RunConfig.from_environment({}) == RunConfig()
    assert "ACCEL_PROJECT_DIR" not in RunConfig(mixed_precision="no").exports()


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({"ACCEL_MIXED_PRECISION": "fp8"}, "ACCEL_MIXED_PRECISION: mixed_precision must be one of no, bf16, fp16"),
        ({"ACCEL_GRADIENT_ACCUMULATION_STEPS": "0"}, "gradient_accumulation_steps must be an integer >= 1, got 0"),
        ({"ACCEL_STRATEGY": "zero3"}, "strategy must be one of ddp, fsdp"),
        ({"ACCEL_USE_CPU": "maybe"}, "ACCEL_USE_CPU='maybe' is not a yes/no value"),
    ],
)
def test_bad_variables_are_refused_by_the_settings_table(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_environment(environ)
    assert fragment in str(info.value)


def test_mixed_precision_words_come_from_one_table() -> None:
    assert KEYS["mixed_precision"].choices == MODES
    for word in ("no", "bf16", "fp16", "FP16", "fp32", "none"):
        assert check_mode(word) == parse_text("mixed_precision", word, "--flag")
    for word in ("fp8", "half"):
        with pytest.raises(ConfigError, match="not a mixed-precision mode"):
            check_mode(word)
        with pytest.raises(ConfigError, match="mixed_precision must be one of"):
            parse_text("mixed_precision", word, "--flag")


def test_an_argument_contradicting_the_launcher_wins_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCEL_CONFIG_SOURCE", "none")
    monkeypatch.setenv("ACCEL_MIXED_PRECISION", "bf16")
    monkeypatch.setenv("ACCEL_GRADIENT_ACCUMULATION_STEPS", "2")
    pattern = r"Accelerator\(mixed_precision='no'\) overrides .* \(mixed_precision 'bf16'\); the argument wins"
    with pytest.warns(UserWarning, match=pattern):
        acc = Accelerator(mixed_precision="no")
    assert acc.mixed_precision == "no"
    agreeing = Accelerator(mixed_precision="bf16", gradient_accumulation_steps=2)  # no warning: they agree
    assert (agreeing.mixed_precision, agreeing.gradient_accumulation_steps) == ("bf16", 2)
    with pytest.warns(UserWarning, match=r"gradient_accumulation_steps=3\) overrides"):
        assert Accelerator(gradient_accumulation_steps=3).gradient_accumulation_steps == 3
    monkeypatch.delenv("ACCEL_CONFIG_SOURCE")  # set by hand, not announced by a launcher: no warning
    assert Accelerator(mixed_precision="no").mixed_precision == "no"
