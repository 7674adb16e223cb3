"""Exact resume on 2 real gloo ranks (DDP), and FSDP2 checkpoints that reshard to another world size."""

from __future__ import annotations

import json
from pathlib import Path

import ckpt_workers as w
import pytest
import safetensors.torch
import torch
from conftest import dist_run

pytestmark = pytest.mark.multiprocess


def test_two_rank_resume_is_bit_exact_mid_epoch(tmp_path: Path) -> None:
    # plain run == save mid-epoch + resume with a plain loop == resume with skip_first_batches, on every rank
    assert dist_run(w.dist_resume_case, str(tmp_path), 2) == {0: True, 1: True}
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert "random_states_0.safetensors" in files and "random_states_1.safetensors" in files
    assert json.loads((tmp_path / "ckpt" / "manifest.json").read_text())["world_size"] == 2


def test_fsdp2_sharded_checkpoint_resumes_and_reshards(tmp_path: Path) -> None:
    saved = dist_run(w.fsdp_case, str(tmp_path))[0]
    ckpt = tmp_path / "fsdp"
    shards = sorted((ckpt / "sharded").iterdir())
    assert len([p for p in shards if p.suffix == ".safetensors"]) == 2  # one per rank
    for path in ckpt.rglob("*"):
        if path.suffix == ".safetensors":
            safetensors.torch.load_file(path)
        elif path.is_file():
            json.loads(path.read_text())
    with pytest.warns(UserWarning, match="different number of processes"):
        loaded = w.single_fsdp_load(str(ckpt))
    assert saved.keys() == loaded.keys()
    for key, value in saved.items():
        assert torch.equal(value, loaded[key]), key
