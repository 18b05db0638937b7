#!/usr/bin/env python3
"""Score Sentinel and its peers on the labelled corpus of bench/quality/corpus.py.

    python3 bench/quality/corpus.py && python3 bench/quality/score.py
    python3 bench/quality/score.py --split dev --tools sentinel        # a quick loop

For each split (dev, heldout) and part (tree: a directory scan; history: a git
history scan) every tool runs once over the whole target; its JSON report is parsed
into (file, line[, commit]) findings and matched to labels/labels.jsonl:

* a finding whose line (or reported line range) overlaps a positive's
  [line, end_line] detects that positive (each positive counts once, however many
  findings hit it);
* any other finding is a false positive, counted once per distinct (file, line)
  per tool, and attributed to the negative it hit (by kind) or to "unlabelled".

History findings are matched on (file, line) and, when the tool names a commit, on a
label present in that commit first (a rotated secret and the placeholder that
replaced it sit on the same line in different commits).

Prints Markdown tables (totals, recall per category, false positives per negative
kind, Sentinel precision per rule family and per confidence), then for Sentinel on
`dev` only the missed positives and false positives with a 4-character preview;
writes everything (no secret values, previews only) to
bench/results/<date>-quality.json. Stdlib only; peers that are not installed are
reported as "not installed".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
WORK = HERE / "work"
RESULTS = PROJECT / "bench" / "results"
SENTINEL = PROJECT / ".venv" / "bin" / "sentinel"
PEERS = PROJECT / "bench" / ".venv-peers" / "bin"
SPLITS = ("dev", "heldout")
TOOLS = ("sentinel", "sentinel-medium", "betterleaks", "kingfisher", "detect-secrets")
DISPLAY = {
    "sentinel": "Sentinel",
    "sentinel-medium": "Sentinel `--min-confidence medium`",
    "betterleaks": "Betterleaks",
    "kingfisher": "Kingfisher",
    "detect-secrets": "detect-secrets",
}
TIMEOUT = 900


def log(msg: str) -> None:
    print(f"[quality {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ running


@dataclass
class Finding:
    file: str
    line: int
    rule: str
    commit: str | None = None
    confidence: str | None = None
    preview: str = ""
    end_line: int | None = None  # when the tool reports a multi-line match


@dataclass
class Run:
    tool: str
    status: str  # ok | not installed | n/a | failed: ...
    findings: list[Finding] = field(default_factory=list)
    wall_s: float | None = None
    command: str = ""


def sentinel_has_min_confidence() -> bool:
    if not SENTINEL.exists():
        return False
    try:
        out = subprocess.run(
            [str(SENTINEL), "scan", "path", "--help"], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--min-confidence" in (out.stdout + out.stderr)


def rel(path: str, root: Path) -> str:
    p = path
    for r in (str(root.resolve()), str(root)):
        if p.startswith(r + "/"):
            return p[len(r) + 1 :]
    return p[2:] if p.startswith("./") else p


def line_preview(root: Path, file: str, line: int, col: int | None, end_col: int | None) -> str:
    """First 4 characters of the flagged text (tree files only)."""
    try:
        text = (root / file).read_text(encoding="utf-8", errors="replace").split("\n")[line - 1]
    except (OSError, IndexError):
        return ""
    if col and end_col and end_col > col:
        return text[col - 1 : end_col - 1][:4]
    return text.strip()[:4]


def command_for(
    tool: str, part: str, target: Path, report: Path
) -> tuple[list[str], Path | None, set[int], bool] | str:
    """(argv, cwd, ok exit codes, report on stdout) or a reason the tool does not run."""
    if tool.startswith("sentinel"):
        if not SENTINEL.exists():
            return f"not installed ({SENTINEL} missing)"
        argv = [
            str(SENTINEL),
            "scan",
            "path" if part == "tree" else "git",
            str(target),
            "--format",
            "json",
            "--output",
            str(report),
            "--no-progress",
        ]
        if tool == "sentinel-medium":
            argv += ["--min-confidence", "medium"]
        return argv, None, {0, 1}, False
    exe = PEERS / tool
    if not exe.exists():
        return "not installed"
    if tool == "betterleaks":
        common = [
            "--no-banner",
            "--no-color",
            "--silent",
            "--exit-code",
            "0",
            "--output",
            str(report),
        ]
        # the tree has no .git/, so `fs DIR` reads exactly the corpus files
        return [str(exe), "fs" if part == "tree" else "git", str(target), *common], None, {0}, False
    if tool == "kingfisher":
        common = [
            "--no-validate",
            "--no-update-check",
            "--quiet",
            "--no-dedup",
            "--format",
            "json",
            "--output",
            str(report),
        ]
        hist = ["--git-history", "none"] if part == "tree" else ["--git-history", "full"]
        return [str(exe), "scan", str(target), *hist, *common], None, {0, 200, 205}, False
    if tool == "detect-secrets":
        if part == "history":
            return "n/a (no history mode)"
        # detect-secrets keeps only files under its working directory: run from inside.
        return [str(exe), "scan", ".", "--all-files", "--no-verify"], target, {0}, True
    raise ValueError(tool)


def shown(argv: list[str], cwd: Path | None, stdout_report: bool, report: Path) -> str:
    s = " ".join(a if a and " " not in a else repr(a) for a in argv)
    s = (
        s.replace(str(SENTINEL), "sentinel")
        .replace(str(PEERS) + "/", "")
        .replace(str(PROJECT) + "/", "")
    )
    s = s.replace(str(report), "OUT.json")
    if cwd is not None:
        s = f"cd {rel(str(cwd), PROJECT)} && {s}"
    if stdout_report:
        s += " > OUT.json"
    return s


def run_tool(tool: str, part: str, target: Path, root_for_preview: Path | None) -> Run:
    tmp = Path(tempfile.mkdtemp(prefix="quality-"))
    report = tmp / "report.json"
    spec = command_for(tool, part, target, report)
    if isinstance(spec, str):
        shutil.rmtree(tmp, ignore_errors=True)
        return Run(tool, spec)
    argv, cwd, ok, stdout_report = spec
    run = Run(tool, "ok", command=shown(argv, cwd, stdout_report, report))
    t0 = time.perf_counter()
    try:
        p = subprocess.run(argv, cwd=cwd or tmp, capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        run.status = f"failed: timeout after {TIMEOUT}s"
        shutil.rmtree(tmp, ignore_errors=True)
        return run
    run.wall_s = round(time.perf_counter() - t0, 2)
    if p.returncode not in ok:
        run.status = (
            f"failed: exit {p.returncode}: {p.stderr.decode(errors='replace').strip()[-300:]}"
        )
        shutil.rmtree(tmp, ignore_errors=True)
        return run
    try:
        doc = json.loads(p.stdout) if stdout_report else json.loads(report.read_text() or "null")
        run.findings = parse(tool, doc, target, root_for_preview)
    except (OSError, ValueError, KeyError, TypeError) as e:
        run.status = f"failed: unreadable report: {e}"
    shutil.rmtree(tmp, ignore_errors=True)
    return run


def parse(tool: str, doc: Any, target: Path, root: Path | None) -> list[Finding]:
    out: list[Finding] = []
    if doc is None:
        return out
    if tool.startswith("sentinel"):
        for f in doc["findings"]:
            file = rel(f["path"], target)
            pv = (
                line_preview(root, file, f["line"], f.get("column"), f.get("end_column"))
                if root
                else ""
            )
            out.append(
                Finding(
                    file,
                    int(f["line"]),
                    f["rule_id"],
                    f.get("commit"),
                    f.get("confidence"),
                    pv,
                    f.get("end_line"),
                )
            )
    elif tool == "betterleaks":
        for f in doc.get("findings") or []:
            loc = f["location"]
            file = rel(loc["path"], target)
            attrs = f.get("attributes") or {}
            out.append(
                Finding(
                    file,
                    int(loc["start_line"]),
                    f["rule_id"],
                    attrs.get("git.sha"),
                    f.get("confidence"),
                    end_line=loc.get("end_line"),
                )
            )
    elif tool == "kingfisher":
        for f in doc.get("findings") or []:
            fd = f["finding"]
            gm = fd.get("git_metadata") or {}
            commit = (gm.get("commit") or {}).get("id")
            path = (gm.get("file") or {}).get("path") or fd["path"]
            out.append(
                Finding(
                    rel(path, target),
                    int(fd["line"]),
                    f["rule"]["id"],
                    commit,
                    fd.get("confidence"),
                )
            )
    elif tool == "detect-secrets":
        for file, items in doc["results"].items():
            for it in items:
                out.append(Finding(rel(file, target), int(it["line_number"]), it["type"]))
    return out


# ----------------------------------------------------------------------------- matching


def load_labels(split: str) -> list[dict[str, Any]]:
    path = WORK / split / "labels.jsonl"
    with open(path) as fh:
        return [json.loads(line) for line in fh]


@dataclass
class Score:
    tp: int = 0
    fn: int = 0
    fp: int = 0
    positives: int = 0
    negatives: int = 0
    detected: set[str] = field(default_factory=set)  # label ids
    fp_pairs: dict[tuple[str, int], dict[str, Any]] = field(
        default_factory=dict
    )  # (file, line) -> label or None
    negatives_hit: set[str] = field(default_factory=set)
    family_tp: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    family_fp: dict[str, set[tuple[str, int]]] = field(default_factory=lambda: defaultdict(set))
    conf_tp: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    conf_fp: dict[str, set[tuple[str, int]]] = field(default_factory=lambda: defaultdict(set))
    fp_preview: dict[tuple[str, int], str] = field(default_factory=dict)
    fp_rule: dict[tuple[str, int], str] = field(default_factory=dict)

    @property
    def recall(self) -> float:
        return self.tp / self.positives if self.positives else 0.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0


def match(labels: list[dict[str, Any]], findings: list[Finding]) -> Score:
    by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for lb in labels:
        by_file[lb["file"]].append(lb)
    s = Score(
        positives=sum(lb["kind"] == "positive" for lb in labels),
        negatives=sum(lb["kind"] == "negative" for lb in labels),
    )
    for f in findings:
        last = max(f.line, f.end_line or f.line)
        cands = [
            lb for lb in by_file.get(f.file, ()) if lb["line"] <= last and f.line <= lb["end_line"]
        ]
        if any(lb["kind"] == "ignore" for lb in cands):
            continue  # e.g. the `kind: Secret` header of a Secret that holds credentials
        if f.commit and any(lb.get("commits") for lb in cands):
            in_commit = [lb for lb in cands if f.commit in (lb.get("commits") or [])]
            cands = in_commit or cands
        pos = [lb for lb in cands if lb["kind"] == "positive"]
        fam = f.rule.split(".")[0]
        if pos:
            for lb in pos:
                s.detected.add(lb["id"])
                s.family_tp[fam].add(lb["id"])
                s.conf_tp[f.confidence or "-"].add(lb["id"])
            continue
        key = (f.file, f.line)
        negs = [lb for lb in cands if lb["kind"] == "negative"]
        if key not in s.fp_pairs:
            s.fp_pairs[key] = negs[0] if negs else {}
            s.fp_preview[key] = f.preview
            s.fp_rule[key] = f.rule
        for lb in negs:
            s.negatives_hit.add(lb["id"])
        s.family_fp[fam].add(key)
        s.conf_fp[f.confidence or "-"].add(key)
    s.tp = len(s.detected)
    s.fn = s.positives - s.tp
    s.fp = len(s.fp_pairs)
    return s


# ------------------------------------------------------------------------------ reports


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def tool_version(tool: str) -> str:
    try:
        if tool.startswith("sentinel"):
            rev = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT, capture_output=True, text=True
            ).stdout.strip()
            dirty = subprocess.run(
                [
                    "git",
                    "status",
                    "--porcelain",
                    "--untracked-files=no",
                    "--",
                    "sentinel",
                    "detectors",
                ],
                cwd=PROJECT,
                capture_output=True,
                text=True,
            ).stdout.strip()
            return f"{rev}{' + uncommitted changes' if dirty else ''}"
        exe = PEERS / tool
        if not exe.exists():
            return "not installed"
        argv = [str(exe), "version"] if tool == "betterleaks" else [str(exe), "--version"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Detection-quality benchmark (see bench/quality/README.md)."
    )
    ap.add_argument("--split", choices=[*SPLITS, "all"], default="all")
    ap.add_argument(
        "--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS)
    )
    ap.add_argument("--no-history", action="store_true", help="skip the git-history part")
    ap.add_argument(
        "--output", type=Path, help="results JSON (default bench/results/<date>-quality.json)"
    )
    a = ap.parse_args()
    splits = SPLITS if a.split == "all" else (a.split,)
    tools = [t for t in a.tools.split(",") if t]
    for t in tools:
        if t not in TOOLS:
            ap.error(f"unknown tool {t}")
    medium = sentinel_has_min_confidence()
    if "sentinel-medium" in tools and not medium:
        log("sentinel scan path has no --min-confidence flag: skipping that row")
        tools.remove("sentinel-medium")
    for split in splits:
        if not (WORK / split / "labels.jsonl").exists():
            log(f"no corpus for {split}: run python3 bench/quality/corpus.py first")
            return 2
    parts = ("tree",) if a.no_history else ("tree", "history")

    results: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "versions": {t: tool_version(t) for t in tools},
        "splits": {},
    }
    scores: dict[tuple[str, str, str], Score] = {}
    runs: dict[tuple[str, str, str], Run] = {}
    labels_all: dict[str, list[dict[str, Any]]] = {}
    for split in splits:
        labels = load_labels(split)
        labels_all[split] = labels
        summary = json.loads((WORK / split / "summary.json").read_text())
        results["splits"][split] = {"corpus": summary, "parts": {}}
        for part in parts:
            target = WORK / split / ("tree" if part == "tree" else "history")
            lbs = [lb for lb in labels if lb["part"] == part]
            pr: dict[str, Any] = {}
            for tool in tools:
                log(f"{split}/{part}: {tool}")
                run = run_tool(tool, part, target, target if part == "tree" else None)
                runs[(split, part, tool)] = run
                entry: dict[str, Any] = {
                    "status": run.status,
                    "wall_s": run.wall_s,
                    "command": run.command,
                }
                if run.status == "ok":
                    sc = match(lbs, run.findings)
                    scores[(split, part, tool)] = sc
                    entry |= tool_entry(sc, lbs, tool, split, part)
                pr[tool] = entry
            results["splits"][split]["parts"][part] = pr

    md = markdown(results, scores, runs, labels_all, tools, splits, parts)
    print(md)
    if "sentinel" in tools and "dev" in splits and ("dev", "tree", "sentinel") in scores:
        print(sentinel_dev_lists(results))
    out = a.output or RESULTS / f"{results['date']}-quality.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, out)
    log(f"wrote {out}")
    return 0


def tool_entry(
    sc: Score, lbs: list[dict[str, Any]], tool: str, split: str, part: str
) -> dict[str, Any]:
    byid = {lb["id"]: lb for lb in lbs}
    pos = [lb for lb in lbs if lb["kind"] == "positive"]
    negs = [lb for lb in lbs if lb["kind"] == "negative"]
    cat_tot = Counter(lb["category"] for lb in pos)
    cat_hit = Counter(byid[i]["category"] for i in sc.detected)
    neg_tot = Counter(lb["category"] for lb in negs)
    neg_hit = Counter(byid[i]["category"] for i in sc.negatives_hit)
    novel = [lb for lb in pos if lb.get("frame_tag") == "h" or lb.get("name_variant") == "heldout"]
    testp = [lb for lb in pos if lb.get("test_path")]
    e: dict[str, Any] = {
        "tp": sc.tp,
        "fn": sc.fn,
        "fp": sc.fp,
        "positives": sc.positives,
        "negatives": sc.negatives,
        "recall": round(sc.recall, 4),
        "precision": round(sc.precision, 4),
        "fp_on_negatives": sum(1 for v in sc.fp_pairs.values() if v),
        "fp_unlabelled": sum(1 for v in sc.fp_pairs.values() if not v),
        "negatives_flagged": len(sc.negatives_hit),
        "recall_by_category": {k: [cat_hit[k], cat_tot[k]] for k in sorted(cat_tot)},
        "negatives_flagged_by_kind": {k: [neg_hit[k], neg_tot[k]] for k in sorted(neg_tot)},
        "recall_heldout_only_contexts": [sum(lb["id"] in sc.detected for lb in novel), len(novel)],
        "recall_test_paths": [sum(lb["id"] in sc.detected for lb in testp), len(testp)],
    }
    if tool.startswith("sentinel"):
        fams = sorted(set(sc.family_tp) | set(sc.family_fp))
        e["precision_by_rule_family"] = {
            f: {"tp": len(sc.family_tp[f]), "fp": len(sc.family_fp[f])} for f in fams
        }
        confs = sorted(set(sc.conf_tp) | set(sc.conf_fp))
        e["by_confidence"] = {
            c: {"tp": len(sc.conf_tp[c]), "fp": len(sc.conf_fp[c])} for c in confs
        }
        if split == "dev":
            e["missed"] = [
                {
                    "provider": lb["provider"],
                    "category": lb["category"],
                    "file": lb["file"],
                    "line": lb["line"],
                    "commit": (lb.get("commit") or "")[:10] or None,
                    "frame": lb["frame"],
                    "preview": (lb.get("value") or "")[:4],
                }
                for lb in pos
                if lb["id"] not in sc.detected
            ]
            e["false_positives"] = [
                {
                    "kind": (v or {}).get("category", "unlabelled"),
                    "look_alike": (v or {}).get("provider", ""),
                    "file": k[0],
                    "line": k[1],
                    "rule_id": sc.fp_rule[k],
                    "preview": ((v or {}).get("value") or sc.fp_preview.get(k, ""))[:4],
                }
                for k, v in sorted(sc.fp_pairs.items())
            ]
    return e


def markdown(
    results: dict[str, Any],
    scores: dict[tuple[str, str, str], Score],
    runs: dict[tuple[str, str, str], Run],
    labels_all: dict[str, list[dict[str, Any]]],
    tools: list[str],
    splits: tuple[str, ...],
    parts: tuple[str, ...],
) -> str:
    L: list[str] = []
    for part in parts:
        title = "Working tree (directory scan)" if part == "tree" else "Git history"
        L += [
            f"### Detection quality — {title}",
            "",
            "| Tool | Split | TP | FN | FP | Recall | Precision | Wall (s) |",
            "|---|---|--:|--:|--:|--:|--:|--:|",
        ]
        for split in splits:
            for tool in tools:
                run = runs.get((split, part, tool))
                if run is None:
                    continue
                if run.status != "ok":
                    L.append(f"| {DISPLAY[tool]} | {split} | {run.status} | | | | | |")
                    continue
                sc = scores[(split, part, tool)]
                L.append(
                    f"| {DISPLAY[tool]} | {split} | {sc.tp} | {sc.fn} | {sc.fp} | {pct(sc.recall)} | {pct(sc.precision)} | {run.wall_s:.2f} |"
                )
        L.append("")
    # per-category recall (tree)
    ok_tools = [t for t in tools if all((s, "tree", t) in scores for s in splits)]
    if ok_tools:
        cats = sorted(
            {
                lb["category"]
                for s in splits
                for lb in labels_all[s]
                if lb["kind"] == "positive" and lb["part"] == "tree"
            }
        )
        L += [
            "### Recall per category — working tree (" + " / ".join(splits) + ")",
            "",
            "| Category | Positives | " + " | ".join(DISPLAY[t] for t in ok_tools) + " |",
            "|---|--:|" + "--:|" * len(ok_tools),
        ]
        for cat in cats:
            n = [
                sum(
                    1
                    for lb in labels_all[s]
                    if lb["kind"] == "positive" and lb["part"] == "tree" and lb["category"] == cat
                )
                for s in splits
            ]
            cells = []
            for t in ok_tools:
                vals = []
                for s in splits:
                    hit, tot = results["splits"][s]["parts"]["tree"][t]["recall_by_category"].get(
                        cat, [0, 0]
                    )
                    vals.append(pct(hit / tot) if tot else "–")
                cells.append(" / ".join(vals))
            L.append(f"| {cat} | {' / '.join(map(str, n))} | " + " | ".join(cells) + " |")
        L.append("")
        kinds = sorted(
            {
                lb["category"]
                for s in splits
                for lb in labels_all[s]
                if lb["kind"] == "negative" and lb["part"] == "tree"
            }
        )
        L += [
            "### Negatives flagged per kind — working tree ("
            + " / ".join(splits)
            + "; lower is better)",
            "",
            "| Negative kind | Cases | " + " | ".join(DISPLAY[t] for t in ok_tools) + " |",
            "|---|--:|" + "--:|" * len(ok_tools),
        ]
        for k in kinds:
            n = [
                sum(
                    1
                    for lb in labels_all[s]
                    if lb["kind"] == "negative" and lb["part"] == "tree" and lb["category"] == k
                )
                for s in splits
            ]
            cells = []
            for t in ok_tools:
                cells.append(
                    " / ".join(
                        str(
                            results["splits"][s]["parts"]["tree"][t][
                                "negatives_flagged_by_kind"
                            ].get(k, [0, 0])[0]
                        )
                        for s in splits
                    )
                )
            L.append(f"| {k} | {' / '.join(map(str, n))} | " + " | ".join(cells) + " |")
        L.append(
            "| *unlabelled lines (FP)* | | "
            + " | ".join(
                " / ".join(
                    str(results["splits"][s]["parts"]["tree"][t]["fp_unlabelled"]) for s in splits
                )
                for t in ok_tools
            )
            + " |"
        )
        L.append("")
        L += [
            "### Recall on harder slices — working tree (" + " / ".join(splits) + ")",
            "",
            "| Slice | " + " | ".join(DISPLAY[t] for t in ok_tools) + " |",
            "|---|" + "--:|" * len(ok_tools),
        ]
        for key, label in (
            ("recall_heldout_only_contexts", "contexts/names used only by heldout"),
            ("recall_test_paths", "positives under test/fixture/example paths"),
        ):
            cells = []
            for t in ok_tools:
                vals = []
                for s in splits:
                    hit, tot = results["splits"][s]["parts"]["tree"][t][key]
                    vals.append(f"{pct(hit / tot)} ({tot})" if tot else "–")
                cells.append(" / ".join(vals))
            L.append(f"| {label} | " + " | ".join(cells) + " |")
        L.append("")
    if (
        "sentinel" in tools and "dev" in splits
    ):  # dev only: heldout gets totals, not per-rule signal
        e = results["splits"]["dev"]["parts"].get("tree", {}).get("sentinel", {})
        if "precision_by_rule_family" in e:
            fams = sorted(
                e["precision_by_rule_family"].items(),
                key=lambda kv: (-kv[1]["fp"], -kv[1]["tp"], kv[0]),
            )
            shown_f = [kv for i, kv in enumerate(fams) if kv[1]["fp"] or i < 12]
            rest = [kv for kv in fams if kv not in shown_f]
            L += [
                "### Sentinel — precision per rule family (dev, working tree)",
                "",
                "| Rule family | TP | FP | Precision |",
                "|---|--:|--:|--:|",
            ]
            for fam, v in shown_f:
                tot = v["tp"] + v["fp"]
                L.append(
                    f"| {fam} | {v['tp']} | {v['fp']} | {pct(v['tp'] / tot) if tot else '–'} |"
                )
            if rest:
                tp, fp = sum(v["tp"] for _, v in rest), sum(v["fp"] for _, v in rest)
                L.append(
                    f"| *{len(rest)} other families* | {tp} | {fp} | {pct(tp / (tp + fp)) if tp + fp else '–'} |"
                )
            L.append("")
            L += ["| Confidence (dev, working tree) | TP | FP | Precision |", "|---|--:|--:|--:|"]
            for c, v in e["by_confidence"].items():
                tot = v["tp"] + v["fp"]
                L.append(f"| {c} | {v['tp']} | {v['fp']} | {pct(v['tp'] / tot) if tot else '–'} |")
            L.append("")
    L += ["Commands (OUT.json is a temporary file):", ""]
    seen = set()
    for (split, part, tool), run in sorted(runs.items()):
        if run.command and (part, tool) not in seen:
            seen.add((part, tool))
            L.append(
                f"- {DISPLAY[tool]} ({part}): `{run.command.replace('/' + split + '/', '/<split>/')}`"
            )
    L.append("")
    return "\n".join(L)


def sentinel_dev_lists(results: dict[str, Any]) -> str:
    L = []
    for part in ("tree", "history"):
        e = results["splits"]["dev"]["parts"].get(part, {}).get("sentinel")
        if not e or "missed" not in e:
            continue
        L += [
            f"### Sentinel on dev/{part}: {len(e['missed'])} missed positives",
            "",
            "| Provider | Category | File:line | Frame | Preview |",
            "|---|---|---|---|---|",
        ]
        for m in sorted(
            e["missed"], key=lambda m: (m["category"], m["provider"], m["file"], m["line"])
        ):
            loc = f"{m['file']}:{m['line']}" + (f" @{m['commit']}" if m.get("commit") else "")
            L.append(
                f"| {m['provider']} | {m['category']} | {loc} | {m['frame']} | `{m['preview']}…` |"
            )
        L += [
            "",
            f"### Sentinel on dev/{part}: {len(e['false_positives'])} false positives",
            "",
            "| Kind | Look-alike | File:line | Rule | Preview |",
            "|---|---|---|---|---|",
        ]
        for f in sorted(
            e["false_positives"], key=lambda f: (f["kind"], f["rule_id"], f["file"], f["line"])
        ):
            L.append(
                f"| {f['kind']} | {f['look_alike']} | {f['file']}:{f['line']} | {f['rule_id']} | `{f['preview']}…` |"
            )
        L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
