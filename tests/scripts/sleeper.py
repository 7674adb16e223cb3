"""Launch-test worker: write this rank's pid to OUT_DIR/pid<rank>, then sleep (to be signalled)."""

import os
import sys
import time
from pathlib import Path

from accel import env

rank = env.get("RANK")
Path(sys.argv[1], f"pid{rank}").write_text(str(os.getpid()))
time.sleep(120)
