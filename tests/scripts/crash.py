"""Launch-test worker: rank 1 raises at once; rank 0 fails later (so rank 1 is the root cause)."""

import time

from accel.state import PartialState


def explode() -> None:
    raise ValueError("rank 1 exploded")


state = PartialState()
if state.process_index == 1:
    explode()
time.sleep(2)
raise RuntimeError("rank 0 failed later")
