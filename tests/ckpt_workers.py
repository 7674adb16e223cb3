"""Training loops shared by the checkpoint tests: in-process, on 2 gloo ranks, and as launched scripts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from accel import Accelerator, ProjectConfiguration
from accel.rng import set_seed

SAMPLES = 40
BATCH = 4


class Counter:
    """A registered object with plain and numpy state."""

    def __init__(self) -> None:
        self.count = 0
        self.history = np.zeros(3)

    def state_dict(self) -> dict[str, Any]:
        return {"count": np.int64(self.count), "history": self.history.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.history = np.asarray(state["history"]).copy()


def build(project_dir: str | None = None, accumulation: int = 1, **config: Any) -> tuple[Any, ...]:
    """A seeded model (with dropout), AdamW, LambdaLR, a shuffled DataLoader and a registered counter."""
    set_seed(1234)
    project = ProjectConfiguration(project_dir=project_dir, **config) if project_dir else None
    acc = Accelerator(project_config=project, gradient_accumulation_steps=accumulation)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Dropout(0.2), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    data = torch.randn(SAMPLES, 6, generator=torch.Generator().manual_seed(0))
    target = data.sum(dim=1, keepdim=True)
    loader = DataLoader(TensorDataset(data, target), batch_size=BATCH, shuffle=True)
    opt = torch.optim.AdamW(model.parameters(), lr=np.float64(1e-2))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + 0.1 * step))
    model, opt, loader, sched = acc.prepare(model, opt, loader, sched)
    counter = Counter()
    acc.register_for_checkpointing(counter)
    return acc, model, opt, loader, sched, counter


def train_step(acc: Any, model: Any, opt: Any, sched: Any, counter: Counter, batch: Any) -> None:
    """One micro-step, with noise from every RNG so that a wrong restore shows."""
    x, y = batch
    with acc.accumulate(model):
        noise = torch.randn(()) * 1e-3 + float(np.random.rand()) * 1e-3
        loss = torch.nn.functional.mse_loss(model(x), y) + noise
        acc.backward(loss)
        opt.step()
        sched.step()
        opt.zero_grad()
    counter.count += 1
    counter.history[counter.count % 3] += float(loss.detach())


def params(model: torch.nn.Module) -> list[torch.Tensor]:
    """Detached copies of the parameters."""
    return [p.detach().clone() for p in model.parameters()]


def run_plain(epochs: int, **build_kwargs: Any) -> list[torch.Tensor]:
    """Uninterrupted training."""
    acc, model, opt, loader, sched, counter = build(**build_kwargs)
    for _ in range(epochs):
        for batch in loader:
            train_step(acc, model, opt, sched, counter, batch)
    return [p.detach().clone() for p in acc.unwrap_model(model).parameters()]


def run_until(epochs: int, stop_epoch: int, stop_batch: int, ckpt: str, **build_kwargs: Any) -> int:
    """Train ``stop_batch`` batches into ``stop_epoch``, save and stop; returns the steps taken."""
    acc, model, opt, loader, sched, counter = build(**build_kwargs)
    for epoch in range(epochs):
        for i, batch in enumerate(loader):
            train_step(acc, model, opt, sched, counter, batch)
            if (epoch, i + 1) == (stop_epoch, stop_batch):
                acc.save_state(ckpt)
                return counter.count
    raise AssertionError("stop point never reached")


def resume_plain(epochs: int, ckpt: str, **build_kwargs: Any) -> list[torch.Tensor]:
    """Fresh objects, load, continue with plain iteration (the DataLoader resumes mid-epoch itself)."""
    acc, model, opt, loader, sched, counter = build(**build_kwargs)
    set_seed(999)  # a different RNG state, which load_state must overwrite
    acc.load_state(ckpt)
    start = loader.state_dict()["epoch"]
    for _ in range(start, epochs):
        for batch in loader:
            train_step(acc, model, opt, sched, counter, batch)
    return [p.detach().clone() for p in acc.unwrap_model(model).parameters()]


def resume_idiom(epochs: int, ckpt: str, epoch: int, skip: int, **build_kwargs: Any) -> list[torch.Tensor]:
    """Accelerate's documented idiom: load, skip_first_batches for the rest of the epoch, then plain."""
    acc, model, opt, loader, sched, counter = build(**build_kwargs)
    acc.load_state(ckpt)
    for batch in acc.skip_first_batches(loader, skip):
        train_step(acc, model, opt, sched, counter, batch)
    for _ in range(epoch + 1, epochs):
        for batch in loader:
            train_step(acc, model, opt, sched, counter, batch)
    return [p.detach().clone() for p in acc.unwrap_model(model).parameters()]


def dist_resume_case(tmp: str, accumulation: int) -> bool:
    """2 ranks: plain == save mid-epoch + resume (plain loop) == resume (Accelerate idiom)."""
    full = run_plain(3, accumulation=accumulation)
    ckpt = str(Path(tmp) / "ckpt")
    run_until(3, 1, 2, ckpt, accumulation=accumulation)
    resumed = resume_plain(3, ckpt, accumulation=accumulation)
    idiom = resume_idiom(3, ckpt, 1, 2, accumulation=accumulation)
    torch.distributed.destroy_process_group()
    return all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(full, resumed, idiom, strict=True))


def _fsdp_objects(acc: Any) -> tuple[Any, Any]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return acc.prepare(model, opt)


def _fsdp_steps(acc: Any, model: Any, opt: Any, start: int, count: int) -> None:
    for step in range(start, start + count):
        x = torch.randn(4, 6, generator=torch.Generator().manual_seed(100 * step + acc.process_index))
        acc.backward(model(x).square().mean())
        opt.step()
        opt.zero_grad()


def _full(model: Any, opt: Any) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=False)
    out = {f"model.{k}": v.clone() for k, v in get_model_state_dict(model, options=options).items()}
    optim = get_optimizer_state_dict(model, opt.optimizer, options=options)
    for fqn, state in optim["state"].items():
        out.update({f"optim.{fqn}.{k}": v.clone() for k, v in state.items()})
    return out


def fsdp_case(tmp: str) -> dict[str, torch.Tensor]:
    """FSDP2 on 2 ranks: save after 3 steps; a fresh model loads it and continues like the original."""
    from accel import FullyShardedDataParallelPlugin

    acc = Accelerator(fsdp_plugin=FullyShardedDataParallelPlugin())
    model, opt = _fsdp_objects(acc)
    _fsdp_steps(acc, model, opt, 0, 3)
    ckpt = Path(tmp) / "fsdp"
    acc.save_state(ckpt)
    saved = _full(model, opt)
    _fsdp_steps(acc, model, opt, 3, 2)
    expected = _full(model, opt)

    acc2 = Accelerator(fsdp_plugin=FullyShardedDataParallelPlugin())
    model2, opt2 = _fsdp_objects(acc2)
    acc2.load_state(ckpt)
    loaded = _full(model2, opt2)
    _fsdp_steps(acc2, model2, opt2, 3, 2)
    continued = _full(model2, opt2)
    same = all(torch.equal(saved[k], loaded[k]) for k in saved) and all(
        torch.equal(expected[k], continued[k]) for k in expected
    )
    torch.distributed.destroy_process_group()
    if not same:
        raise AssertionError("FSDP2 resume differs from the uninterrupted run")
    return saved


def single_fsdp_load(ckpt: str) -> dict[str, torch.Tensor]:
    """Load a checkpoint written by FSDP2 on 2 ranks into one unsharded process."""
    acc = Accelerator()
    model, opt = _fsdp_objects(acc)
    acc.load_state(ckpt)
    return _full(model, opt)


def quickstart_save(tmp: str, fsdp: bool, every_rank: bool) -> dict[str, Any]:
    """The quickstart's save: a barrier, then ``save_model`` on the main process (or on every rank)."""
    from accel import FullyShardedDataParallelPlugin
    from accel.checkpoint import arrival
    from accel.exceptions import CheckpointError

    arrival.ARRIVAL_TIMEOUT_S = 3.0
    acc = Accelerator(fsdp_plugin=FullyShardedDataParallelPlugin() if fsdp else None)
    model, opt = _fsdp_objects(acc)
    _fsdp_steps(acc, model, opt, 0, 1)
    acc.wait_for_everyone()
    error = ""
    if every_rank or acc.is_main_process:
        try:
            acc.save_model(model, Path(tmp) / "out")
        except CheckpointError as exc:
            error = str(exc)
    if not fsdp:  # training goes on after the save: the next collective must pair up
        acc.gather(torch.tensor([acc.process_index]))
        acc.wait_for_everyone()
    torch.distributed.destroy_process_group()
    return {"error": error, "written": (Path(tmp) / "out" / "model.safetensors").is_file()}


def _plain_epoch(acc: Accelerator, model: torch.nn.Module, opt: torch.optim.Optimizer, loader: DataLoader) -> None:
    for x, y in loader:
        acc.backward(torch.nn.functional.mse_loss(model(x), y))
        opt.step()
        opt.zero_grad()


def async_on_ranks(directory: str, mode: bool | str = True) -> list[float]:
    """An asynchronous save on every rank, training on while it is written, then a load: weight differences."""
    acc = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    data = TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    model, opt, loader = acc.prepare(
        model, torch.optim.AdamW(model.parameters(), lr=0.1), DataLoader(data, batch_size=4)
    )
    _plain_epoch(acc, model, opt, loader)
    saved = [float(v) for v in acc.unwrap_model(model).weight.detach().flatten()]
    acc.save_state(directory, async_save=mode)
    _plain_epoch(acc, model, opt, loader)
    acc.wait_for_checkpoint()  # every rank: the main process's write is published when it returns
    acc.load_state(directory)
    loaded = [float(v) for v in acc.unwrap_model(model).weight.detach().flatten()]
    acc.state.destroy_process_group()
    return [a - b for a, b in zip(saved, loaded, strict=True)]
