"""``accel test``: a distributed self-check through the real launch path.

The launcher side (:func:`run_selftest`) launches ``-m accel.commands.test`` with the resolved settings
and any ``accel launch`` options. Each rank then checks, with the public :class:`~accel.Accelerator`:

1. world size: the launched world equals ``ACCEL_REQUESTED_WORLD_SIZE``;
2. collectives: gather, reduce (sum) and broadcast give the expected values;
3. data sharding: a prepared DataLoader gives every sample to exactly one rank;
4. training equivalence: a few DDP steps equal one process training on the global batches.

Rank 0 prints one line per check; any failure fails the launch (the failing rank's report first).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from accel import env

CHECKS = ("world size", "collectives", "data sharding", "training equivalence")


def _world(acc: Any) -> str:
    requested = acc.state.run_config.requested_world_size
    if requested is not None and acc.num_processes != requested:
        raise AssertionError(f"world size {acc.num_processes} != requested {requested}")
    noun = "process" if acc.num_processes == 1 else "processes"
    return f"{acc.num_processes} {noun} ({acc.distributed_type.value}, device {acc.device.type})"


def _collectives(acc: Any) -> str:
    import torch

    from accel.ops import broadcast

    n, rank = acc.num_processes, acc.process_index
    gathered = acc.gather(torch.tensor([rank], device=acc.device))
    if gathered.tolist() != list(range(n)):
        raise AssertionError(f"gather gave {gathered.tolist()}, expected {list(range(n))}")
    total = acc.reduce(torch.tensor([rank + 1.0], device=acc.device), reduction="sum")
    if total.item() != n * (n + 1) / 2:
        raise AssertionError(f"reduce(sum) gave {total.item()}, expected {n * (n + 1) / 2}")
    value = broadcast(torch.tensor([float(rank) + 7.0], device=acc.device), from_process=0)
    if value.item() != 7.0:
        raise AssertionError(f"broadcast from rank 0 gave {value.item()}, expected 7.0")
    return "gather, reduce, broadcast"


def _sharding(acc: Any) -> str:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    size = 8 * acc.num_processes
    loader = acc.prepare(DataLoader(TensorDataset(torch.arange(size)), batch_size=2, shuffle=False))
    seen = torch.cat([batch[0].flatten() for batch in loader]).to(acc.device)
    everyone = acc.gather(seen).tolist()
    if sorted(everyone) != list(range(size)):
        raise AssertionError(f"ranks saw {sorted(everyone)}, expected each of 0..{size - 1} once")
    return f"{size} samples, {len(seen)} per rank, no overlap"


def _training(acc: Any) -> str:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(16 * acc.num_processes, 4), torch.arange(16 * acc.num_processes))
    reference = torch.nn.Linear(4, 1)
    model = torch.nn.Linear(4, 1)
    model.load_state_dict(reference.state_dict())
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    model, opt, loader = acc.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1), DataLoader(data, 4))
    for x, index in loader:
        loss = model(x).pow(2).mean()
        acc.backward(loss)
        opt.step()
        opt.zero_grad()
        global_x = data.tensors[0][acc.gather(index).cpu()]
        ref_opt.zero_grad()
        reference(global_x).pow(2).mean().backward()
        ref_opt.step()
    tolerance = 1e-5 if acc.mixed_precision == "no" else 5e-2
    got = torch.cat([p.detach().float().cpu().flatten() for p in acc.unwrap_model(model).parameters()])
    want = torch.cat([p.detach().flatten() for p in reference.parameters()])
    if not torch.allclose(got, want, atol=tolerance, rtol=0):
        raise AssertionError(f"parameters differ from single-process training by {(got - want).abs().max():.2e}")
    return f"{len(loader)} steps match single-process training (atol {tolerance:g}, {acc.mixed_precision})"


def worker() -> None:
    """Run every check on this rank; rank 0 prints the table; raise if any rank failed a check."""
    try:
        from accel.accelerator import Accelerator
    except ImportError as exc:
        raise SystemExit(f"accel test: cannot import accel.Accelerator ({exc}); the installation is broken") from None
    from accel.ops import gather_object

    acc = Accelerator()
    checks: list[Callable[[Any], str]] = [_world, _collectives, _sharding, _training]
    results: list[tuple[str, bool, str]] = []
    for name, check in zip(CHECKS, checks, strict=True):
        try:
            results.append((name, True, check(acc)))
        except AssertionError as exc:
            results.append((name, False, str(exc)))
    every = gather_object([results]) if acc.num_processes > 1 else [results]
    failed = [(rank, name, why) for rank, res in enumerate(every) for name, ok, why in res if not ok]
    if acc.is_main_process:
        for name, ok, detail in results:
            sys.stdout.write(f"accel test: {name:<21} {'ok' if ok else 'FAILED'}  {detail}\n")
        sys.stdout.flush()
    acc.wait_for_everyone()
    acc.state.destroy_process_group()
    if failed:
        rank, name, why = failed[0]
        raise AssertionError(f"{name} failed on rank {rank}: {why}")


def run_selftest(argv: list[str]) -> int:
    """``accel test [launch options]``: launch the self-check; print the verdict; return the exit code."""
    from accel.commands.launch import run
    from accel.exceptions import LaunchError
    from accel.launch.arguments import parse_args

    request = parse_args([*argv, "-m", "accel.commands.test"])
    timeout = {} if env.get(env.PROCESS_GROUP_TIMEOUT) else {env.PROCESS_GROUP_TIMEOUT: "120"}
    try:
        with env.patched(timeout):
            run(request)
    except LaunchError:
        sys.stdout.write("accel test: FAILED (see the report below)\n")
        sys.stdout.flush()
        raise
    sys.stdout.write("accel test: PASSED: this setup is ready for distributed training\n")
    return 0


def main(argv: list[str]) -> int:
    """``accel test [launch options]``: the self-check through the real launch path."""
    if argv and argv[0] in ("-h", "--help"):
        sys.stdout.write("usage: accel test [accel launch options]\n\nRuns the self-check on the resolved setup.\n")
        return 0
    return run_selftest(argv)


if __name__ == "__main__":
    worker()
