"""Benchmark worker: a tiny DDP model; rank 0 writes the wall time of the end of its first step to argv[1]."""

import sys
import time
from pathlib import Path

import torch

from accel.state import PartialState

state = PartialState()
torch.manual_seed(0)
model = torch.nn.Linear(32, 1)
if state.use_distributed:
    model = torch.nn.parallel.DistributedDataParallel(model)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loss = model(torch.randn(16, 32)).pow(2).mean()
loss.backward()
optimizer.step()
if state.is_main_process:
    Path(sys.argv[1]).write_text(repr(time.time()))
state.destroy_process_group()
