"""Kill-test worker for asynchronous saves.

usage: async_save_kill.py PROJECT_DIR
Saves checkpoint_0 (blocking), changes the weights, starts an asynchronous save of checkpoint_1 of
a ~300 MB state and touches PROJECT_DIR/returned as soon as ``save_state`` has returned; then
sleeps so that the parent can kill it while the background write is still going on.
"""

import sys
import time
from pathlib import Path

import torch

from accel import Accelerator, ProjectConfiguration

project = Path(sys.argv[1])
config = ProjectConfiguration(project_dir=str(project), automatic_checkpoint_naming=True)
acc = Accelerator(project_config=config, cpu=True)
model = torch.nn.Sequential(*[torch.nn.Linear(2048, 2048) for _ in range(18)])
model, opt = acc.prepare(model, torch.optim.SGD(model.parameters(), lr=0.1))
acc.save_state()
with torch.no_grad():
    for p in model.parameters():
        p.add_(1.0)
acc.save_state(async_save=True)
(project / "returned").touch()
time.sleep(60)
