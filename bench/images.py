#!/usr/bin/env python3
"""Time Sentinel's image scan against Kingfisher's on the same `docker save` archives.

Stdlib only; runs with the system python3. See bench/README.md.

big     one image with a few hundred MB of layers (bench/imagegen.py's big.tar, Docker 25+
        format: the only one Kingfisher 2.14 reads), `sentinel scan image big.tar
        --no-cache` against `kingfisher scan docker --archive big.tar --no-validate`,
        runs alternating; wall, CPU and peak memory of the whole process tree.
flat    Sentinel's peak memory on images of different sizes (big.tar, and a smaller one
        built with `imagegen.py --max-mb 120`): flat in layer size, or not.
shared  ten images that share their base layers (shared-0.tar … shared-9.tar), scanned
        one after another into an empty layer cache: the first pays for the base, the
        other nine should cost little more than their own top layer. Kingfisher (no
        layer cache) scans the same ten for comparison.

Prints markdown tables and writes bench/results/<date>-images.json. Uses the measuring
code of bench/run.py (wait4 rusage, whole-tree Pss sampling, other work on the machine).
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
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run as harness  # noqa: E402 (bench/run.py: the same measuring for every benchmark)

IMAGES = BENCH / "work" / "images"
SMALL = BENCH / "work" / "images-small"
SENTINEL = BENCH.parent / ".venv" / "bin" / "sentinel"
KINGFISHER = BENCH / ".venv-peers" / "bin" / "kingfisher"


def log(msg: str) -> None:
    print(f"[images {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_images(shared: int) -> None:
    if not (IMAGES / "big.tar").exists() or not (IMAGES / f"shared-{shared - 1}.tar").exists():
        log(f"building {IMAGES} with bench/imagegen.py")
        subprocess.run(
            [sys.executable, str(BENCH / "imagegen.py"), str(IMAGES), "--shared", str(shared)],
            check=True,
        )
    if not (SMALL / "big.tar").exists():
        log(f"building {SMALL} (--max-mb 120)")
        subprocess.run(
            [
                sys.executable,
                str(BENCH / "imagegen.py"),
                str(SMALL),
                "--max-mb",
                "120",
                "--shared",
                "0",
            ],
            check=True,
        )


def sentinel_job(archive: Path, out: Path, cache: bool) -> harness.Job:
    argv = [str(SENTINEL), "scan", "image", str(archive), "--format", "json", "--output", str(out)]
    if not cache:
        argv.append("--no-cache")
    return harness.Job(
        "sentinel",
        argv,
        out,
        harness.count_findings_list,
        frozenset({0, 1}),
        "sentinel scan image ARCHIVE --format json --output OUT" + ("" if cache else " --no-cache"),
    )


def kingfisher_job(archive: Path, out: Path) -> harness.Job:
    argv = [
        str(KINGFISHER),
        "scan",
        "docker",
        "--archive",
        str(archive),
        "--no-validate",
        "--no-update-check",
        "--quiet",
        "--format",
        "json",
        "--output",
        str(out),
    ]
    return harness.Job(
        "kingfisher",
        argv,
        out,
        harness.count_findings_list,
        frozenset({0, 200, 205}),
        "kingfisher scan docker --archive ARCHIVE --no-validate --no-update-check --quiet "
        "--format json --output OUT",
    )


def once(job: harness.Job, env: dict[str, str], logs: Path) -> harness.Run:
    r = harness.run_once(job, 1800, logs / f"{job.tool}.log", env)
    if r.error:
        raise SystemExit(f"{job.tool} failed: {r.error}\n{harness.tail(logs / f'{job.tool}.log')}")
    return r


def summary(runs: list[harness.Run]) -> dict[str, Any]:
    return {
        "wall_s": round(statistics.median(r.wall_s for r in runs), 3),
        "cpu_s": round(statistics.median(r.cpu_s for r in runs), 3),
        "tree_pss_mib": round(statistics.median(r.tree_pss_mib for r in runs), 1),
        "maxrss_mib": round(statistics.median(r.maxrss_mib for r in runs), 1),
        "findings": runs[-1].findings,
        "runs": [vars(r) for r in runs],
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--shared", type=int, default=10)
    ap.add_argument("--results-dir", type=Path, default=BENCH / "results")
    args = ap.parse_args()
    if not KINGFISHER.exists():
        subprocess.run(["bash", str(BENCH / "setup_peers.sh")], check=True)
    ensure_images(args.shared)
    work = Path(tempfile.mkdtemp(prefix="bench-images-"))
    env = dict(os.environ)
    env["SENTINEL_CACHE_DIR"] = str(work / "cache")  # Hyperscan db warms up; layers: --no-cache
    logs = work

    big = IMAGES / "big.tar"
    s_job = sentinel_job(big, work / "s.json", cache=False)
    k_job = kingfisher_job(big, work / "k.json")
    log(f"big: {big} ({big.stat().st_size / 1e6:.0f} MB); 1 warm-up + {args.runs} runs each")
    once(s_job, env, logs)
    once(k_job, env, logs)
    s_runs, k_runs = [], []
    for i in range(args.runs):
        s_runs.append(once(s_job, env, logs))
        k_runs.append(once(k_job, env, logs))
        log(
            f"run {i + 1}: sentinel {s_runs[-1].wall_s:.2f} s, kingfisher {k_runs[-1].wall_s:.2f} s"
        )
    ratio = statistics.median(a.wall_s / b.wall_s for a, b in zip(s_runs, k_runs, strict=True))

    small = SMALL / "big.tar"
    flat = {}
    for label, archive in (("small", small), ("big", big)):
        rs = [
            once(sentinel_job(archive, work / "f.json", cache=False), env, logs) for _ in range(3)
        ]
        flat[label] = {"archive": str(archive), "bytes": archive.stat().st_size, **summary(rs)}

    shared = [IMAGES / f"shared-{n}.tar" for n in range(args.shared)]
    layer_cache = work / "layer-cache"
    env_shared = dict(env, SENTINEL_CACHE_DIR=str(layer_cache))
    once(sentinel_job(shared[0], work / "w.json", cache=False), env_shared, logs)  # Hyperscan db
    for p in layer_cache.glob("layers"):
        import shutil

        shutil.rmtree(p)
    seq = [
        once(sentinel_job(a, work / f"sh{n}.json", cache=True), env_shared, logs)
        for n, a in enumerate(shared)
    ]
    kseq = [once(kingfisher_job(a, work / f"ksh{n}.json"), env, logs) for n, a in enumerate(shared)]
    layers_cached = [
        json.loads((work / f"sh{n}.json").read_text())["stats"]["layers_cached"]
        for n in range(len(shared))
    ]

    doc: dict[str, Any] = {
        "schema": "sentinel-bench-images/1",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": harness.machine_info(),
        "sentinel_rev": harness.git("rev-parse", "--short", "HEAD", cwd=BENCH.parent),
        "big": {
            "archive": str(big),
            "bytes": big.stat().st_size,
            "sentinel": summary(s_runs),
            "kingfisher": summary(k_runs),
            "ratio_wall_median_of_pairs": round(ratio, 3),
        },
        "flat": flat,
        "shared": {
            "sentinel_wall_s": [round(r.wall_s, 3) for r in seq],
            "sentinel_layers_cached": layers_cached,
            "kingfisher_wall_s": [round(r.wall_s, 3) for r in kseq],
        },
    }
    b = doc["big"]
    sh = doc["shared"]
    rest = sh["sentinel_wall_s"][1:]
    lines = [
        f"#### One image: {big.name}, {b['bytes'] / 1e6:.0f} MB archive (median of {args.runs} alternating runs)",
        "",
        "| Tool | Wall s | CPU s | Peak memory, whole tree MiB | Findings |",
        "|---|--:|--:|--:|--:|",
        f"| Sentinel (`scan image --no-cache`) | {b['sentinel']['wall_s']:.2f} | {b['sentinel']['cpu_s']:.2f} | {b['sentinel']['tree_pss_mib']:.0f} | {b['sentinel']['findings']} |",
        f"| Kingfisher (`scan docker --archive --no-validate`) | {b['kingfisher']['wall_s']:.2f} | {b['kingfisher']['cpu_s']:.2f} | {b['kingfisher']['tree_pss_mib']:.0f} | {b['kingfisher']['findings']} |",
        "",
        f"Sentinel ÷ Kingfisher, wall (median of run-by-run ratios): **{ratio:.2f}×**.",
        "",
        "Sentinel's peak memory against image size (median of 3): "
        + "; ".join(
            f"{v['bytes'] / 1e6:.0f} MB archive: {v['tree_pss_mib']:.0f} MiB whole tree"
            for v in flat.values()
        )
        + ".",
        "",
        f"#### Ten images sharing their base ({len(shared)} × {shared[0].stat().st_size / 1e6:.0f} MB archives), one after another",
        "",
        "| | First image s | Each of the other nine, median s | All ten s |",
        "|---|--:|--:|--:|",
        f"| Sentinel (layer cache) | {sh['sentinel_wall_s'][0]:.2f} | {statistics.median(rest):.2f} | {sum(sh['sentinel_wall_s']):.1f} |",
        f"| Kingfisher | {sh['kingfisher_wall_s'][0]:.2f} | {statistics.median(sh['kingfisher_wall_s'][1:]):.2f} | {sum(sh['kingfisher_wall_s']):.1f} |",
        "",
        f"Layers taken from the cache per image: {', '.join(map(str, layers_cached))}.",
    ]
    doc["markdown"] = "\n".join(lines)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"{dt.date.today().isoformat()}-images.json"
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(doc["markdown"])
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
