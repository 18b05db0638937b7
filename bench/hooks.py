#!/usr/bin/env python3
"""Time Sentinel's git hooks as git runs them: whole processes, start-up included.

Stdlib only; runs with the system python3. See bench/README.md.

pre-commit   `sentinel hook pre-commit` in a checkout of the benchmark repository
             with 10 modified files staged, side by side with
             `betterleaks git --staged` on the same index (both find nothing, as in
             the everyday case). Runs alternate, so drift hits every command alike.
             Sentinel is timed as users install it (`pip install .` into
             bench/.venv-sentinel, rebuilt from this checkout on every run: what the
             pre-commit framework does too) and, for reference, as the editable
             development install in .venv (whose import hook costs ~15 ms a start).
pre-receive  a `git push` of about 1,000 new commits (real history: the repository's
             main branch on top of an older main) to a bare repository over the local
             transport, with Sentinel's pre-receive hook installed, and the same push
             with no hook at all; each run pushes into a fresh copy of the server.
             The hook's own time is also read from its log.

Prints a markdown table per workload and writes bench/results/<date>-hooks.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
WORK = BENCH / "work" / "hooks"
DEFAULT_MIRROR = BENCH / "work" / "sqlalchemy.git"
DEV_SENTINEL = PROJECT / ".venv" / "bin" / "sentinel"
INSTALLED_VENV = BENCH / ".venv-sentinel"
BETTERLEAKS = BENCH / ".venv-peers" / "bin" / "betterleaks"


def log(msg: str) -> None:
    print(f"[hooks {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout.strip()


def timed(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[float, float, int]:
    """(wall s, cpu s of the process tree, exit code)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    proc.communicate()
    wall = time.perf_counter() - t0
    return wall, _children_cpu(), proc.returncode


_last_cpu = [0.0]


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = ru.ru_utime + ru.ru_stime
    delta, _last_cpu[0] = total - _last_cpu[0], total
    return delta


def install_sentinel() -> Path:
    """This checkout, installed the way users install it (not editable)."""
    if not (INSTALLED_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(INSTALLED_VENV)], check=True)
    log(f"pip install {PROJECT} -> {INSTALLED_VENV}")
    subprocess.run(
        [
            str(INSTALLED_VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--force-reinstall",
            "--no-deps",
            str(PROJECT),
        ],
        check=True,
    )
    subprocess.run(
        [
            str(INSTALLED_VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(PROJECT),
        ],
        check=True,
    )
    return INSTALLED_VENV / "bin" / "sentinel"


# ---------------------------------------------------------------------------- pre-commit


def precommit_repo(mirror: Path, files: int) -> tuple[Path, list[str]]:
    repo = WORK / "precommit"
    if not (repo / ".git").is_dir():
        shutil.rmtree(repo, ignore_errors=True)
        WORK.mkdir(parents=True, exist_ok=True)
        log(f"cloning {mirror} -> {repo}")
        git("clone", "-q", str(mirror), str(repo))
    git("reset", "-q", "--hard", "HEAD", cwd=repo)
    git("clean", "-qfdx", cwd=repo)
    # ten Python files from the middle of the tree, each edited in two places
    candidates = [p for p in git("ls-files", "*.py", cwd=repo).splitlines() if "/test" not in p]
    picked = candidates[len(candidates) // 3 :: max(1, len(candidates) // (3 * files))][:files]
    for rel in picked:
        path = repo / rel
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        mid = len(lines) // 2
        lines.insert(mid, "# reviewed for the hooks benchmark\n")
        lines.append("\n\ndef _bench_helper(value):\n    return value * 2\n")
        path.write_text("".join(lines), encoding="utf-8")
    git("add", *picked, cwd=repo)
    return repo, picked


def bench_precommit(args: argparse.Namespace) -> dict[str, Any]:
    repo, picked = precommit_repo(args.mirror, args.files)
    stat = git("diff", "--cached", "--shortstat", cwd=repo)
    commands = {
        "sentinel": [str(args.sentinel), "hook", "pre-commit"],
        "sentinel-editable": [str(DEV_SENTINEL), "hook", "pre-commit"],
        "betterleaks": [
            str(BETTERLEAKS),
            "git",
            "--staged",
            "--no-banner",
            "--no-color",
            "--exit-code",
            "1",
            ".",
        ],
    }
    if not DEV_SENTINEL.exists():
        del commands["sentinel-editable"]
    runs: dict[str, list[tuple[float, float, int]]] = {k: [] for k in commands}
    log(f"pre-commit: {stat}; {args.warmup} warm-up and {args.runs} timed runs each")
    for i in range(args.warmup + args.runs):
        for name, argv in commands.items():
            r = timed(argv, repo)
            if i >= args.warmup:
                runs[name].append(r)
    out: dict[str, Any] = {"staged": stat, "files": picked, "tools": {}}
    for name, rs in runs.items():
        out["tools"][name] = {
            "command": " ".join([Path(commands[name][0]).name, *commands[name][1:]]),
            "wall_s": [round(r[0], 4) for r in rs],
            "cpu_s": [round(r[1], 4) for r in rs],
            "exit_codes": sorted({r[2] for r in rs}),
            "median_wall_s": round(statistics.median(r[0] for r in rs), 4),
            "median_cpu_s": round(statistics.median(r[1] for r in rs), 4),
        }
    pairs = [a[0] / b[0] for a, b in zip(runs["sentinel"], runs["betterleaks"], strict=True)]
    out["ratio_wall_median_of_pairs"] = round(statistics.median(pairs), 3)
    return out


# ---------------------------------------------------------------------------- pre-receive


def prereceive_setup(mirror: Path, commits: int) -> tuple[Path, Path, str, int]:
    client = WORK / "client"
    base = WORK / "server-base.git"
    if not (client / ".git").is_dir():
        shutil.rmtree(client, ignore_errors=True)
        WORK.mkdir(parents=True, exist_ok=True)
        log(f"cloning {mirror} -> {client}")
        git("clone", "-q", str(mirror), str(client))
    tip = git("rev-parse", "main", cwd=client)
    firsts = git("rev-list", "--first-parent", "main", cwd=client).splitlines()
    lo, hi = 1, len(firsts) - 1  # smallest first-parent depth giving >= `commits` new commits
    while lo < hi:
        mid = (lo + hi) // 2
        n = int(git("rev-list", "--count", f"{firsts[mid]}..{tip}", cwd=client))
        if n >= commits:
            hi = mid
        else:
            lo = mid + 1
    old = firsts[lo]
    count = int(git("rev-list", "--count", f"{old}..{tip}", cwd=client))
    stamp = base / "bench-base"
    if not stamp.is_file() or stamp.read_text().strip() != old:
        shutil.rmtree(base, ignore_errors=True)
        log(f"server base: main at {old[:12]} ({count} commits behind {tip[:12]})")
        git("init", "-q", "--bare", "-b", "main", str(base))
        git("push", "-q", str(base), f"{old}:refs/heads/main", cwd=client)
        stamp.write_text(old + "\n")
    return client, base, tip, count


def bench_prereceive(args: argparse.Namespace) -> dict[str, Any]:
    client, base, tip, count = prereceive_setup(args.mirror, args.commits)
    server = WORK / "server.git"
    modes = ("sentinel", "no-hook")
    runs: dict[str, list[tuple[float, float, int]]] = {m: [] for m in modes}
    hook_seconds: list[float] = []
    outcomes: set[str] = set()
    log(f"pre-receive: pushing {count} commits; {args.push_runs} timed runs each (+1 warm-up)")
    for i in range(args.push_runs + 1):
        for mode in modes:
            shutil.rmtree(server, ignore_errors=True)
            shutil.copytree(base, server, symlinks=True)
            if mode == "sentinel":
                res = subprocess.run(
                    [str(args.sentinel), "hooks", "install", "--repo", str(server)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if res.returncode != 0:
                    raise SystemExit(f"hooks install failed: {res.stderr}")
                # measure the hook's real cost: no budget cut-off during the benchmark
                git(f"--git-dir={server}", "config", "sentinel.timeBudget", "600")
            r = timed(["git", "push", "-q", f"file://{server}", f"{tip}:refs/heads/main"], client)
            if r[2] != 0:
                raise SystemExit(f"push ({mode}) failed with exit code {r[2]}")
            if i == 0:
                continue
            runs[mode].append(r)
            if mode == "sentinel":
                entry = json.loads(
                    (server / "sentinel" / "pre-receive.log").read_text().splitlines()[-1]
                )
                hook_seconds.append(entry["seconds"])
                outcomes.add(entry["outcome"])
    shutil.rmtree(server, ignore_errors=True)
    return {
        "commits": count,
        "tip": tip,
        "modes": {
            m: {
                "wall_s": [round(r[0], 3) for r in rs],
                "median_wall_s": round(statistics.median(r[0] for r in rs), 3),
                "median_cpu_s": round(statistics.median(r[1] for r in rs), 3),
            }
            for m, rs in runs.items()
        },
        "hook_seconds": hook_seconds,
        "median_hook_s": round(statistics.median(hook_seconds), 3),
        "outcomes": sorted(outcomes),
    }


# ---------------------------------------------------------------------------- report


def markdown(doc: dict[str, Any]) -> str:
    lines = []
    pc = doc.get("pre_commit")
    if pc:
        t = pc["tools"]
        n = len(t["sentinel"]["wall_s"])
        labels = {
            "sentinel": "Sentinel, `pip install`ed",
            "sentinel-editable": "Sentinel, editable dev install (`pip install -e`)",
            "betterleaks": "Betterleaks",
        }
        lines += [
            f"#### pre-commit hook: {pc['staged']} (median of {n} alternating runs)",
            "",
            "| | Command | Wall s (median) | CPU s (median) |",
            "|---|---|--:|--:|",
        ]
        for name, label in labels.items():
            if name in t:
                x = t[name]
                lines.append(
                    f"| {label} | `{x['command']}` | {x['median_wall_s']:.3f} | {x['median_cpu_s']:.3f} |"
                )
        lines += [
            "",
            f"Sentinel (installed) ÷ Betterleaks, wall (median of the run-by-run ratios): "
            f"**{pc['ratio_wall_median_of_pairs']:.2f}×**.",
            "",
        ]
    pr = doc.get("pre_receive")
    if pr:
        m = pr["modes"]
        lines += [
            f"#### pre-receive hook: a push of {pr['commits']:,} new commits "
            f"(median of {len(m['sentinel']['wall_s'])} runs, fresh server copy each)",
            "",
            "| | Wall s (median) |",
            "|---|--:|",
            f"| `git push`, Sentinel's pre-receive hook installed | {m['sentinel']['median_wall_s']:.2f} |",
            f"| `git push`, no hook | {m['no-hook']['median_wall_s']:.2f} |",
            f"| the hook itself (its log's `seconds`) | {pr['median_hook_s']:.2f} |",
            "",
            f"Hook outcome in every run: {', '.join(pr['outcomes'])}.",
        ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workload", choices=("pre-commit", "pre-receive", "all"), default="all")
    ap.add_argument(
        "--mirror",
        type=Path,
        default=DEFAULT_MIRROR,
        help="a clone to build both workloads from (default: bench/work/sqlalchemy.git, made by run.py)",
    )
    ap.add_argument(
        "--sentinel",
        type=Path,
        default=None,
        help="a sentinel executable (default: this checkout, pip-installed into bench/.venv-sentinel)",
    )
    ap.add_argument("--runs", type=int, default=21, help="timed pre-commit runs per command")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument(
        "--files", type=int, default=10, help="files changed in the pre-commit workload"
    )
    ap.add_argument("--commits", type=int, default=1000, help="new commits in the pushed range")
    ap.add_argument("--push-runs", type=int, default=5)
    ap.add_argument("--results-dir", type=Path, default=BENCH / "results")
    args = ap.parse_args()
    if not args.mirror.exists():
        raise SystemExit(
            f"{args.mirror} is missing: run 'python3 bench/run.py --workload history' once, or pass --mirror"
        )
    if args.sentinel is None:
        args.sentinel = install_sentinel()
    if not BETTERLEAKS.exists():
        subprocess.run(["bash", str(BENCH / "setup_peers.sh")], check=True)
    doc: dict[str, Any] = {
        "schema": "sentinel-bench-hooks/1",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cores": len(os.sched_getaffinity(0)),
        "sentinel_rev": git("rev-parse", "--short", "HEAD", cwd=PROJECT),
    }
    if args.workload in ("pre-commit", "all"):
        doc["pre_commit"] = bench_precommit(args)
    if args.workload in ("pre-receive", "all"):
        doc["pre_receive"] = bench_prereceive(args)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"{dt.date.today().isoformat()}-hooks.json"
    if args.workload != "all" and out.exists():
        # one workload rerun: keep the other's figures from earlier today
        earlier = json.loads(out.read_text())
        for key in ("pre_commit", "pre_receive"):
            if key not in doc and key in earlier:
                doc[key] = earlier[key]
    doc["markdown"] = markdown(doc)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(doc["markdown"])
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
