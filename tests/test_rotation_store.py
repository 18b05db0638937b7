"""Rotations in the store, on SQLite and PostgreSQL: one rotation per credential
(whatever the number of requests, findings or occurrences), the runner's lease, the
manual-remediation record and its alert, and no value in clear in the database."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from sentinel.settings import ServiceSettings
from sentinel.store.models import Finding, Rotation, RotationFinding
from tests.conftest import run_cli, token
from tests.slackapi import SlackStandIn

AWS_ID = "AKIA" + "QX7LM2PB4ZRT6WNC"  # shaped like a key id; split so no rule fires here
AWS_SECRET = "Zk8q/Vn2LbT4" + "xWc9RfHj6PmYs3DgA7eKu5NwB1oX"


@pytest.fixture
def opened(store_env: str) -> Iterator[Any]:
    from sentinel.store.facade import open_store

    st = open_store()
    yield st
    st.close()


def _scan(tmp_path: Path, name: str, body: str) -> None:
    f = tmp_path / "repo" / name
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(body)
    run_cli("scan", "path", str(f.parent), "--store", "-f", "json")


def _findings(opened: Any) -> dict[str, Finding]:
    with opened.sessions() as s:
        return {f.rule_id: f for f in s.scalars(select(Finding))}


def _settings(**rotation: Any) -> ServiceSettings:
    return ServiceSettings.model_validate({"rotation": rotation})


AWS_ROTATION = {
    "stores": {"sm": {"kind": "aws-secretsmanager", "region": "us-east-1"}},
    "targets": [{"rules": ["aws.*"], "store": "sm", "path": "leaked/{repo}/{identifier}"}],
}


def test_concurrent_requests_for_one_finding_make_one_rotation(opened: Any, tmp_path: Path) -> None:
    from sentinel.jobs.rotation import Rotations

    gh = token("ghp", 7)
    _scan(tmp_path, "ci.env", f"GITHUB_TOKEN={gh}\n")
    [f] = [f for r, f in _findings(opened).items() if r.startswith("github")]
    outcomes: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        try:
            rot = Rotations(opened, _settings())
            barrier.wait()
            outcomes.append(rot.request(f.id, "test"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({o.rotation_id for o in outcomes}) == 1
    assert sum(o.created for o in outcomes) == 1
    with opened.sessions() as s:
        assert len(list(s.scalars(select(Rotation)))) == 1
        [r] = s.scalars(select(Rotation))
        assert r.mode == "revoke" and r.rotator == "github-token"


def test_concurrent_processes_make_one_rotation(opened: Any, tmp_path: Path) -> None:
    """The unique credential key decides across processes too (no in-process lock)."""
    gh = token("ghp", 8)
    _scan(tmp_path, "ci.env", f"GITHUB_TOKEN={gh}\n")
    [f] = [f for r, f in _findings(opened).items() if r.startswith("github")]
    code = (
        "import sys\n"
        "from sentinel.store.facade import open_store\n"
        "from sentinel.jobs.rotation import Rotations\n"
        "from sentinel.settings import ServiceSettings\n"
        "st = open_store()\n"
        f"o = Rotations(st, ServiceSettings()).request({f.id}, 'p')\n"
        "print(o.rotation_id, int(o.created))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len({o[0] for o in outs}) == 1
    assert sum(int(o[1]) for o in outs) == 1


def test_an_aws_key_id_and_its_secret_are_one_credential(opened: Any, tmp_path: Path) -> None:
    from sentinel.jobs.rotation import Rotations

    _scan(
        tmp_path,
        "settings.py",
        f"aws_access_key_id = '{AWS_ID}'\naws_secret_access_key = '{AWS_SECRET}'\n",
    )
    found = _findings(opened)
    # the key id, and the secret (as the pair rule or on its own)
    secret_rule = next(r for r in ("aws.access-key-pair", "aws.secret-access-key") if r in found)
    assert "aws.access-key-id" in found
    rot = Rotations(opened, _settings(**AWS_ROTATION))
    by_id = rot.request(found["aws.access-key-id"].id, "test")
    by_secret = rot.request(found[secret_rule].id, "test")
    assert by_id.rotation_id == by_secret.rotation_id
    assert by_id.created and not by_secret.created
    v = by_id.view
    assert v["mode"] == "rotate" and v["exposed"] == AWS_ID
    assert v["store"] == "sm" and v["path"] == f"leaked/repo/{AWS_ID}"
    # every finding of that key is covered (the pair rule's too, when it fired)
    aws_ids = sorted(f.id for r, f in found.items() if r.startswith("aws."))
    assert v["findings"] == aws_ids
    # the secret was found beside the key id and kept sealed for the rotation
    from sentinel.store.rotations import SqlRotationLog

    state = SqlRotationLog(opened).load(v["id"])
    assert state.exposed.identifier == AWS_ID and state.exposed.secret == AWS_SECRET
    assert AWS_SECRET not in repr(state.exposed)


def test_the_database_never_holds_a_value_in_clear(opened: Any, tmp_path: Path) -> None:
    from sentinel.jobs.rotation import Rotations

    gh = token("ghp", 9)
    _scan(
        tmp_path,
        "ci.env",
        f"GITHUB_TOKEN={gh}\naws_access_key_id={AWS_ID}\naws_secret_access_key={AWS_SECRET}\n",
    )
    rot = Rotations(opened, _settings(**AWS_ROTATION))
    for f in _findings(opened).values():
        rot.request(f.id, "test")
    with opened.engine.connect() as conn:
        for table in ("rotations", "rotation_steps", "rotation_events", "rotation_findings"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                blob = repr(tuple(row)).encode()
                for secret in (gh, AWS_SECRET):
                    assert secret.encode() not in blob, table


def test_a_rule_without_a_rotator_gets_a_remediation_record_and_an_alert(
    opened: Any, tmp_path: Path
) -> None:
    from sentinel.alerts import routing
    from sentinel.jobs.rotation import Rotations

    slack = SlackStandIn().start()
    try:
        stripe = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc" + "Xq2Rz9Lm"
        _scan(tmp_path, "pay.env", f"STRIPE_SECRET_KEY={stripe}\n")
        [f] = [f for r, f in _findings(opened).items() if r.startswith("stripe")]
        assert f.rotator is None
        alerts = routing.parse({"slack": {"webhook_url": slack.webhook_url(), "retries": 0}})
        rot = Rotations(opened, _settings(), alerts=alerts)
        out = rot.request(f.id, "test")
        v = out.view
        assert v["mode"] == "manual" and v["status"] == "manual" and v["steps"] == []
        rem = v["remediation"]
        assert "names no rotator" in rem["reason"]
        assert rem["where"][0]["path"].endswith("pay.env") and rem["what_to_do"]
        with opened.sessions() as s:
            assert s.get(Finding, f.id).status == "remediation_required"
        [payload] = slack.payloads()
        body = str(payload)
        assert "Manual remediation needed" in body and "pay.env" in body
        assert stripe not in body
        # asked again: the same record, no second alert
        again = rot.request(f.id, "test")
        assert again.rotation_id == out.rotation_id and not again.created
        assert len(slack.payloads()) == 1
    finally:
        slack.stop()


def test_a_rotation_is_run_by_one_holder_and_a_dead_one_is_taken_over(
    opened: Any, tmp_path: Path
) -> None:
    from sentinel.jobs.rotation import Rotations
    from sentinel.store.rotations import claim, holder_id, release

    gh = token("ghp", 10)
    _scan(tmp_path, "ci.env", f"GITHUB_TOKEN={gh}\n")
    [f] = [f for r, f in _findings(opened).items() if r.startswith("github")]
    rid = Rotations(opened, _settings()).request(f.id, "t").rotation_id
    me = holder_id()
    assert claim(opened, rid, me, 60)
    assert claim(opened, rid, me, 60)  # renewing is taking it again
    import socket

    other_live = f"{socket.gethostname()}:1"  # pid 1 is alive
    assert not claim(opened, rid, other_live, 60)
    release(opened, rid, me)
    # a holder whose process is gone: its lease is void before it expires
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    dead = f"{socket.gethostname()}:{p.pid}"
    assert claim(opened, rid, dead, 600)
    assert claim(opened, rid, me, 60)
    with opened.sessions() as s:
        assert s.get(Rotation, rid).lease_holder == me
        assert (
            s.scalar(select(RotationFinding.rotation_id).where(RotationFinding.finding_id == f.id))
            == rid
        )


def test_keys_rotate_reseals_the_values_a_rotation_keeps(opened: Any, tmp_path: Path) -> None:
    import dataclasses

    from sentinel.jobs.rotation import Rotations
    from sentinel.store.crypto import Keyring
    from sentinel.store.rekey import reseal_all
    from sentinel.store.rotations import SqlRotationLog

    gh = token("ghp", 11)
    _scan(tmp_path, "ci.env", f"GITHUB_TOKEN={gh}\n")
    [f] = [f for r, f in _findings(opened).items() if r.startswith("github")]
    rid = Rotations(opened, _settings()).request(f.id, "t").rotation_id
    old_ring = opened.keyring
    new_key = os.urandom(32)
    ring = Keyring.of([new_key, *old_ring.keys.values()], "test")
    moved = dataclasses.replace(opened, keyring=ring)
    done, left = reseal_all(moved)
    assert done == 2 and left == 0  # the finding's value and the rotation's
    with opened.sessions() as s:
        assert s.get(Rotation, rid).secret_key_id == ring.current
    only_new = dataclasses.replace(opened, keyring=Keyring.of([new_key], "new"))
    assert SqlRotationLog(only_new).load(rid).exposed.secret == gh
