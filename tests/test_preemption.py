"""The preemption check's agreement rounds: spaced by training time, identical on every rank."""

from __future__ import annotations

import pytest
from conftest import dist_run
from preemption_workers import count_rounds

pytestmark = pytest.mark.multiprocess


def test_agreement_rounds_are_spaced_not_one_per_batch() -> None:
    # a round per batch put an all-reduce into every micro-step (2.5x the step time of a small
    # model under accumulation on 2 CPU ranks); fast batches now share one round per ROUND_S
    results = dist_run(count_rounds, 400)
    assert [r["batches"] for r in results.values()] == [400, 400]
    assert all(r["installed"] for r in results.values())
    rounds = {r["rounds"] for r in results.values()}
    assert len(rounds) == 1, f"ranks ran different numbers of rounds: {results}"  # the decisions stay in step
    assert 2 <= rounds.pop() <= 40, results
