"""Kill-test worker: train and checkpoint in a loop until killed.

usage: ckpt_save_loop.py PROJECT_DIR
Each round takes an optimizer step, saves an automatically named checkpoint (total_limit=2) and
replaces PROJECT_DIR/fixed, then touches PROJECT_DIR/saved-<n>.
"""

import sys
from pathlib import Path

import torch

from accel import Accelerator, ProjectConfiguration

project = Path(sys.argv[1])
config = ProjectConfiguration(project_dir=str(project), automatic_checkpoint_naming=True, total_limit=2)
acc = Accelerator(project_config=config)
if (project / "checkpoints" / "latest").exists():
    acc.project_configuration.iteration = 10_000 * (len(list(project.glob("run-*"))) + 1)
(project / f"run-{acc.project_configuration.iteration}").touch()
model = torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.Linear(2048, 1024))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
model, opt = acc.prepare(model, opt)
round_ = 0
while True:
    loss = model(torch.randn(8, 1024)).square().mean()
    acc.backward(loss)
    opt.step()
    opt.zero_grad()
    acc.save_state()
    acc.save_state(project / "fixed")
    round_ += 1
    (project / f"saved-{round_}").touch()
