#!/usr/bin/env python3
"""How fast a live-cluster scan goes through a paginated list: objects per second.

No API server runs here, so this uses the tests' loopback stand-in (tests/kubeapi.py),
which answers the core/v1 list endpoints as the API documents them; run it with the
project venv (it needs the `kubernetes` client, as Sentinel does):

    .venv/bin/python bench/k8s.py [--configmaps 10000] [--page-size 500] [--runs 3]

Every ConfigMap holds a few ordinary settings and every 1,000th a planted token, so
the engine works as on a real cluster (mostly nothing to confirm). Prints the median
wall time of `sentinel scan k8s --cluster` and objects per second; writes
bench/results/<date>-k8s.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from tests.conftest import token
    from tests.kubeapi import configmaps, make_cluster

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--configmaps", type=int, default=10_000)
    ap.add_argument("--page-size", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(var, None)

    def data(i: int) -> dict[str, str]:
        d = {
            "LOG_LEVEL": "info",
            "REPLICAS": str(i % 7),
            "app.properties": f"server.port={8000 + i % 100}\nfeature.x=true\n",
        }
        if i % 1000 == 999:
            d["GITHUB_TOKEN"] = token("ghp", i)
        return d

    objs = configmaps(args.configmaps, "apps", data_fn=data)
    walls = []
    with (
        make_cluster(objs, namespaces=("default", "apps")) as cluster,
        tempfile.TemporaryDirectory() as tmp,
    ):
        kc = cluster.kubeconfig(Path(tmp) / "kubeconfig")
        sentinel = ROOT / ".venv" / "bin" / "sentinel"
        for run in range(args.runs + 1):
            t = time.perf_counter()
            res = subprocess.run(
                [
                    str(sentinel),
                    "scan",
                    "k8s",
                    "--cluster",
                    "--kubeconfig",
                    str(kc),
                    "--page-size",
                    str(args.page_size),
                    "-f",
                    "json",
                ],
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - t
            doc = json.loads(res.stdout)
            assert doc["stats"]["objects_scanned"] == args.configmaps, doc["stats"]
            if run:  # the first run warms the Hyperscan cache
                walls.append(wall)
            print(
                f"run {run}: {wall:.2f} s, {len(doc['findings'])} findings, {cluster.list_calls['/api/v1/configmaps']} list calls so far",
                file=sys.stderr,
            )
    med = statistics.median(walls)
    out = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "configmaps": args.configmaps,
        "page_size": args.page_size,
        "walls": [round(w, 3) for w in walls],
        "median_wall_s": round(med, 3),
        "objects_per_s": round(args.configmaps / med),
    }
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"{dt.date.today().isoformat()}-k8s.json").write_text(
        json.dumps(out, indent=2) + "\n"
    )
    print(
        f"{args.configmaps:,} ConfigMaps in pages of {args.page_size}: median {med:.2f} s, {args.configmaps / med:,.0f} objects/s (whole process, start-up included)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
