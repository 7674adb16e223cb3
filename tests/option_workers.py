"""Rank functions for the option tests (module level, so that spawned ranks can import them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def init_method_rank(store_file: str) -> dict[str, Any]:
    """Create an Accelerator whose process group rendezvous through ``file://store_file``."""
    import torch.distributed as dist

    from accel import Accelerator, InitProcessGroupKwargs

    acc = Accelerator(kwargs_handlers=[InitProcessGroupKwargs(init_method=f"file://{store_file}")])
    seen = {"exists": Path(store_file).exists(), "world": acc.num_processes}
    total = torch.tensor([1.0])
    dist.all_reduce(total)
    seen["sum"] = total.item()
    acc.wait_for_everyone()
    acc.state.destroy_process_group()
    return seen


def save_on_each_node_rank(root: str) -> dict[str, Any]:
    """Each rank plays a node of its own (local rank 0) and saves into that node's directory."""
    os.environ["LOCAL_RANK"] = "0"  # two machines of one process each, simulated on one host
    from accel import Accelerator, ProjectConfiguration

    acc = Accelerator(project_config=ProjectConfiguration(save_on_each_node=True))
    model = acc.prepare(torch.nn.Linear(3, 2))
    node = Path(root) / f"node{acc.process_index}"
    out = Path(acc.save_state(node / "ckpt"))
    acc.save_model(model, node / "export")
    acc.save({"w": acc.unwrap_model(model).weight.detach()}, node / "w.safetensors", safe_serialization=True)
    files = sorted(p.name for p in out.iterdir())
    acc.load_state(out)
    extra = sorted(p.name for p in node.iterdir())
    acc.wait_for_everyone()
    acc.state.destroy_process_group()
    return {"files": files, "node": extra, "local_main": acc.is_local_main_process}
