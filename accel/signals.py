"""A coordinated checkpoint when the job is preempted (SIGTERM or SIGUSR1), then a clean exit.

Under ``accel launch`` the Accelerator installs :class:`Preemption` at the end of ``prepare()``.
A signal only sets a flag. Before each batch of a prepared DataLoader (the boundary at which the
previous optimizer step, scheduler step and ``zero_grad`` are complete), the ranks agree on the
flag; at the first batch of an accumulation window after they agree, every rank joins a
``save_state`` and the process exits with status 0. When the flag was raised, all ranks
therefore save the same step, and the checkpoint resumes exactly like any other.

In one process agreement is a flag check. With several processes it is an all-reduce on a
separate gloo group, started asynchronously at one batch and waited for at a later one, so the
decision taken at batch *b* is the same on every rank and no rank blocks another (a rank only waits
for work that every other rank has already started). Rounds are spaced so that they cost nothing
measurable: each one also agrees (MIN over the ranks' proposals) on how many batches to wait before
the next, aiming at one round per ``ROUND_S`` of training; a signal is acted on within about two
rounds (a fraction of a second) or two batches, whichever is longer. (A round on every batch
added a collective to each micro-step: up to 2.5x the step time of a small model under
accumulation on two CPU ranks.) It runs on batches of DataLoaders with the same number of
batches on every rank (``even_batches=True``, the default); batches of uneven ones are not used
as step boundaries. A second signal, or a signal while no
prepared DataLoader is being iterated, restores the previous handler and re-delivers the signal
(the process stops as it would have).

torch's elastic agent forwards SIGTERM to every rank and kills them after
``--shutdown_timeout`` seconds (default 30): a step plus a save must fit in that grace period.
"""

from __future__ import annotations

import datetime
import os
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from accel.group import leave_at_exit

if TYPE_CHECKING:
    from accel.checkpoint import Checkpointer

GRACE_S = 120
ROUND_S = 0.25  # training time between agreement rounds
MAX_SPACING = 1024  # batches
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1") if hasattr(signal, name))


class Preemption:
    """Turns SIGTERM/SIGUSR1 into a checkpoint at the next step boundary on every rank."""

    def __init__(self, accelerator: Any, checkpointer: Checkpointer) -> None:
        self.acc = accelerator
        self.checkpointer = checkpointer
        self.received: int | None = None
        self.decided = False
        self.saved_to: str | None = None
        self._previous: dict[int, Any] = {}
        self._group: Any = None
        self._flag = torch.zeros(2, dtype=torch.int64)  # [signal received, -proposed spacing]
        self._work: Any = None
        self._countdown = 1  # batches until the next round
        self._gap = 1  # batches between the last round and the next
        self._last = 0.0
        self.rounds = 0

    def install(self) -> bool:
        """Install the handlers and the per-batch check; False when not on the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return False
        if self.acc.use_distributed:
            self._group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=GRACE_S))
            leave_at_exit(self._group)
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        self.acc.gradient_state.on_batch = self.check
        return True

    def uninstall(self) -> None:
        """Put the previous handlers back and stop checking."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        if self.acc.gradient_state.on_batch == self.check:
            self.acc.gradient_state.on_batch = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None or self.acc.gradient_state.active is None:
            previous = self._previous.get(signum, signal.SIG_DFL)
            self.uninstall()
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received = signum

    def _agree(self) -> bool:
        if self.decided or self._group is None:
            self.decided = self.decided or self.received is not None
            return self.decided
        self._countdown -= 1
        if self._countdown > 0:
            return False
        now = time.monotonic()
        agreed = 1
        if self._work is not None:
            self._work.wait()
            self._work = None
            self.decided = bool(self._flag[0].item() > 0)
            if self.decided:
                return True
            agreed = int(-self._flag[1].item())  # the smallest spacing any rank proposed
        if self._last:
            per_batch = (now - self._last) / self._gap
            proposal = MAX_SPACING if per_batch <= 0 else min(max(int(ROUND_S / per_batch), 1), MAX_SPACING)
        else:
            proposal = 1  # nothing measured yet
        self._flag[0] = 0 if self.received is None else 1
        self._flag[1] = -proposal  # MAX of the negated proposals: every rank gets the smallest
        self._last, self._gap, self._countdown = now, agreed, agreed
        self.rounds += 1
        self._work = dist.all_reduce(self._flag, op=dist.ReduceOp.MAX, group=self._group, async_op=True)
        return False

    def check(self, loader: Any) -> None:
        """Called before each batch: save and exit once the ranks agree and a window has ended."""
        if self._group is not None and not _even(loader):
            return
        if not self._agree() or not self.acc.sync_gradients:
            return
        cfg = self.acc.project_configuration
        target = (
            None
            if cfg.automatic_checkpoint_naming
            else self.checkpointer.checkpoints_dir / (f"checkpoint_{cfg.iteration}")
        )
        self.saved_to = str(self.checkpointer.save_state(target))
        name = signal.Signals(self.received).name if self.received is not None else "a signal on another rank"
        self.acc.print(f"accel: {name}: saved {self.saved_to}; exiting")
        self.uninstall()
        raise SystemExit(0)


def _even(loader: Any) -> bool:
    sharded = getattr(loader, "sharded", None)
    return sharded is not None and bool(sharded.even_batches or sharded.split_batches)
