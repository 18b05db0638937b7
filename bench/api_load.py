#!/usr/bin/env python3
"""The findings API under load: 50 concurrent clients for 60 s against the real
``sentinel serve`` on loopback, over a store of 1,000,000 occurrences, on SQLite and on
PostgreSQL.

    .venv/bin/python bench/api_load.py [--findings 200000] [--duration 60]
        [--clients 50] [--processes 1] [--runs 1] [--db sqlite,postgresql]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres] [--reseed]

The store is seeded straight into the migrated schema (``sentinel db upgrade`` first),
not through the API: PostgreSQL with COPY, SQLite with executemany in one transaction.
Seeded stores are kept between runs, named by a hash of what was seeded: a database
``sentinel_bench_api_<hash>`` on PostgreSQL, ``bench/work/api-load-<hash>.db`` for
SQLite. Each run first puts back the statuses the load's triage changed.

The load is wrk (Debian package ``wrk``) with bench/api_load.lua: one wrk thread per
client, each making one request at a time: 62% lists (30% unfiltered, the rest by
status, severity, rule, source kind, target, since, or status and severity), following
next_cursor for up to two more pages; 31% one finding with its occurrences; 7% triage
(PATCH to ignored / false_positive with a reason, or reopen). wrk is C and uses a few
percent of one core at these rates; the CPU seconds of server and load generator are
both measured and reported, so what the load generator took from the server is visible.

Prints a table; writes bench/results/<date>-api-load.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "bench" / "work"
LUA = ROOT / "bench" / "api_load.lua"
SEED_VERSION = 1
FP_KEY = "bench-api-load-installation-key-0123456789"
# the seed's clock: every seeded time is before this, every triage by the load after it
EPOCH = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
N_REPOS, N_IMAGES, N_CLUSTERS, N_DIRS = 2000, 300, 12, 200


# -- seed ----------------------------------------------------------------------------


def seed_status_sql(col: str) -> str:
    """The seeded status of a finding as a function of its id (the Lua script triages
    only ids below 95 mod 100, the ones in a triage status)."""
    return (
        f"CASE WHEN {col} % 100 < 82 THEN 'open' WHEN {col} % 100 < 90 THEN 'ignored' "
        f"WHEN {col} % 100 < 95 THEN 'false_positive' WHEN {col} % 100 < 97 THEN 'rotated' "
        f"WHEN {col} % 100 < 98 THEN 'revoked' WHEN {col} % 100 < 99 THEN 'rotating' "
        "ELSE 'remediation_required' END"
    )


def seed_status(fid: int) -> str:
    m = fid % 100
    for bound, s in (
        (82, "open"),
        (90, "ignored"),
        (95, "false_positive"),
        (97, "rotated"),
        (98, "revoked"),
        (99, "rotating"),
    ):
        if m < bound:
            return s
    return "remediation_required"


def rule_pool() -> list[tuple[str, str, str]]:
    """(rule id, severity, confidence), most frequent first: a few generic and cloud
    rules make most findings, as in a real estate; the long tail has the rest."""
    from detectors.ruleset import load_builtin

    rules = sorted((r.id, r.severity, r.confidence) for r in load_builtin())
    rng = random.Random(13)
    rng.shuffle(rules)
    return rules


def repo(n: int) -> str:
    return f"https://git.example.org/team{n % 97}/service{n}.git"


def image(n: int) -> str:
    return f"registry.example.org/team{n % 97}/app{n}:1.{n % 7}"


def target_for(f: int, k: int) -> tuple[str, str, dict[str, Any]]:
    """(source kind, target, location fields) of occurrence ``k`` of finding ``f``."""
    h = (f * 2654435761 + k * 40503) % 1000
    if h < 850:  # git: a finding mostly lives in one repository, sometimes copied
        r = (f * 31 + (k // 4) * 7) % N_REPOS
        c = hashlib.sha1(f"c{f}.{k}".encode()).hexdigest()
        return (
            "git",
            repo(r),
            {
                "commit": c,
                "path": f"src/mod{(f + k) % N_DIRS}/settings{k % 5}.py",
                "author": f"dev{(f * 3) % 400}",
                "email": f"dev{(f * 3) % 400}@example.org",
                "date": (EPOCH - dt.timedelta(days=(f * 7 + k) % 900)).isoformat(),
            },
        )
    if h < 920:
        return ("file", f"/srv/checkouts/app{f % 150}", {"path": f"config/app{k}.env"})
    if h < 970:
        i = (f + k) % N_IMAGES
        return (
            "image",
            image(i),
            {
                "image": image(i),
                "layer": "sha256:" + hashlib.sha256(f"l{i}.{k % 6}".encode()).hexdigest(),
                "path": f"app/.env{k}",
            },
        )
    cl = f % N_CLUSTERS
    return (
        "k8s",
        f"cluster-{cl}",
        {
            "cluster": f"cluster-{cl}",
            "namespace": f"ns{f % 40}",
            "kind": "Secret",
            "name": f"app-{f % 500}",
            "key": f"TOKEN_{k}",
        },
    )


def seed_rows(
    n_findings: int, key_id: str
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    from sentinel.store.models import SOURCE_BITS

    rules = rule_pool()
    weights = [1.0 / (i + 1) ** 1.1 for i in range(len(rules))]
    rng = random.Random(2026)
    picks = rng.choices(range(len(rules)), weights=weights, k=n_findings)
    occ_id = 0
    for f in range(1, n_findings + 1):
        rule_id, severity, confidence = rules[picks[f - 1]]
        last = EPOCH - dt.timedelta(seconds=rng.randrange(180 * 86400))
        first = last - dt.timedelta(seconds=rng.randrange(365 * 86400))
        status = seed_status(f)
        triaged = status in ("ignored", "false_positive")
        finding = {
            "id": f,
            "fingerprint": hashlib.sha256(f"bench-finding-{f}".encode()).hexdigest(),
            "fingerprint_key_id": key_id,
            "rule_id": rule_id,
            "description": f"{rule_id} (seeded)",
            "severity": severity,
            "confidence": confidence,
            "redacted": "AKIA********" if f % 3 else "ghp_********",
            "status": status,
            "first_seen": first,
            "last_seen": last,
            "triaged_by": "seed" if triaged else None,
            "triaged_at": last if triaged else None,
            "triage_reason": "seeded" if triaged else None,
            "first_scan_id": None,
            "rotator": None,
            "secret_sealed": None,
            "secret_key_id": None,
        }
        occs = []
        for k in range(1 + (f * 7) % 9):  # 1..9 places each, five on average
            occ_id += 1
            kind, target, loc = target_for(f, k)
            occs.append(
                {
                    "id": occ_id,
                    "finding_id": f,
                    "location_key": hashlib.sha256(f"bench-occ-{f}-{k}".encode()).hexdigest(),
                    "source": kind,
                    "target": target,
                    "commit": loc.get("commit"),
                    "image": loc.get("image"),
                    "layer": loc.get("layer"),
                    "cluster": loc.get("cluster"),
                    "namespace": loc.get("namespace"),
                    "kind": loc.get("kind"),
                    "name": loc.get("name"),
                    "key": loc.get("key"),
                    "path": loc.get("path", ""),
                    "line": 1 + (f + k) % 400,
                    "column": 5,
                    "author": loc.get("author"),
                    "email": loc.get("email"),
                    "date": loc.get("date"),
                    "first_seen": first,
                    "last_seen": last,
                    "last_scan_id": None,
                    "gone_at": last if (f + k) % 11 == 0 else None,
                }
            )
        finding["sources"] = 0
        for o in occs:
            finding["sources"] |= SOURCE_BITS[o["source"]]
        yield finding, occs


def seed_hash(n_findings: int) -> str:
    from sentinel.store import migrate

    doc = {"v": SEED_VERSION, "findings": n_findings, "head": migrate.head(), "key": FP_KEY}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


def _batches(n_findings: int, key_id: str, size: int = 20_000) -> Iterator[tuple[list, list]]:  # type: ignore[type-arg]
    fs: list[dict[str, Any]] = []
    os_: list[dict[str, Any]] = []
    for f, occs in seed_rows(n_findings, key_id):
        fs.append(f)
        os_.extend(occs)
        if len(fs) >= size:
            yield fs, os_
            fs, os_ = [], []
    if fs:
        yield fs, os_


def _mark_seeded(conn: Any, digest: str) -> None:
    from sqlalchemy import insert

    from sentinel.store.models import Setting

    conn.execute(insert(Setting.__table__), [{"name": "bench_seed", "value": digest}])


def _is_seeded(url: str, digest: str) -> bool:
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    try:
        with eng.connect() as c:
            row = c.execute(text("SELECT value FROM settings WHERE name = 'bench_seed'")).first()
            return row is not None and row[0] == digest
    except Exception:
        return False
    finally:
        eng.dispose()


def seed(url: str, n_findings: int, digest: str) -> tuple[int, float]:
    """Migrate and fill the store at ``url``; returns (occurrences, seconds)."""
    from sqlalchemy import insert, text

    from sentinel.fingerprint import require_private
    from sentinel.store import migrate
    from sentinel.store.models import Finding, Occurrence
    from sentinel.store.session import make_engine

    t0 = time.perf_counter()
    key_id = require_private().id
    engine = make_engine(url)
    migrate.upgrade(engine)
    n_occ = 0
    try:
        if engine.dialect.name == "postgresql":
            fcols = [c.name for c in Finding.__table__.columns]
            ocols = [c.name for c in Occurrence.__table__.columns]
            raw = engine.raw_connection()
            try:
                dbc = raw.driver_connection
                assert dbc is not None
                with dbc.cursor() as cur:
                    for fs, os_ in _batches(n_findings, key_id):
                        cq = ", ".join(f'"{c}"' for c in fcols)
                        with cur.copy(f"COPY findings ({cq}) FROM STDIN") as cp:
                            for row in fs:
                                cp.write_row([row[c] for c in fcols])
                        cq = ", ".join(f'"{c}"' for c in ocols)
                        with cur.copy(f"COPY occurrences ({cq}) FROM STDIN") as cp:
                            for row in os_:
                                cp.write_row([row[c] for c in ocols])
                        n_occ += len(os_)
                    for t in ("findings", "occurrences"):
                        cur.execute(
                            f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                            f"(SELECT max(id) FROM {t}))"
                        )
                dbc.commit()
            finally:
                raw.close()
            with engine.begin() as conn:
                _mark_seeded(conn, digest)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE findings"))
                conn.execute(text("VACUUM ANALYZE occurrences"))
        else:
            with engine.connect() as conn:
                with conn.begin():
                    for fs, os_ in _batches(n_findings, key_id):
                        conn.execute(insert(Finding.__table__), fs)
                        conn.execute(insert(Occurrence.__table__), os_)
                        n_occ += len(os_)
                    _mark_seeded(conn, digest)
                with conn.begin():
                    conn.exec_driver_sql("ANALYZE")
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    return n_occ, time.perf_counter() - t0


def reset_triage(url: str) -> int:
    """Put back the statuses a previous load run's triage changed (and drop its audit
    records), so every run starts from the seeded spread; on PostgreSQL, vacuumed."""
    from sqlalchemy import text

    from sentinel.store.session import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as c:
            n = c.execute(
                text(
                    f"UPDATE findings SET status = {seed_status_sql('id')}, "
                    "triaged_by = CASE WHEN id % 100 >= 82 AND id % 100 < 95 "
                    "THEN 'seed' END, triage_reason = CASE WHEN id % 100 >= 82 AND "
                    "id % 100 < 95 THEN 'seeded' END, triaged_at = CASE WHEN id % 100 >= 82 "
                    "AND id % 100 < 95 THEN last_seen END "
                    "WHERE triaged_by IS NOT NULL AND triaged_by <> 'seed' "
                    "OR (triaged_by IS NULL AND id % 100 >= 82 AND id % 100 < 95)"
                )
            ).rowcount
            c.execute(text("DELETE FROM audit_log"))
        if engine.dialect.name == "postgresql":
            # every run's triage leaves dead row versions and index entries behind, and
            # autovacuum would clean them up in the middle of the next run: each run
            # starts from a vacuumed table and a finished checkpoint instead
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(text("VACUUM (ANALYZE) findings, audit_log"))
                c.execute(text("CHECKPOINT"))
        return int(n or 0)
    finally:
        engine.dispose()


def prepare(backend: str, n_findings: int, pg_admin: str, reseed: bool) -> tuple[str, dict]:  # type: ignore[type-arg]
    digest = seed_hash(n_findings)
    info: dict[str, Any] = {"seed_hash": digest}
    if backend == "sqlite":
        WORK.mkdir(parents=True, exist_ok=True)
        path = WORK / f"api-load-{digest}.db"
        url = f"sqlite:///{path}"
        if reseed or not (path.exists() and _is_seeded(url, digest)):
            for p in WORK.glob(f"api-load-{digest}.db*"):
                p.unlink()
            n, secs = seed(url, n_findings, digest)
            info.update(seeded_now=True, seed_seconds=round(secs, 1), occurrences=n)
        else:
            info["seeded_now"] = False
        info["database"] = str(path.relative_to(ROOT))
        return url, info
    import psycopg

    name = f"sentinel_bench_api_{digest}"
    base = pg_admin.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    with psycopg.connect(pg_admin, autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and (reseed or not _is_seeded(_sqla(url), digest)):
            c.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            c.execute(f'CREATE DATABASE "{name}"')
            n, secs = seed(url, n_findings, digest)
            info.update(seeded_now=True, seed_seconds=round(secs, 1), occurrences=n)
        else:
            info["seeded_now"] = False
    info["database"] = name
    return url, info


def _sqla(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def counts(url: str) -> dict[str, Any]:
    from sqlalchemy import text

    from sentinel.store.session import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as c:
            f = c.execute(text("SELECT count(*) FROM findings")).scalar_one()
            o = c.execute(text("SELECT count(*) FROM occurrences")).scalar_one()
            t = c.execute(text("SELECT count(DISTINCT target) FROM occurrences")).scalar_one()
        return {"findings": f, "occurrences": o, "targets": t}
    finally:
        engine.dispose()


# -- server and load -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live descendants (uvicorn's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    kids: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            raw = (d / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        stats[int(d.name)] = fields
        kids.setdefault(int(fields[1]), []).append(int(d.name))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            # utime, stime, and the reaped children's cutime, cstime
            total += sum(int(x) for x in stats[p][11:15]) / tick
        todo.extend(kids.get(p, []))
    return total


def sentinel_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "sentinel", *args]


def run_load(url: str, backend: str, args: argparse.Namespace, n_findings: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="sentinel-api-load-"))
    env = {
        **os.environ,
        "SENTINEL_HOME": str(home),
        "SENTINEL_DATABASE_URL": url,
        "SENTINEL_FINGERPRINT_KEY": FP_KEY,
    }
    out = subprocess.run(
        sentinel_cmd(
            "tokens",
            "create",
            "--name",
            f"bench-load-{backend}-{int(time.time())}",
            "--scopes",
            "findings:read,findings:write",
            "--expires",
            "1d",
        ),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    m = re.search(r"snt_[A-Za-z0-9_\-]+", out.stdout + out.stderr)
    if out.returncode != 0 or not m:
        raise SystemExit(f"sentinel tokens create failed: {(out.stderr or out.stdout).strip()}")
    token = m.group(0)
    if args.api_threads:
        (home / "service.toml").write_text(f"[service]\napi_threads = {args.api_threads}\n")
    port = free_port()
    serve = sentinel_cmd("serve", "--host", "127.0.0.1", "--port", str(port))
    if args.processes > 1:
        serve += ["--processes", str(args.processes)]
    log = open(home / "serve.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(serve, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise SystemExit(
                    f"sentinel serve exited ({server.returncode}):\n"
                    + (home / "serve.log").read_text()[-2000:]
                )
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("sentinel serve did not answer /healthz within 60 s")
            time.sleep(0.3)
        rules = top_rules(url)
        targets = [repo(n) for n in range(0, N_REPOS, 97)][:20] + [
            image(n) for n in range(0, N_IMAGES, 60)
        ]
        wenv = {
            **os.environ,
            "BENCH_TOKEN": token,
            "BENCH_FINDINGS": str(n_findings),
            "BENCH_RULES": ",".join(rules),
            "BENCH_TARGETS": ",".join(targets),
            "BENCH_SINCE": (EPOCH - dt.timedelta(days=7)).isoformat().replace("+00:00", "Z"),
        }
        c = str(args.clients)
        wrk = ["wrk", "-t", c, "-c", c, "--timeout", "5s", "-s", str(LUA)]
        subprocess.run(
            [*wrk, "-d", f"{args.warmup}s", base], env=wenv, capture_output=True, check=False
        )
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        r0 = os.times()
        res = subprocess.run(
            [*wrk, "-d", f"{args.duration}s", "--latency", base],
            env=wenv,
            capture_output=True,
            text=True,
            check=False,
        )
        r1 = os.times()
        cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
        line = next((x for x in res.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
        if line is None:
            raise SystemExit(f"wrk gave no result ({res.returncode}): {res.stderr.strip()}")
        w = json.loads(line[len("BENCH_JSON ") :])
        secs = w["duration_us"] / 1e6
        e = w["errors"]
        errors = e["status"] + e["connect"] + e["read"] + e["write"] + e["timeout"]
        return {
            "requests": w["requests"],
            "seconds": round(secs, 2),
            "req_per_s": round(w["requests"] / secs, 1),
            "p50_ms": w["p50_us"] / 1000,
            "p90_ms": w["p90_us"] / 1000,
            "p99_ms": w["p99_us"] / 1000,
            "max_ms": w["max_us"] / 1000,
            "errors": errors,
            "error_detail": e,
            "by_kind": w["by_kind"],
            "non2xx_by_kind": w["non2xx_by_kind"],
            "cpu_seconds": {
                "server": round(cpu1 - cpu0, 1),
                "wrk": round(
                    (r1.children_user + r1.children_system)
                    - (r0.children_user + r0.children_system),
                    1,
                ),
                "wall": round(t1 - t0, 1),
            },
        }
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        if os.environ.get("BENCH_KEEP_LOG"):
            shutil.copy(home / "serve.log", os.environ["BENCH_KEEP_LOG"])
        shutil.rmtree(home, ignore_errors=True)


def store_timings(url: str, n_findings: int, n: int = 400) -> dict[str, Any]:
    """The query layer alone (sentinel.store.queries, no HTTP), one request at a time:
    per filter, the median and p99 of a first page and its next page. Where the API's
    latency goes when it misses the target: the database, or everything above it."""
    import statistics

    from sentinel.store import queries
    from sentinel.store.session import make_engine, session_factory

    engine = make_engine(url)
    sessions = session_factory(engine)
    rules = top_rules(url, 10)
    since = EPOCH - dt.timedelta(days=7)
    cases: dict[str, queries.FindingFilter] = {
        "unfiltered": queries.FindingFilter(),
        "status=open": queries.FindingFilter(status="open"),
        "status=false_positive": queries.FindingFilter(status="false_positive"),
        "severity=low": queries.FindingFilter(severity="low"),
        "rule=<top 10>": queries.FindingFilter(rule=rules[0]),
        "rule=<10th>": queries.FindingFilter(rule=rules[-1]),
        "source=k8s": queries.FindingFilter(source="k8s"),
        "source=file": queries.FindingFilter(source="file"),
        "target=<repo>": queries.FindingFilter(target=repo(97)),
        "target=<image>": queries.FindingFilter(target=image(60)),
        "since=7d": queries.FindingFilter(since=since),
        "status=open&severity=low": queries.FindingFilter(status="open", severity="low"),
    }
    out: dict[str, Any] = {}
    rng = random.Random(5)

    def timed(fn: Any) -> tuple[float, Any]:
        t0 = time.perf_counter()
        r = fn()
        return (time.perf_counter() - t0) * 1000, r

    try:
        reps = max(5, n // 20)
        for name, flt in cases.items():
            ms: list[float] = []
            with sessions() as s:
                for _ in range(reps):
                    t, page = timed(lambda: queries.list_findings(s, flt))  # noqa: B023
                    ms.append(t)
                    if page.next_cursor:
                        c = page.next_cursor
                        t, _ = timed(lambda: queries.list_findings(s, flt, cursor=c))  # noqa: B023
                        ms.append(t)
                    s.expunge_all()
            ms.sort()
            out[name] = {
                "p50_ms": round(statistics.median(ms), 2),
                "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
            }
        ms = []
        with sessions() as s:
            for _ in range(n):
                fid = rng.randint(1, n_findings)
                t, _ = timed(
                    lambda: (
                        queries.finding_row(s, fid),  # noqa: B023
                        queries.occurrences_of(s, fid),  # noqa: B023
                    )
                )
                ms.append(t)
                s.expunge_all()
        ms.sort()
        out["get one + occurrences"] = {
            "p50_ms": round(statistics.median(ms), 2),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
        }
    finally:
        engine.dispose()
    return out


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs' medians of throughput, p50, p99 and CPU (each its own median), their
    errors summed, and every run as it was: the machine is shared, and one run of a
    minute has swung the p99 by half."""
    import statistics

    if len(runs) == 1:
        return {**runs[0], "runs": runs}
    out: dict[str, Any] = {
        k: statistics.median(r[k] for r in runs)
        for k in ("req_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "seconds")
    }
    out["requests"] = sum(r["requests"] for r in runs)
    out["errors"] = sum(r["errors"] for r in runs)
    out["cpu_seconds"] = {
        k: round(statistics.median(r["cpu_seconds"][k] for r in runs), 1)
        for k in ("server", "wrk", "wall")
    }
    out["runs"] = runs
    return out


def top_rules(url: str, n: int = 25) -> list[str]:
    from sqlalchemy import text

    from sentinel.store.session import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as c:
            rows = c.execute(
                text(
                    "SELECT rule_id FROM findings GROUP BY rule_id "
                    "ORDER BY count(*) DESC, rule_id LIMIT :n"
                ),
                {"n": n},
            ).all()
        return [r[0] for r in rows]
    finally:
        engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--findings", type=int, default=200_000)
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--runs", type=int, default=1, help="runs per database; medians reported")
    ap.add_argument("--processes", type=int, default=1, help="sentinel serve --processes")
    ap.add_argument(
        "--api-threads", type=int, default=0, help="[service] api_threads (0: its default)"
    )
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--reseed", action="store_true", help="seed again even if cached")
    ap.add_argument("--seed-only", action="store_true")
    ap.add_argument(
        "--store-only",
        action="store_true",
        help="time the query layer alone (no server, no wrk)",
    )
    args = ap.parse_args()
    if not args.seed_only and shutil.which("wrk") is None:
        print("api_load: wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    backends = [b.strip() for b in args.db.split(",") if b.strip()]
    for b in backends:
        if b not in ("sqlite", "postgresql"):
            print(f"api_load: --db: unknown {b!r} (sqlite, postgresql)", file=sys.stderr)
            return 2
    os.environ["SENTINEL_FINGERPRINT_KEY"] = FP_KEY
    os.environ.setdefault("SENTINEL_HOME", tempfile.mkdtemp(prefix="sentinel-bench-home-"))

    results: dict[str, Any] = {}
    for backend in backends:
        url, info = prepare(backend, args.findings, args.pg, args.reseed)
        info.update(counts(url))
        seeded = f"seeded in {info['seed_seconds']} s" if info["seeded_now"] else "cached"
        print(
            f"{backend}: {info['occurrences']:,} occurrences over {info['findings']:,} "
            f"findings, {info['targets']:,} targets ({seeded})",
            flush=True,
        )
        if args.seed_only:
            results[backend] = {"store": info}
            continue
        if args.store_only:
            t = store_timings(url, info["findings"])
            results[backend] = {"store": info, "query_ms": t}
            print(f"  {'query (one page or get)':32}{'p50 ms':>9}{'p99 ms':>9}")
            for k, v in t.items():
                print(f"  {k:32}{v['p50_ms']:>9.2f}{v['p99_ms']:>9.2f}")
            continue
        runs = []
        for _ in range(args.runs):
            info["reset_findings"] = reset_triage(url)
            runs.append(run_load(url, backend, args, info["findings"]))
        r = median_run(runs)
        r["store"] = info
        results[backend] = r

    if args.seed_only:
        return 0
    if args.store_only:
        out = ROOT / "bench" / "results" / f"{dt.date.today()}-api-load-store.json"
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")
        return 0
    print()
    if args.runs > 1:
        print(f"medians of {args.runs} runs of {args.duration} s each")
    print(f"{'database':12}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  target met")
    for b, r in results.items():
        met = r["req_per_s"] >= 500 and r["p99_ms"] <= 100 and r["errors"] == 0
        r["target_met"] = met
        print(
            f"{b:12}{r['req_per_s']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
            f"{r['errors']:>8}  {'yes' if met else 'no'}"
        )
        c = r["cpu_seconds"]
        print(
            f"{'':12}CPU over {c['wall']} s: server {c['server']} s, wrk {c['wrk']} s "
            f"(of {2 * c['wall']:.0f} core-seconds)"
        )
    out = ROOT / "bench" / "results" / f"{dt.date.today()}-api-load.json"
    doc = {
        "clients": args.clients,
        "runs": args.runs,
        "duration_s": args.duration,
        "processes": args.processes,
        "api_threads": args.api_threads or None,
        "target": {"req_per_s": 500, "p99_ms": 100, "errors": 0},
        "machine": f"{os.cpu_count()} cores, shared with other work",
        "results": results,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
