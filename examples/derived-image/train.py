"""A user's training script in a derived image: uses a package the image did not have (six)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import six
import torch
from torch import nn

from accel import Accelerator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", default="/output")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    accelerator = Accelerator()
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    for _ in range(args.steps):
        x = torch.randn(8, 4)
        loss = (model(x) - x.sum(dim=1, keepdim=True)).pow(2).mean()
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        result = {"num_processes": accelerator.num_processes, "uid": os.getuid(), "six": six.__version__}
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.output_dir) / "derived.json").write_text(json.dumps(result))
        accelerator.print(f"derived: {accelerator.num_processes} processes, uid {os.getuid()}, six {six.__version__}")


if __name__ == "__main__":
    main()
