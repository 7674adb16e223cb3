"""accel's built-in example job: a small regression model trained with DDP on synthetic data.

    accel launch /opt/accel/example/train.py [--steps N] [--output_dir DIR] ...

It runs in every accel image by default (`docker compose run train`), finishes in seconds on two
CPU processes, and shows the whole programming model: prepare, accumulate, backward, metrics
gathered across ranks, a checkpoint and a saved model.

Output in --output_dir (default /output):
  model/model.safetensors   the trained weights (save_model)
  project/checkpoints/...   the training state at the end, or when the job was stopped (save_state)
  metrics.json              final loss and evaluation error, world size, steps

Stopping: `docker stop` / `docker compose stop` send SIGTERM; the launcher forwards it to every
rank, accel saves a checkpoint at the next step boundary on all of them (the job does nothing for
this: prepare() sets it up) and the launcher exits with 143 (128 + SIGTERM). Started again with
the same output folder, the job resumes from the latest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from accel import Accelerator, ProjectConfiguration

FEATURES = 16


class Progress:
    """The optimizer-step counter, saved in checkpoints with register_for_checkpointing."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])


def make_data(n: int, seed: int) -> TensorDataset:
    """y = x·w + 0.5·sin(x₀) + noise, with a fixed w: learnable, not trivially linear."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.linspace(-1.0, 1.0, FEATURES)
    x = torch.randn(n, FEATURES, generator=gen)
    y = x @ w + 0.5 * torch.sin(x[:, 0]) + 0.05 * torch.randn(n, generator=gen)
    return TensorDataset(x, y.unsqueeze(1))


def cosine(step: int, total: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="accel's example job (synthetic regression)")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps in all (default 200)")
    parser.add_argument("--batch_size", type=int, default=32, help="per process (default 32)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--samples", type=int, default=4096, help="training set size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", default="/output", help="model, checkpoints and metrics (default /output)")
    parser.add_argument("--log_every", type=int, default=25)
    parser.add_argument("--step_delay", type=float, default=0.0, help="seconds to sleep per step (tests of stop)")
    parser.add_argument("--no_resume", action="store_true", help="ignore checkpoints already in the output")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    output = Path(args.output_dir)
    acc = Accelerator(
        project_config=ProjectConfiguration(
            project_dir=str(output / "project"), automatic_checkpoint_naming=True, total_limit=2
        )
    )
    torch.manual_seed(args.seed)

    train = make_data(args.samples, args.seed)
    evaluation = make_data(512, args.seed + 1)
    model = nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine(s, args.steps))
    train_dl = DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True)
    eval_dl = DataLoader(evaluation, batch_size=128)
    model, optimizer, train_dl, eval_dl, scheduler = acc.prepare(model, optimizer, train_dl, eval_dl, scheduler)

    progress = Progress()
    acc.register_for_checkpointing(progress)
    checkpoints = output / "project" / "checkpoints"
    if not args.no_resume and checkpoints.is_dir() and any(checkpoints.iterdir()):
        where = acc.load_state()
        acc.print(f"resumed from {where} at step {progress.step}")
    step = progress.step

    acc.print(
        f"example: {acc.num_processes} processes, device {acc.device}, mixed precision {acc.mixed_precision}, "
        f"accumulation {acc.gradient_accumulation_steps}, {args.steps} steps, output {output}"
    )
    loss_fn = nn.MSELoss()
    start = time.monotonic()
    loss = torch.zeros(())
    while step < args.steps:
        for x, y in train_dl:
            with acc.accumulate(model):
                loss = loss_fn(model(x), y)
                acc.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if not acc.sync_gradients:
                continue
            step += 1
            progress.step = step
            if args.step_delay:
                time.sleep(args.step_delay)
            if step % args.log_every == 0 or step == args.steps:
                mean = acc.reduce(loss.detach(), "mean")
                acc.print(f"step {step:>4}/{args.steps}  loss {mean.item():.4f}  {time.monotonic() - start:.1f} s")
            if step >= args.steps:
                break

    model.eval()
    errors = []
    with torch.no_grad():
        for x, y in eval_dl:
            errors.append(acc.gather_for_metrics((model(x) - y).pow(2)))
    eval_mse = torch.cat(errors).mean().item()
    where = acc.save_state()
    acc.save_model(model, output / "model")
    if acc.is_main_process:
        metrics = {
            "steps": step,
            "num_processes": acc.num_processes,
            "train_loss": loss.item(),
            "eval_mse": eval_mse,
            "seconds": round(time.monotonic() - start, 2),
        }
        (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    acc.print(f"done: {step} steps on {acc.num_processes} processes, eval mse {eval_mse:.4f}; "
              f"model in {output / 'model'}, checkpoint in {where}")  # fmt: skip
    acc.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
