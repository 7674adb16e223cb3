"""Module-level workers for the Accelerate-parity tests (spawned by ``dist_run``)."""

from __future__ import annotations

from typing import Any

import torch


def sync_generator() -> dict[str, Any]:
    """Seed a generator differently per rank, synchronise it and the torch generator from rank 0."""
    from accel import PartialState
    from accel.utils import synchronize_rng_states

    state = PartialState()
    rank = state.process_index
    generator = torch.Generator().manual_seed(100 + rank)
    torch.manual_seed(200 + rank)
    before = torch.randint(0, 10**6, (1,), generator=torch.Generator().manual_seed(100 + rank)).item()
    synchronize_rng_states(["torch", "generator"], generator=generator)
    out = {
        "before": before,
        "generator": torch.randint(0, 10**6, (3,), generator=generator).tolist(),
        "torch": torch.randint(0, 10**6, (3,)).tolist(),
    }
    state.destroy_process_group()
    return out


def early_stop(stop_rank: int, stop_step: int) -> dict[str, Any]:
    """Every rank checks the trigger each step; one rank sets it; all stop at the same step."""
    from accel import Accelerator

    acc = Accelerator()
    stopped_at = None
    for step in range(10):
        if acc.process_index == stop_rank and step == stop_step:
            acc.set_trigger()
        if acc.check_trigger():
            stopped_at = step
            break
    again = acc.check_trigger()  # the flag was lowered once seen
    acc.state.destroy_process_group()
    return {"stopped_at": stopped_at, "again": again}


def sync_in_backward(trigger: bool) -> dict[str, Any]:
    """Forward and backward inside no_sync; with trigger_sync_in_backward the gradients are averaged anyway."""
    from accel import Accelerator

    acc = Accelerator()
    torch.manual_seed(0)
    model = acc.prepare(torch.nn.Linear(3, 1))
    x = torch.full((2, 3), float(acc.process_index + 1))
    with acc.no_sync(model):
        loss = model(x).sum()
        if trigger:
            with acc.trigger_sync_in_backward(model):
                acc.backward(loss)
        else:
            acc.backward(loss)
    grad = acc.unwrap_model(model).weight.grad.clone()
    gathered = acc.gather(grad.unsqueeze(0))
    acc.state.destroy_process_group()
    return {"grad": grad.tolist(), "same": bool(torch.equal(gathered[0], gathered[1]))}


def ordered_logging(path: str) -> dict[str, Any]:
    """Rank 0 is slow to log: main_process_only keeps only rank 0, in_order makes rank 0 come first anyway."""
    import logging
    import time

    from accel import PartialState
    from accel.logging import get_logger

    state = PartialState()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = get_logger(f"parity.{state.process_index}", log_level="INFO")
    logger.logger.addHandler(handler)
    logger.logger.propagate = False
    logger.info(f"main-only from {state.process_index}")
    logger.debug(f"debug from {state.process_index}", main_process_only=False)
    state.wait_for_everyone()
    if state.process_index == 0:
        time.sleep(1.0)
    logger.info(f"in-order from {state.process_index}", main_process_only=False, in_order=True)
    logger.warning_once("once")
    logger.warning_once("once")
    handler.close()
    state.destroy_process_group()
    return {}


class CountingDataset(torch.utils.data.Dataset):
    """A map-style dataset that counts the samples read in this process."""

    def __init__(self, n: int) -> None:
        self.n, self.reads = n, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        self.reads += 1
        return torch.tensor(index)


class Stream(torch.utils.data.IterableDataset):
    """An iterable dataset that counts the samples it produced in this process."""

    def __init__(self, n: int) -> None:
        self.n, self.reads = n, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):  # type: ignore[no-untyped-def]
        for i in range(self.n):
            self.reads += 1
            yield torch.tensor(i)


def dispatched(n: int, batch: int, dispatch: bool, split: bool, iterable: bool, even: bool = True) -> dict[str, Any]:
    """Iterate a DataLoader with or without dispatch_batches; report batches, reads and gathered metrics."""
    from torch.utils.data import DataLoader

    from accel import Accelerator, DataLoaderConfiguration

    acc = Accelerator(
        dataloader_config=DataLoaderConfiguration(
            dispatch_batches=dispatch, split_batches=split, even_batches=even, data_seed=11
        )
    )
    dataset = Stream(n) if iterable else CountingDataset(n)
    loader = acc.prepare(DataLoader(dataset, batch_size=batch, shuffle=not iterable))
    batches, metrics = [], []
    for epoch in range(2):
        for x in loader:
            if epoch == 0:
                batches.append(x.tolist())
                if even:  # every rank has a batch in every round: a per-batch collective is safe
                    metrics.extend(acc.gather_for_metrics(x).tolist())
    if not even:
        from accel.utils import gather_object

        metrics = gather_object([i for b in batches for i in b])
    out = {"batches": batches, "metrics": metrics, "reads": dataset.reads, "len": len(loader)}
    acc.state.destroy_process_group()
    return out


def debug_shapes() -> dict[str, Any]:
    """Mismatched collectives in debug mode raise on every rank, naming each rank's shapes."""
    import os

    from accel import PartialState
    from accel.utils import DistributedOperationException, gather, pad_across_processes, reduce

    os.environ["ACCEL_DEBUG_MODE"] = "1"
    state = PartialState()
    rank = state.process_index
    out: dict[str, Any] = {}
    out["gather_uneven_ok"] = gather(torch.zeros(rank + 1, 2)).shape[0]
    out["pad_ok"] = list(pad_across_processes(torch.zeros(2, rank + 1), dim=1).shape)
    for name, call in {
        "reduce": lambda: reduce(torch.zeros(rank + 2)),
        "gather": lambda: gather(torch.zeros(2, rank + 1)),
        "nested": lambda: reduce({"a": torch.zeros(2), "b": torch.zeros(1 + rank, 3)}),
    }.items():
        try:
            call()
            out[name] = ""
        except DistributedOperationException as error:
            out[name] = str(error)
    state.wait_for_everyone()
    state.destroy_process_group()
    return out


def rng_types_epoch(rng_types: list[str] | None) -> dict[str, Any]:
    """Ranks seeded differently; Accelerator(rng_types=["torch"]) aligns torch's generator as an epoch starts."""
    from torch.utils.data import DataLoader

    from accel import Accelerator

    acc = Accelerator(rng_types=rng_types)
    loader = acc.prepare(DataLoader(torch.arange(8), batch_size=2))
    torch.manual_seed(50 + acc.process_index)
    draws = []
    for _ in loader:
        draws.append(torch.rand(1).item())
    acc.state.destroy_process_group()
    return {"draw": draws}


def notebook_hello() -> str:
    """Print one line from this rank; return the rendezvous id the rank saw."""
    import os

    print(f"hello from {os.environ['RANK']}", flush=True)
    return os.environ.get("TORCHELASTIC_RUN_ID", "")
