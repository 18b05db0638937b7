"""Failpoints: a process killed on purpose at a named point of a rotation.

``SENTINEL_FAILPOINTS="before:create,after:revoke"`` makes the process send itself a
real ``SIGKILL`` when it reaches one of those points (``before:STEP`` once the step is
recorded as running and before it acts, ``after:STEP`` once it has acted and before
that is recorded). The fault-injection tests run ``sentinel rotate`` in a subprocess
with one failpoint, then resume the rotation and check its invariants: the crash
windows are exactly the ones a real crash can hit, and no test waits for a timing.
Unset (every real run), a check is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "SENTINEL_FAILPOINTS"


def armed() -> frozenset[str]:
    raw = os.environ.get(ENV, "")
    return frozenset(p.strip() for p in raw.split(",") if p.strip())


def hit(when: str, step: str) -> None:
    points = armed()
    if points and f"{when}:{step}" in points:
        os.kill(os.getpid(), signal.SIGKILL)
