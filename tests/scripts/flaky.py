"""Launch-test worker: rank 1 fails on the first attempt; after a restart every rank writes its attempt."""

import sys
from pathlib import Path

from accel import env
from accel.state import PartialState

attempt = env.get("TORCHELASTIC_RESTART_COUNT")
state = PartialState()
if state.process_index == 1 and attempt == "0":
    raise RuntimeError("first attempt fails")
state.wait_for_everyone()
Path(sys.argv[1], f"rank{state.process_index}-attempt{attempt}").write_text("ok")
state.destroy_process_group()
