"""An Accelerate-style training script (only the import differs): MLP, AdamW, scheduler, accumulation, metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from accel import Accelerator
from accel.utils import set_seed


def data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    y = (x[:, :4].sum(dim=1, keepdim=True) > 0).float()
    return TensorDataset(x, y)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    set_seed(0)
    accelerator = Accelerator(gradient_accumulation_steps=2)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=0.1, total_iters=20)
    train = DataLoader(data(256, 1), batch_size=8)
    evaluate = DataLoader(data(101, 2), batch_size=10)
    model, optimizer, scheduler, train, evaluate = accelerator.prepare(model, optimizer, scheduler, train, evaluate)
    for _ in range(args.epochs):
        model.train()
        for x, y in train:
            with accelerator.accumulate(model):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
    model.eval()
    losses = []
    with torch.no_grad():
        for x, y in evaluate:
            per_item = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y, reduction="none")
            losses.append(accelerator.gather_for_metrics(per_item))
    all_losses = torch.cat(losses)
    out = Path(args.out)
    accelerator.save_model(model, out / "model")
    if accelerator.is_main_process:
        params = torch.cat([p.detach().reshape(-1) for p in accelerator.unwrap_model(model).parameters()])
        result = {
            "params": params.tolist(),
            "eval_count": all_losses.numel(),
            "eval_loss": all_losses.mean().item(),
            "world": accelerator.num_processes,
            "precision": accelerator.mixed_precision,
            "lr": scheduler.get_last_lr()[0],
        }
        (out / "result.json").write_text(json.dumps(result))
    accelerator.end_training()


if __name__ == "__main__":
    main()
