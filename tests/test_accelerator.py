"""The Accelerator in one process: equivalence with plain PyTorch, precision, accumulation, misuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from core_workers import flat, make_data, make_model, reference, train
from torch.utils.data import DataLoader

from accel import Accelerator, GradientAccumulationPlugin, find_executable_batch_size
from accel.exceptions import ConfigError, PrecisionError, PrepareError


def test_single_process_matches_plain_pytorch_bit_for_bit() -> None:
    result = train(40, 8, epochs=2)
    assert result["world"] == 1 and result["type"] == "NO"
    expected = reference(result["seen"], 8, 40)
    assert torch.equal(result["params"], expected)


def test_accumulation_equals_one_large_batch_with_a_short_last_window() -> None:
    # 40 samples, micro-batches of 4, 4 per step: windows of 16, 16 and 8 samples.
    result = train(40, 4, steps=4, shuffle=False)
    assert result["optimizer_steps"] == 3
    torch.testing.assert_close(result["params"], reference(list(range(40)), 16, 40), rtol=0, atol=1e-6)


def test_bf16_runs_and_reports_what_is_active() -> None:
    result = train(32, 8, mixed_precision="bf16")
    assert result["mixed_precision"] == "bf16"
    assert torch.isfinite(result["params"]).all()
    acc = Accelerator(mixed_precision="bf16")
    model = acc.prepare(torch.nn.Linear(4, 2))
    assert model(torch.randn(3, 4)).dtype == torch.float32  # outputs come back in fp32
    with acc.autocast():
        assert (torch.randn(2, 2) @ torch.randn(2, 2)).dtype == torch.bfloat16
    plain = acc.unwrap_model(model, keep_fp32_wrapper=False)
    assert plain(torch.randn(3, 4)).dtype == torch.float32


def test_fp16_backward_uses_the_scaler_and_plain_backward_is_caught() -> None:
    acc = Accelerator(mixed_precision="fp16")
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model, opt = acc.prepare(model, opt)
    before = flat(model).clone()
    acc.backward(model(torch.randn(8, 4)).pow(2).mean())
    norm = acc.clip_grad_norm_(model.parameters(), 1.0)
    assert torch.isfinite(norm)
    opt.step()
    opt.zero_grad()
    assert not torch.equal(before, flat(model))
    model(torch.randn(8, 4)).pow(2).mean().backward()
    with pytest.raises(PrecisionError, match=r"accelerator\.backward\(loss\)"):
        opt.step()


def test_scheduler_steps_once_per_real_optimizer_step() -> None:
    acc = Accelerator(gradient_accumulation_steps=2)
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (step + 1))
    loader = DataLoader(make_data(12, 2), batch_size=2)
    model, opt, sched, loader = acc.prepare(model, opt, sched, loader)
    for x, y, _ in loader:
        with acc.accumulate(model):
            acc.backward(torch.nn.functional.mse_loss(model(x), y))
            opt.step()
            sched.step()
            opt.zero_grad()
    assert sched.scheduler.last_epoch == 3  # 6 micro-batches, 3 optimizer steps
    assert sched.get_last_lr() == [0.25]


def test_prepare_returns_objects_in_order_and_twice_is_harmless() -> None:
    acc = Accelerator()
    model = make_model()
    opt = torch.optim.AdamW(model.parameters())
    loader = DataLoader(make_data(8), batch_size=4)
    token = object()
    prepared = acc.prepare(model, token, opt, loader)
    assert prepared[1] is token
    again = acc.prepare(*prepared)
    assert all(a is b for a, b in zip(prepared, again, strict=True))
    assert len(list(again[3])) == 2


def test_bad_input_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="'fp8' is not a mixed-precision mode; use one of no, bf16, fp16"):
        Accelerator(mixed_precision="fp8")
    with pytest.raises(ConfigError, match="gradient_accumulation_steps=0"):
        Accelerator(gradient_accumulation_steps=0)
    with pytest.raises(ConfigError, match="DataLoaderConfiguration"):
        Accelerator(split_batches=True)
    with pytest.raises(ConfigError, match="not an argument"):
        Accelerator(mixed_precison="bf16")
    with pytest.raises(ConfigError, match="not both"):
        Accelerator(gradient_accumulation_steps=2, gradient_accumulation_plugin=GradientAccumulationPlugin(2))
    acc = Accelerator()
    stray = torch.nn.Linear(2, 2)
    with pytest.raises(PrepareError, match="belong to no prepared model"):
        acc.prepare(torch.optim.SGD(stray.parameters(), lr=0.1))
    monkeypatch.setenv("ACCEL_GRADIENT_ACCUMULATION_STEPS", "two")
    with pytest.raises(ConfigError, match="ACCEL_GRADIENT_ACCUMULATION_STEPS='two' is not an integer"):
        Accelerator()


def test_explicit_arguments_beat_the_launcher_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCEL_MIXED_PRECISION", "bf16")
    monkeypatch.setenv("ACCEL_GRADIENT_ACCUMULATION_STEPS", "4")
    assert Accelerator().mixed_precision == "bf16"
    assert Accelerator().gradient_accumulation_steps == 4
    assert Accelerator(mixed_precision="no").mixed_precision == "no"
    assert Accelerator(gradient_accumulation_steps=1).gradient_accumulation_steps == 1


def test_trackers_write_jsonl_and_csv(tmp_path: Path) -> None:
    acc = Accelerator(log_with=["jsonl", "csv"], project_dir=tmp_path)
    acc.init_trackers("run", config={"lr": 0.1})
    acc.log({"loss": torch.tensor(0.5)}, step=1)
    acc.end_training()
    lines = (tmp_path / "logs" / "run" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["loss"] == 0.5
    assert "loss" in (tmp_path / "logs" / "run" / "metrics.csv").read_text()
    with pytest.raises(ConfigError, match="not a tracker"):
        Accelerator(log_with="wandbb").trackers  # noqa: B018


def test_find_executable_batch_size_halves_on_out_of_memory() -> None:
    tried: list[int] = []

    @find_executable_batch_size(starting_batch_size=64)
    def run(batch_size: int) -> int:
        tried.append(batch_size)
        if batch_size > 16:
            raise RuntimeError("CUDA out of memory. Tried to allocate")
        return batch_size

    assert run() == 16 and tried == [64, 32, 16]


def test_main_process_helpers_in_one_process(capsys: pytest.CaptureFixture[str]) -> None:
    acc = Accelerator()
    acc.print("hello")
    assert capsys.readouterr().out == "hello\n"
    assert acc.on_main_process(lambda: 3)() == 3
    with acc.main_process_first(), acc.split_between_processes([1, 2, 3]) as part:
        assert part == [1, 2, 3]
    acc.wait_for_everyone()
    assert acc.is_main_process and acc.is_local_main_process and acc.num_processes == 1


def test_get_state_dict_returns_the_user_model_keys() -> None:
    acc = Accelerator()
    model = acc.prepare(make_model())
    state = acc.get_state_dict(model)
    assert set(state) == set(make_model().state_dict())
    assert all(t.device.type == "cpu" for t in state.values())
