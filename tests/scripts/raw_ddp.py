"""The same training as user_script.py in plain PyTorch DDP (run with torchrun), as the reference."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler
from user_script import data  # type: ignore[import-not-found]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=0.1, total_iters=20)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    train_set = data(256, 1)
    sampler = DistributedSampler(train_set, shuffle=False) if world > 1 else None
    loader = DataLoader(train_set, batch_size=8, sampler=sampler)
    for _ in range(args.epochs):
        for i, (x, y) in enumerate(loader):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                logits = ddp(x)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y) / 2
            loss.backward()
            if i % 2 == 1:
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
    if rank == 0:
        x, y = data(101, 2).tensors
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits = model(x)
        eval_loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
        params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        result = {"params": params.tolist(), "eval_loss": eval_loss.item(), "lr": scheduler.get_last_lr()[0]}
        (out / "result.json").write_text(json.dumps(result))
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
