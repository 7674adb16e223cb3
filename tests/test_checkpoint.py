"""save_state / load_state in one process: layout, pickle-free files, atomicity, naming and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import ckpt_workers as w
import numpy as np
import pytest
import safetensors.torch
import torch

from accel import Accelerator
from accel.checkpoint import atomic, codec, parts, tensorfile
from accel.checkpoint.manifest import FORMAT_VERSION
from accel.exceptions import CheckpointError


def _loop(acc, model, opt, loader, sched, counter, batches: int) -> None:
    for done, batch in enumerate(loader, start=1):
        w.train_step(acc, model, opt, sched, counter, batch)
        if done == batches:
            return


@pytest.mark.parametrize("accumulation", [1, 3])
def test_resume_is_bit_exact_mid_epoch(tmp_path: Path, accumulation: int) -> None:
    full = w.run_plain(3, accumulation=accumulation)
    ckpt = str(tmp_path / "ckpt")
    w.run_until(3, 1, 6, ckpt, accumulation=accumulation)
    resumed = w.resume_plain(3, ckpt, accumulation=accumulation)
    idiom = w.resume_idiom(3, ckpt, 1, 6, accumulation=accumulation)
    for a, b, c in zip(full, resumed, idiom, strict=True):
        assert torch.equal(a, b)
        assert torch.equal(a, c)


def test_every_file_loads_without_pickle(tmp_path: Path) -> None:
    acc, model, opt, loader, sched, counter = w.build()
    _loop(acc, model, opt, loader, sched, counter, 3)
    out = Path(acc.save_state(tmp_path / "ckpt"))
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.name for p in files} >= {"manifest.json", "model.safetensors", "optimizer.safetensors"}
    for path in files:
        head = path.read_bytes()[:2]
        assert head not in (b"PK", b"\x80\x02", b"\x80\x04", b"\x80\x05"), f"{path.name} is a pickle"
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".safetensors":
            safetensors.torch.load_file(path)
        else:
            torch.load(path, weights_only=True)
    weights = safetensors.torch.load_file(out / "model.safetensors")
    assert weights.keys() == model.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    # the numpy learning rate is stored as a number and comes back as one
    state = parts.load_object(out / "optimizer.safetensors")
    assert state["param_groups"][0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["world_size"] == 1
    assert manifest["counts"] == {"models": 1, "optimizers": 1, "schedulers": 1, "dataloaders": 1, "custom_objects": 1}
    assert manifest["dataloaders"][0]["position"] == 3
    assert set(manifest["files"]) == {p.relative_to(out).as_posix() for p in files if p.name != "manifest.json"}


def test_codec_round_trip_and_refusal() -> None:
    value = {
        0: {"step": torch.tensor(3.0), "buf": np.arange(4, dtype=np.float32)},
        "__odd": (1, np.float64(0.5), np.int32(7), None, True, "s"),
        "dtype": torch.bfloat16,
        "raw": b"\x00\x01",
        "nested": [{"a": torch.ones(2, 2)}],
    }
    tensors, metadata = codec.pack(value, "test")
    back = codec.unpack(tensors, metadata, "test")
    assert torch.equal(back[0]["step"], value[0]["step"])
    np.testing.assert_array_equal(back[0]["buf"], value[0]["buf"])
    assert back["__odd"] == (1, 0.5, 7, None, True, "s")
    assert type(back["__odd"][1]) is float
    assert back["dtype"] is torch.bfloat16 and back["raw"] == b"\x00\x01"
    assert torch.equal(back["nested"][0]["a"], torch.ones(2, 2))
    with pytest.raises(CheckpointError, match=r"optimizer 0: cannot store a .*object at 'state.x'"):
        codec.pack({"state": {"x": object()}}, "optimizer 0")


def test_tensorfile_matches_safetensors(tmp_path: Path) -> None:
    tensors = {
        "f": torch.randn(3, 5),
        "h": torch.randn(7).half(),
        "b": torch.randn(2, 3).bfloat16(),
        "i": torch.arange(5),
        "flag": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5, dtype=torch.float64),
        "empty": torch.empty(0, 4),
        "strided": torch.randn(4, 4).t(),
    }
    path = tmp_path / "t.safetensors"
    tensorfile.write(path, tensors, {"k": "v"})
    ours, meta = tensorfile.read(path)
    theirs = safetensors.torch.load_file(path)
    assert meta == {"k": "v"}
    for name, tensor in tensors.items():
        assert ours[name].dtype == tensor.dtype and torch.equal(ours[name], tensor)
        assert torch.equal(theirs[name], tensor)
    safetensors.torch.save_file({"x": torch.arange(3, dtype=torch.int16), "y": torch.ones(3)}, tmp_path / "s.st")
    read, _ = tensorfile.read(tmp_path / "s.st")
    assert torch.equal(read["y"], torch.ones(3))


def test_automatic_naming_latest_and_total_limit(tmp_path: Path) -> None:
    acc, model, opt, loader, sched, counter = w.build(str(tmp_path), automatic_checkpoint_naming=True, total_limit=2)
    saved = []
    for _ in range(4):
        _loop(acc, model, opt, loader, sched, counter, 2)
        saved.append(Path(acc.save_state()))
    root = tmp_path / "checkpoints"
    assert [p.name for p in saved] == ["checkpoint_0", "checkpoint_1", "checkpoint_2", "checkpoint_3"]
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint_2", "checkpoint_3", "latest"]
    assert (root / "latest").read_text().strip() == "checkpoint_3"
    assert acc.save_iteration == 4

    acc2, *_ = w.build(str(tmp_path), automatic_checkpoint_naming=True, total_limit=2)
    assert Path(acc2.load_state()) == root / "checkpoint_3"
    assert acc2.checkpoints.resumed_from == root / "checkpoint_3"
    assert acc2.save_iteration == 4  # the next save does not collide


def test_interrupted_saves_leave_previous_checkpoint_loadable(tmp_path: Path) -> None:
    acc, model, opt, loader, sched, counter = w.build()
    _loop(acc, model, opt, loader, sched, counter, 2)
    ckpt = tmp_path / "ckpt"
    acc.save_state(ckpt)
    before = [p.detach().clone() for p in model.parameters()]
    # a save that died while writing: a partial staging directory beside the checkpoint
    staging = atomic.staging(ckpt)
    staging.mkdir()
    (staging / "model.safetensors").write_bytes(b"\x00" * 10)
    # a replacement that died between its two renames: only the aside copy exists
    ckpt.rename(atomic.aside(ckpt))
    _loop(acc, model, opt, loader, sched, counter, 2)
    assert Path(acc.load_state(ckpt)) == atomic.aside(ckpt)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    # the next save to the same place replaces everything cleanly
    acc.save_state(ckpt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "latest"]
    acc.load_state(tmp_path)  # a parent with a `latest` pointer is followed


def _saved(tmp_path: Path) -> tuple[Accelerator, Path]:
    acc, model, opt, loader, sched, counter = w.build()
    _loop(acc, model, opt, loader, sched, counter, 1)
    return acc, Path(acc.save_state(tmp_path / "ckpt"))


def test_missing_or_damaged_checkpoints_name_the_file(tmp_path: Path) -> None:
    acc, ckpt = _saved(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        acc.load_state(tmp_path / "nope")
    opt_file = ckpt / "optimizer.safetensors"
    data = opt_file.read_bytes()
    opt_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors is \d+ bytes but the manifest recorded"):
        acc.load_state(ckpt)
    opt_file.unlink()
    with pytest.raises(CheckpointError, match=r"optimizer\.safetensors is missing"):
        acc.load_state(ckpt)
    (ckpt / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match=r"manifest\.json is missing"):
        acc.load_state(ckpt)
    (tmp_path / "short.safetensors").write_bytes(data[:20])
    with pytest.raises(CheckpointError, match=r"short\.safetensors is truncated"):
        tensorfile.read(tmp_path / "short.safetensors")


def test_newer_format_and_mismatches_are_refused(tmp_path: Path) -> None:
    acc, ckpt = _saved(tmp_path)
    manifest_path = ckpt / "manifest.json"
    original = manifest_path.read_text()
    manifest_path.write_text(original.replace(f'"format_version": {FORMAT_VERSION}', '"format_version": 99'))
    with pytest.raises(CheckpointError, match="format_version 99, newer than this accel reads"):
        acc.load_state(ckpt)
    manifest_path.write_text(original)

    other = Accelerator()
    model = torch.nn.Linear(6, 2)
    other.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(CheckpointError, match="schedulers: checkpoint has 1, this run prepared 0"):
        other.load_state(ckpt)

    acc2, model2, *_ = w.build()
    bigger = torch.nn.Linear(6, 17)
    acc2.unwrap_model(model2)[0] = bigger
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors does not match the model: shape differs for 0\.weight"
    ):
        acc2.load_state(ckpt)


def test_load_without_any_checkpoint(tmp_path: Path) -> None:
    acc = Accelerator(project_dir=tmp_path)
    with pytest.raises(CheckpointError, match=r"no checkpoint in .*checkpoints"):
        acc.load_state()
    with pytest.raises(CheckpointError, match="needs an output_dir"):
        acc.save_state()


def test_position_conversion_between_world_sizes() -> None:
    state = {"epoch": 1, "position": 3, "seed": 5}
    assert parts.convert_position(state, 2, 1, False, "x")["position"] == 6
    assert parts.convert_position(state, 2, 3, True, "x")["position"] == 3
    with pytest.raises(CheckpointError, match="x: the DataLoader stopped after 3 batches on each of 2 ranks"):
        parts.convert_position(state, 2, 4, False, "x")


def test_save_model_single_file_and_shards(tmp_path: Path) -> None:
    acc = Accelerator()
    model = acc.prepare(torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 8)))
    acc.save_model(model, tmp_path / "one")
    assert torch.equal(safetensors.torch.load_file(tmp_path / "one" / "model.safetensors")["0.weight"], model[0].weight)
    acc.save_model(model, tmp_path / "many", max_shard_size="10KB")
    index = json.loads((tmp_path / "many" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(model.state_dict())
    merged: dict[str, torch.Tensor] = {}
    for name in set(index["weight_map"].values()):
        merged.update(safetensors.torch.load_file(tmp_path / "many" / name))
    assert all(torch.equal(merged[k], v) for k, v in model.state_dict().items())
    acc.save_model(model, tmp_path / "bin", safe_serialization=False)
    loaded = torch.load(tmp_path / "bin" / "pytorch_model.bin", weights_only=True)
    assert loaded.keys() == model.state_dict().keys()
    acc.save({"w": torch.ones(2)}, tmp_path / "w.safetensors", safe_serialization=True)
    assert torch.equal(safetensors.torch.load_file(tmp_path / "w.safetensors")["w"], torch.ones(2))
    with pytest.raises(CheckpointError, match="max_shard_size='lots'"):
        acc.save_model(model, tmp_path / "x", max_shard_size="lots")
