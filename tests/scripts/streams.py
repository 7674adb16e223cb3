"""Prints a few lines on stdout and stderr with the rank and the variables the launcher set."""

import os
import sys

rank = os.environ["RANK"]
for i in range(3):
    print(f"out {i} of rank {rank}", flush=True)
extra = f"debug={os.environ.get('ACCEL_DEBUG_MODE')} foo={os.environ.get('FOO')} bar={os.environ.get('BAR')}"
print(f"err of rank {rank} {extra}", file=sys.stderr, flush=True)
