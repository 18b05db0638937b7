"""Fault injection: a rotation killed with a real SIGKILL just before and just after
every step (and between minting a key and recording it), then run again.

Each case runs ``sentinel rotate`` in a subprocess with one failpoint armed
(rotators/failpoints.py), so the process dies exactly in that window. The second run
resumes it. After each kill and at the end the invariants are checked against moto's
real IAM and Secrets Manager: the exposed key is untouched until the replacement is
stored and tested; at the end the user holds exactly one key (the replacement, never
two), it works and is AWSCURRENT in the store, the exposed key is deleted and refused,
and the revoke step completed once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from rotators.base import STEPS
from sentinel.store.models import RotationEvent
from tests.motoserver import AwsKey
from tests.rotationsetup import (
    env_for,
    plant_and_scan,
    refused,
    sentinel,
    sm_current,
    write_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAILPOINTS = [f"{when}:{step}" for step in STEPS for when in ("before", "after")] + [
    "minted:create"
]
REVOKING = STEPS.index("revoke")


@pytest.fixture
def opened(store_env: str) -> Any:
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


def _step_index(point: str) -> int:
    return STEPS.index(point.split(":")[1])


@pytest.mark.parametrize("point", FAILPOINTS)
def test_killed_at_every_step_boundary_resumes_to_one_working_key(
    point: str, moto: Any, opened: Any, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path / "service.toml", moto)
    env = env_for(moto)
    leak = plant_and_scan(tmp_path, moto, opened)
    user = leak.key.user

    killed = sentinel(
        "rotate",
        str(leak.finding_id),
        "--config",
        str(cfg),
        env={**env, "SENTINEL_FAILPOINTS": point},
    )
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])
    idx = _step_index(point)
    revoke_done = idx > REVOKING or (idx == REVOKING and point.startswith("after"))
    keys = moto.keys(user)
    if not revoke_done:
        # never revoked before the replacement is stored and tested
        assert keys[leak.key.access_key_id] == "Active"
        assert moto.caller_arn(leak.key).endswith(f"user/{user}")
    assert len(keys) <= 2  # the exposed key and at most one replacement

    resumed = sentinel(
        "rotate", str(leak.finding_id), "--config", str(cfg), "--format", "json", env=env
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-2000:]

    # the end state: one working key, current in the store; the exposed one gone
    keys = moto.keys(user)
    assert leak.key.access_key_id not in keys
    assert len(keys) == 1, keys
    [new_id] = keys
    stored = sm_current(moto, f"leaked/{leak.repo.name}/{leak.key.access_key_id}")
    assert stored["aws_access_key_id"] == new_id
    new = AwsKey(user, new_id, stored["aws_secret_access_key"])
    assert moto.caller_arn(new).endswith(f"user/{user}")
    assert refused(moto, leak.key)

    with opened.sessions() as s:
        evs = list(s.scalars(select(RotationEvent).order_by(RotationEvent.id)))
    done = [(e.step, e.event) for e in evs if e.event in ("done", "skipped")]
    for step in STEPS:
        assert done.count((step, "done")) == 1, (step, done)
    # the revoke that changed the key's state happened once: a resumed revoke after
    # a kill that followed it found the key already inactive
    revokes = [e for e in evs if e.step == "revoke" and e.event == "done"]
    assert len(revokes) == 1
    assert revokes[0].detail == {"performed": point != "after:revoke"}
    minted = [e for e in evs if e.event == "minted"]
    assert len(minted) == 1  # one replacement recorded, whatever the crash
