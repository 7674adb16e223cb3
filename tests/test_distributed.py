"""Real 2-rank gloo runs through torch's elastic launcher: the core equivalences."""

from __future__ import annotations

import pytest
import torch
from conftest import dist_run
from core_workers import ops_suite, reference, train, two_models

pytestmark = pytest.mark.multiprocess


def _order(results: dict[int, dict], world: int, batch: int) -> list[int]:
    """Global sample order: rank 0's batch, then rank 1's, round after round."""
    seen = [results[r]["seen"] for r in range(world)]
    order: list[int] = []
    for start in range(0, max(len(s) for s in seen), batch):
        for s in seen:
            order.extend(s[start : start + batch])
    return order


def test_ddp_two_ranks_equals_one_process_on_the_global_batch() -> None:
    results = dist_run(train, 48, 4)
    assert {r["world"] for r in results.values()} == {2}
    assert {r["type"] for r in results.values()} == {"MULTI_CPU"}
    assert sorted(results[0]["seen"] + results[1]["seen"]) == list(range(48))
    assert torch.equal(results[0]["params"], results[1]["params"])
    expected = reference(_order(results, 2, 4), 8, 48)
    torch.testing.assert_close(results[0]["params"], expected, rtol=0, atol=1e-6)


def test_accumulation_on_two_ranks_equals_one_large_batch_including_the_short_last_window() -> None:
    # 56 samples, 4 per rank, 2 ranks, 3 micro-batches: windows of 24, 24 and 8 samples.
    results = dist_run(train, 56, 4, 3)
    assert results[0]["optimizer_steps"] == 3
    assert results[0]["all_reduces"] == 3  # 7 micro-batches, gradients synchronised only on the 3 window ends
    expected = reference(_order(results, 2, 4), 24, 56)
    torch.testing.assert_close(results[0]["params"], expected, rtol=0, atol=1e-6)


def test_item_count_normalisation_matches_one_batch_when_ranks_hold_uneven_counts() -> None:
    # 51 samples: the last round has 3 samples, split 2 / 1 between the ranks.
    results = dist_run(train, 51, 4, 3, 1, True, "no", True)
    order = _order(results, 2, 4)
    assert sorted(order) == list(range(51))
    expected = reference(order, 24, 51)
    torch.testing.assert_close(results[0]["params"], expected, rtol=0, atol=1e-6)


def test_fsdp_two_ranks_matches_ddp() -> None:
    ddp = dist_run(train, 32, 4)
    fsdp = dist_run(train, 32, 4, 1, 1, True, "no", False, True)
    assert fsdp[0]["type"] == "FSDP"
    torch.testing.assert_close(fsdp[0]["params"], ddp[0]["params"], rtol=0, atol=1e-6)


def test_collectives_and_gather_for_metrics_drop_padding() -> None:
    results = dist_run(ops_suite)
    r0, r1 = results[0], results[1]
    assert r0["gather_uneven"] == [0, 0, 1]
    assert r0["gather_scalar"] == [0.0, 1.0]
    assert r0["reduce_sum"] == [2.0, 1.0]
    assert r0["reduce_mean"] == [2.0]
    assert r0["reduce_default"] == [3.0] and r0["utils_reduce_default"] == [1.5]
    assert r0["reduce_max"] == [2.0, 0.0]
    assert r0["pad"] == [2, 2] and r1["pad"] == [2, 2]
    assert r1["broadcast"] == [5]
    assert r0["gather_object"] == ["r0", "r1"]
    assert sorted(r0["metrics"]) == [0, 1, 2, 3, 4]
    assert r0["batches"] == r1["batches"]
    assert r0["split"] == [0, 1, 2] and r1["split"] == [3, 4]


def test_fsdp_with_two_models_and_one_optimizer_matches_ddp_and_ddp_kwargs_apply() -> None:
    ddp = dist_run(two_models, False)
    fsdp = dist_run(two_models, True)
    assert ddp[0]["find_unused"] is True
    assert fsdp[0]["type"] == "FSDP"
    torch.testing.assert_close(fsdp[0]["params"], ddp[0]["params"], rtol=0, atol=1e-5)
    torch.testing.assert_close(fsdp[1]["params"], fsdp[0]["params"], rtol=0, atol=0)


def test_quickstart_save_model_on_the_main_process_only_does_not_hang(tmp_path) -> None:
    from ckpt_workers import quickstart_save

    results = dist_run(quickstart_save, str(tmp_path), False, False)
    assert results[0] == {"error": "", "written": True}


def test_fsdp_save_model_on_the_main_process_only_is_an_error_naming_the_fix(tmp_path) -> None:
    from ckpt_workers import quickstart_save

    results = dist_run(quickstart_save, str(tmp_path / "main"), True, False)
    assert "rank(s) 1 did not call it" in results[0]["error"]
    assert "call it on every rank" in results[0]["error"]
    assert not results[0]["written"]
    results = dist_run(quickstart_save, str(tmp_path / "all"), True, True)
    assert results[0] == {"error": "", "written": True}
