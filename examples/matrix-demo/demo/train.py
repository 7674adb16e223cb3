"""Train a linear model for a few steps; run with ``accel launch --num_processes 2 -m demo.train``."""

from __future__ import annotations

import json
import sys

import torch
from torch import nn

from accel import Accelerator


def train(steps: int = 20) -> dict[str, float]:
    torch.manual_seed(0)
    accelerator = Accelerator(cpu=True)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    first = last = 0.0
    for step in range(steps):
        loss = nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        first = loss.item() if step == 0 else first
        last = loss.item()
    return {"processes": accelerator.num_processes, "first_loss": first, "last_loss": last}


if __name__ == "__main__":
    result = train()
    if Accelerator().is_main_process:
        sys.stdout.write(json.dumps(result) + "\n")
