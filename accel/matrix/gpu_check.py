"""CUDA checks a CUDA cell runs when the host gives its container GPUs (``python -m accel.matrix.gpu_check``).

For bf16 and fp16: a few training steps on ``cuda`` through Accelerator (fp16 with its grad
scaler), then a checkpoint saved and loaded back on the GPU, compared tensor by tensor. Each
precision runs in its own interpreter (an Accelerator is one per process). Prints one line.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile


def one(precision: str, output: str) -> str:
    import torch
    from torch import nn

    from accel.accelerator import Accelerator
    from accel.plugins import ProjectConfiguration

    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: torch.cuda.is_available() is False inside the container")
    project = ProjectConfiguration(project_dir=output, automatic_checkpoint_naming=True)
    accelerator = Accelerator(mixed_precision=precision, project_config=project)
    if accelerator.device.type != "cuda" or accelerator.mixed_precision != precision:
        raise SystemExit(
            f"gpu_check: {precision}: device {accelerator.device}, precision {accelerator.mixed_precision}"
        )
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model, optimizer = accelerator.prepare(model, optimizer)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 32, generator=gen), torch.randn(64, 1, generator=gen)
    losses = []
    for _ in range(5):
        with accelerator.autocast():
            loss = nn.functional.mse_loss(model(x.to(accelerator.device)), y.to(accelerator.device))
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss))
    if not all(map(torch.isfinite, map(torch.tensor, losses))):
        raise SystemExit(f"gpu_check: {precision}: non-finite loss {losses}")
    saved = {k: v.detach().clone() for k, v in accelerator.unwrap_model(model).state_dict().items()}
    where = accelerator.save_state()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    accelerator.load_state(where)
    loaded = accelerator.unwrap_model(model).state_dict()
    for key, value in saved.items():
        if loaded[key].device.type != "cuda" or not torch.equal(loaded[key], value):
            raise SystemExit(f"gpu_check: {precision}: checkpoint round trip changed {key}")
    return f"{precision} ok (loss {losses[0]:.3f} -> {losses[-1]:.3f})"


def main() -> int:
    if len(sys.argv) == 3:
        sys.stdout.write(one(sys.argv[1], sys.argv[2]) + "\n")
        return 0
    parts = []
    for precision in ("bf16", "fp16"):
        with tempfile.TemporaryDirectory(prefix="accel-gpu-check-") as tmp:
            proc = subprocess.run(
                [sys.executable, "-m", "accel.matrix.gpu_check", precision, tmp], capture_output=True, text=True
            )
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            sys.stdout.write(f"fail ({precision}: {tail})\n")
            return 1
        parts.append(proc.stdout.strip())
    import torch

    name = torch.cuda.get_device_name(0)
    sys.stdout.write(f"pass ({'; '.join(parts)}; checkpoint round trip on {name})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
