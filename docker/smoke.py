"""Build-time smoke check of an accel image (also runnable inside one: python /opt/accel/smoke.py).

Checks that torch is the pinned build of the right variant, that the trimmed wheel still computes
and runs a gloo collective, that accel imports from this checkout, and that `accel env` resolves the
baked config through ACCEL_CONFIG_FILE.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", choices=["cpu", "cuda"], required=True)
    parser.add_argument("--torch", required=True, help="the pinned torch version")
    args = parser.parse_args()

    start = time.monotonic()
    import torch
    import torch.distributed as dist

    import accel

    import_s = time.monotonic() - start
    print(f"smoke: python {sys.version.split()[0]}, torch {torch.__version__}, accel {accel.__file__}")
    # A pin without a local label (2.14.1) accepts the build's label (2.14.1+cu130); 2.13.0+cpu must match.
    found = torch.__version__ if "+" in args.torch else torch.__version__.split("+")[0]
    if found != args.torch:
        raise SystemExit(f"smoke: torch is {torch.__version__}, the cell pins {args.torch}")
    if args.variant == "cpu" and torch.version.cuda is not None:
        raise SystemExit(f"smoke: the cpu image has a CUDA torch ({torch.version.cuda})")
    if args.variant == "cuda" and torch.version.cuda is None:
        raise SystemExit("smoke: the cuda image has a torch without CUDA")

    x = torch.arange(6.0).reshape(2, 3)
    assert float((x @ x.T).sum()) == 83.0
    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        t = torch.ones(4)
        dist.all_reduce(t)
        assert t.tolist() == [1.0] * 4
    finally:
        dist.destroy_process_group()

    exe = shutil.which("accel")
    if exe is None:
        print("smoke: no `accel` command in this checkout yet; skipped `accel env`")
    else:
        env = subprocess.run([exe, "env"], capture_output=True, text=True)
        print(env.stdout, end="")
        if env.returncode != 0:
            print(env.stderr, end="", file=sys.stderr)
            raise SystemExit(f"smoke: `accel env` exited {env.returncode}")
        config = os.environ.get("ACCEL_CONFIG_FILE", "")
        if config and config not in env.stdout:
            raise SystemExit(f"smoke: `accel env` does not name the baked config {config}")
        if os.path.isdir("/opt/accel/environment") and "(matches)" not in env.stdout:
            raise SystemExit("smoke: the venv is not the one sealed at build time (see `accel env --verify`)")
    print(f"smoke: ok (imports {import_s:.2f} s, total {time.monotonic() - start:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
