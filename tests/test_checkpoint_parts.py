"""The checkpointer works from typed parts: a strategy's format is chosen by dispatch, not by name."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from accel import ProjectConfiguration, __version__
from accel.accumulation import Accumulator
from accel.checkpoint import Checkpointer, Contents
from accel.checkpoint.contents import StagedStates
from accel.checkpoint.formats import FullFormat
from accel.data import GradientState
from accel.plugins import GradientAccumulationPlugin
from accel.precision import create
from accel.state import PartialState
from accel.strategies.single import SingleStrategy

CALLS: list[tuple[str, object]] = []


class RecordingFormat(FullFormat):
    """Full state dicts, remembering what the checkpointer asked for."""

    def stage(self, contents: Contents, main: bool) -> StagedStates:
        CALLS.append(("stage", len(contents.models)))
        return super().stage(contents, main)

    def load(self, contents: Contents, directory: Path, sharded: bool, strict: bool) -> None:
        CALLS.append(("load", sharded))
        super().load(contents, directory, sharded, strict)


class NewStrategy(SingleStrategy):
    """A strategy the checkpoint code has never heard of."""

    name = "new"

    def checkpoint_format(self) -> FullFormat:
        return RecordingFormat(self)


def test_a_new_strategy_brings_its_own_format_and_no_accelerator_is_needed(tmp_path: Path) -> None:
    state = PartialState(cpu=True)
    strategy = NewStrategy(state)
    model = torch.nn.Linear(3, 2)
    counters = Accumulator(GradientAccumulationPlugin(), GradientState())
    contents = Contents((model,), (), (), (), (), counters)
    checkpointer = Checkpointer(state, strategy, create("no", state.device), ProjectConfiguration(), lambda: contents)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    out = checkpointer.save_state(tmp_path / "ckpt")
    with torch.no_grad():
        model.weight.zero_()
    checkpointer.load_state(out)
    assert CALLS == [("stage", 1), ("load", False)]
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["strategy"], manifest["accel_version"], manifest["counts"]["models"]) == ("new", __version__, 1)
