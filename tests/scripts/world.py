"""Launch-test worker: join the world, train a tiny DDP model a few steps, write what this rank saw.

usage: world.py OUT_DIR [anything...]  (writes OUT_DIR/rank<N>.json)
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from accel import env
from accel.state import PartialState

EXPORTED = (
    "ACCEL_MIXED_PRECISION",
    "ACCEL_GRADIENT_ACCUMULATION_STEPS",
    "ACCEL_USE_CPU",
    "ACCEL_STRATEGY",
    "ACCEL_REQUESTED_WORLD_SIZE",
    "ACCEL_CONFIG_SOURCE",
    "ACCEL_AUTO_RESUME",
    "ACCEL_PROJECT_DIR",
    "GLOO_SOCKET_IFNAME",
    "OMP_NUM_THREADS",
    "TORCH_CPP_LOG_LEVEL",
)


def train(state: PartialState) -> list[float]:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    if state.use_distributed:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(1 + state.process_index)
    for _ in range(3):
        x = torch.randn(8, 4, generator=generator)
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return [round(float(v), 6) for v in torch.cat([p.detach().flatten() for p in model.parameters()])]


def main() -> None:
    out = Path(sys.argv[1])
    state = PartialState()
    total = torch.tensor([float(state.process_index + 1)])
    if state.use_distributed:
        dist.all_reduce(total)
    record = {
        "rank": state.process_index,
        "world_size": state.num_processes,
        "local_rank": state.local_process_index,
        "backend": dist.get_backend() if dist.is_initialized() else None,
        "distributed_type": state.distributed_type.value,
        "sum": total.item(),
        "argv": sys.argv,
        "env": {name: env.get(name) for name in EXPORTED},
        "params": train(state),
        "main": __name__,
    }
    (out / f"rank{state.process_index}.json").write_text(json.dumps(record))
    state.destroy_process_group()


if __name__ == "__main__":
    main()
