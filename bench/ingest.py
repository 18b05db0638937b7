#!/usr/bin/env python3
"""Store ingest speed: 100,000 occurrences over 20,000 findings, into SQLite and into
PostgreSQL, through the same ``record_result`` that ``scan --store`` and the service use.

    .venv/bin/python bench/ingest.py [--findings 20000] [--per-finding 5] [--runs 3]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Each run starts from an empty, migrated database (a throwaway one on PostgreSQL) and
times: the first ingest (everything new), a second ingest of the same scan (nothing
new: the idempotent path every rescan takes), and a third in which a fifth of the
occurrences are gone (marked, not deleted). Occurrences are spread over git commits and
paths as a history scan makes them; one finding in ten is of a rotatable rule, so its
value is sealed (AES-256-GCM). Prints medians; writes bench/results/<date>-ingest.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def occurrences(n_findings: int, per: int, drop_every: int = 0) -> list:  # type: ignore[type-arg]
    import hashlib

    from sentinel.models import Occurrence, Origin

    out = []
    for f in range(n_findings):
        fp = hashlib.sha256(f"finding-{f}".encode()).hexdigest()
        rotatable = f % 10 == 0
        for k in range(per):
            if drop_every and (f * per + k) % drop_every == 0:
                continue
            commit = hashlib.sha1(f"c{(f * 7 + k) % 5000}".encode()).hexdigest()
            out.append(
                Occurrence(
                    rule_id="github.pat-classic" if rotatable else "generic.password",
                    description="bench",
                    severity="critical" if rotatable else "medium",
                    confidence="high" if rotatable else "low",
                    fingerprint=fp,
                    redacted="ghp_********",
                    origin=Origin(
                        source="git",
                        path=f"src/module{f % 400}/file{k}.py",
                        commit=commit,
                        author=f"dev{f % 50}",
                        email=f"dev{f % 50}@example.org",
                        date="2026-01-01T00:00:00+00:00",
                    ),
                    line=1 + (f + k) % 300,
                    column=10,
                    end_line=1,
                    end_column=50,
                    entropy=4.5,
                    secret=f"value-{f}",
                )
            )
    return out


def one_run(url: str, occ: list, occ_gone: list) -> dict[str, float]:  # type: ignore[type-arg]
    from sentinel.models import ScanResult
    from sentinel.store.facade import open_store, record_result

    store = open_store(url, migrate_now=True)
    times = {}
    try:
        for label, batch in (("first", occ), ("again", occ), ("fifth_gone", occ_gone)):
            t0 = time.perf_counter()
            record_result(
                store,
                kind="git",
                target="https://git.example.org/org/bench.git",
                result=ScanResult(occurrences=batch, stats={}),
                requested_by="bench",
                complete=True,
            )
            times[label] = time.perf_counter() - t0
    finally:
        store.close()
    return times


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--findings", type=int, default=20_000)
    ap.add_argument("--per-finding", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()

    os.environ.setdefault("SENTINEL_FINGERPRINT_KEY", "bench-installation-key-0123456789")
    os.environ.setdefault("SENTINEL_ENCRYPTION_KEY", os.urandom(32).hex())
    os.environ["SENTINEL_HOME"] = tempfile.mkdtemp(prefix="sentinel-bench-home-")
    occ = occurrences(args.findings, args.per_finding)
    gone = occurrences(args.findings, args.per_finding, drop_every=5)
    print(f"{len(occ)} occurrences over {args.findings} findings")

    import psycopg

    results: dict[str, dict[str, float]] = {}
    for backend in ("sqlite", "postgresql"):
        runs = []
        for _ in range(args.runs):
            if backend == "sqlite":
                d = tempfile.mkdtemp(prefix="sentinel-bench-db-")
                url = f"sqlite:///{d}/sentinel.db"
                runs.append(one_run(url, occ, gone))
            else:
                name = f"sentinel_bench_{uuid.uuid4().hex[:8]}"
                admin = args.pg.replace("postgresql://", "postgresql://", 1)
                with psycopg.connect(admin, autocommit=True) as c:
                    c.execute(f'CREATE DATABASE "{name}"')
                try:
                    url = admin.rsplit("/", 1)[0] + "/" + name
                    runs.append(one_run(url, occ, gone))
                finally:
                    with psycopg.connect(admin, autocommit=True) as c:
                        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        results[backend] = med
        print(
            f"{backend:10}  first {med['first']:.2f} s ({len(occ) / med['first']:,.0f} occ/s)  "
            f"again {med['again']:.2f} s  fifth gone {med['fifth_gone']:.2f} s"
        )
    out = ROOT / "bench" / "results" / f"{dt.date.today()}-ingest.json"
    out.write_text(
        json.dumps(
            {
                "occurrences": len(occ),
                "findings": args.findings,
                "runs": args.runs,
                "median_seconds": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
