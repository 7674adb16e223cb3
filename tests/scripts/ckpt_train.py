"""Checkpoint-test training script run by ``accel launch`` (2 ranks).

usage: ckpt_train.py PROJECT_DIR MODE
  plain    train 3 epochs; rank 0 writes PROJECT_DIR/final.safetensors
  crash    the same, checkpointing every 4 steps; on the first attempt rank 1 is SIGKILLed after
           step 9, and the restarted group resumes by itself (auto-resume)
  sigterm  train slowly; rank 0 writes PROJECT_DIR/ready after step 6 and waits for SIGTERM
  resume   load the latest checkpoint explicitly (a fresh job, as after a requeue) and finish
"""

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ckpt_workers as w
import safetensors.torch

from accel import env

project, mode = Path(sys.argv[1]), sys.argv[2]
attempt = env.get_int(env.TORCHELASTIC_RESTART_COUNT) or 0
acc, model, opt, loader, sched, counter = w.build(str(project), automatic_checkpoint_naming=True, total_limit=2)
if mode == "resume":
    acc.load_state()
if acc.checkpoints.resumed_from is not None:
    print(f"rank {acc.process_index} attempt {attempt}: resumed from {acc.checkpoints.resumed_from.name}", flush=True)
for _epoch in range(loader.state_dict()["epoch"], 3):
    for batch in loader:
        w.train_step(acc, model, opt, sched, counter, batch)
        if mode == "crash" and counter.count % 4 == 0:
            acc.save_state()
        if mode == "crash" and attempt == 0 and counter.count == 9 and acc.process_index == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "sigterm":
            if counter.count == 6 and acc.is_main_process:
                (project / "ready").write_text("ready")
            time.sleep(0.2)
if acc.is_main_process:
    weights = {k: v.contiguous() for k, v in acc.unwrap_model(model).state_dict().items()}
    safetensors.torch.save_file(weights, project / "final.safetensors")
acc.state.destroy_process_group()
