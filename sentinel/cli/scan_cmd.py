"""``sentinel scan git|path``."""

from __future__ import annotations

import contextlib
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Scan a source for secrets.", no_args_is_help=True)

# Path options say readable=False: typer's default check refuses an unreadable path with
# a four-line usage error before the command can say, in one line, what is wrong.


class Format(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    sarif = "sarif"


FormatOpt = Annotated[
    Optional[Format],  # noqa: UP045 (typer reads the annotation at runtime)
    typer.Option("--format", "-f", help="Output format; table on a terminal, json otherwise."),
]
OutputOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--output", "-o", help="Write the report to this file instead of stdout.", readable=False
    ),
]
ShowOpt = Annotated[
    bool, typer.Option("--show-secrets", help="Print plaintext secrets (never the default).")
]
BaselineOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--baseline", help="Suppress secrets listed in this baseline file.", readable=False
    ),
]
ConfigOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--config", help="Config file (default: .sentinel.toml or pyproject.toml).", readable=False
    ),
]
RulesOpt = Annotated[
    Optional[list[Path]],  # noqa: UP045
    typer.Option(
        "--rules", help="Extra rule file(s) in the detectors/rules TOML format.", readable=False
    ),
]
JobsOpt = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option("--jobs", "-j", min=1, help="Worker processes (default: one per core)."),
]
MaxSizeOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--max-file-size", help="Skip files/blobs larger than this (e.g. 10MB)."),
]


class Confidence(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


MinConfidenceOpt = Annotated[
    Optional[Confidence],  # noqa: UP045
    typer.Option(
        "--min-confidence",
        help="Report only findings at least this sure: high (provider formats with a prefix "
        "or checksum), medium (provider name nearby, connection strings), low (generic "
        "guesses; the default reports all). Test/fixture/example paths count one lower.",
    ),
]
TargetConfigOpt = Annotated[
    bool,
    typer.Option(
        "--no-target-config",
        help="Do not read the scanned target's own .sentinel.toml or [tool.sentinel] "
        "(for targets you do not control: it could allowlist its own secrets).",
    ),
]
StoreOpt = Annotated[
    bool,
    typer.Option(
        "--store",
        help="Also record the scan and its findings in the configured store "
        "(SENTINEL_DATABASE_URL, default $SENTINEL_HOME/sentinel.db).",
    ),
]
ReportToOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--report-to",
        help="Also post the results to a running Sentinel service at this URL "
        "(token from SENTINEL_TOKEN or SENTINEL_TOKEN_FILE).",
    ),
]
StoreScanIdOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--store-scan-id", hidden=True, help="The service's queued scan row to fill."),
]
ProgressOpt = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr (TTY only).")
]


def _options(
    target: Path,
    config: Path | None,
    baseline: Path | None,
    rules: list[Path] | None,
    jobs: int | None,
    max_file_size: str | None,
    progress: bool,
    label: str,
    *,
    target_config: bool | None = None,
):  # type: ignore[no-untyped-def]
    """``target_config``: True/False when ``target`` is the scanned thing (read its own
    config, or not); None when it is only where to look (the current directory)."""
    from sentinel import baseline as baseline_mod
    from sentinel import config as config_mod
    from sentinel.cli.progress import maybe
    from sentinel.fingerprint import fingerprint_key
    from sentinel.scanner import ScanOptions

    if config:
        cfg = config_mod.load(config)
    elif target_config is False:
        cfg = config_mod.Config()
    else:
        cfg = config_mod.discover(target)
    return ScanOptions(
        config=cfg,
        config_from_target=not config
        and bool(target_config)
        and cfg.source is not None
        and not _is_own_project(target),
        baseline=baseline_mod.load(baseline, fingerprint_key()) if baseline else None,
        extra_rule_files=tuple(str(r) for r in rules or ()),
        jobs=jobs,
        max_file_size=config_mod.parse_size(max_file_size, "--max-file-size")
        if max_file_size
        else None,
        progress=maybe(label, progress),
    )


def _abs(p: Path) -> str:
    """The canonical path the store records. ``os.path.realpath`` rather than
    ``Path.resolve``: on Python 3.11 ``resolve`` raises ``RuntimeError`` on a symlink
    loop, which the scan itself reports as a one-line error."""
    return os.path.realpath(os.path.expanduser(p))


class Sink:
    """Where a finished scan goes besides the report: the store (``--store``) and/or a
    running service (``--report-to``). Both are checked before the scan starts, so a
    misconfigured store fails in a second, not after an hour of history."""

    def __init__(self, store, report_to, scan_id, **scan) -> None:  # type: ignore[no-untyped-def]
        self.store = store
        self.report_to = report_to
        self.scan_id = scan_id
        self.scan = scan
        from sentinel.models import utcnow_iso

        self.started = utcnow_iso()

    @classmethod
    def make(cls, store: bool, report_to: str | None, scan_id: str | None, **scan):  # type: ignore[no-untyped-def]
        if scan_id and not store:
            from sentinel.errors import ConfigError

            raise ConfigError("--store-scan-id needs --store")
        if not store and not report_to:
            return None
        opened = None
        if store:
            from sentinel.store.facade import open_store

            opened = open_store()
        if report_to:
            from sentinel.cli.report_to import check_url

            check_url(report_to)
        return cls(opened, report_to, scan_id, **scan)

    def deliver(self, result) -> None:  # type: ignore[no-untyped-def]
        import getpass
        from datetime import datetime

        started = datetime.fromisoformat(self.started)
        if self.store is not None:
            from sentinel.store.facade import record_result

            try:
                scan, res = record_result(
                    self.store,
                    result=result,
                    requested_by=f"cli:{getpass.getuser()}",
                    started=started,
                    scan_id=self.scan_id,
                    **self.scan,
                )
            finally:
                self.store.close()
            print(
                f"sentinel: stored scan {scan.id}: {res.occurrences_new} new occurrence(s), "
                f"{len(res.new_findings)} new finding(s), {res.occurrences_gone} gone",
                file=sys.stderr,
            )
            if res.plaintext_refused:
                print(
                    f"sentinel: warning: {res.plaintext_refused} rotatable secret value(s) not "
                    "kept: no encryption key (SENTINEL_ENCRYPTION_KEY); rotation will need "
                    "them supplied again",
                    file=sys.stderr,
                )
        if self.report_to:
            from sentinel.cli.report_to import post_results

            post_results(self.report_to, result, started=started, **self.scan)


def _is_own_project(target: Path) -> bool:
    """The current directory is the target or inside it: the user's own project, whose
    config they chose (its effects are still counted in the stats, without a warning)."""
    try:
        top = target.resolve()
        here = Path.cwd().resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, on Python 3.11
        return False
    top = top if top.is_dir() else top.parent
    return here == top or top in here.parents


@contextlib.contextmanager
def _closing_progress(opts):  # type: ignore[no-untyped-def]
    """The progress bar is torn down whether the scan ends or fails."""
    try:
        yield
    finally:
        if opts.progress is not None:
            opts.progress.close()


def keep_confident(result, floor: str) -> None:  # type: ignore[no-untyped-def]
    """Drop findings below ``floor``, counting them in the stats."""
    from sentinel.confidence import at_least

    if floor == "low":
        return
    kept = [o for o in result.occurrences if at_least(o.confidence, floor)]
    result.stats["below_min_confidence"] = len(result.occurrences) - len(kept)
    result.occurrences = kept


def emit(  # type: ignore[no-untyped-def]
    result,
    fmt: Format | None,
    output: Path | None,
    show_secrets: bool,
    min_confidence: Confidence | None = None,
    opts=None,
    sink=None,
) -> None:
    """Write the report, then exit: 2 if the scan met errors it went past (each named
    on stderr: a crafted layer entry, a YAML bomb, a forbidden namespace ...), else 1
    with findings, 0 without. ``min_confidence`` (else the config's) filters first."""
    floor = min_confidence.value if min_confidence is not None else None
    if floor is None and opts is not None:
        floor = opts.config.min_confidence
    keep_confident(result, floor or "low")
    from sentinel.display import for_terminal

    emit_only(result, fmt, output, show_secrets)
    if sink is not None:
        from sentinel.errors import SentinelError

        try:
            sink.deliver(result)
        except SentinelError as exc:
            result.stats.setdefault("errors", []).append(str(exc))
    for w in result.stats.get("warnings") or []:
        print(f"sentinel: warning: {for_terminal(w)}", file=sys.stderr)
    errors = result.stats.get("errors") or []
    for e in errors:
        print(f"sentinel: error: {for_terminal(e)}", file=sys.stderr)
    if errors:
        raise typer.Exit(2)
    raise typer.Exit(1 if result.occurrences else 0)


def emit_only(result, fmt: Format | None, output: Path | None, show_secrets: bool) -> None:  # type: ignore[no-untyped-def]
    from sentinel.errors import ConfigError
    from sentinel.report import render

    chosen = (
        fmt or (Format.table if sys.stdout.isatty() and output is None else Format.json)
    ).value
    if output is None:
        render(result, chosen, sys.stdout, show_secrets=show_secrets)
        sys.stdout.flush()
    else:
        from sentinel.report.writefile import write_private

        try:
            with write_private(output) as fh:
                render(result, chosen, fh, show_secrets=show_secrets)
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from None


@app.command("git")
def scan_git(
    repo: Annotated[
        Path, typer.Argument(help="Repository (work tree or bare).", readable=False)
    ] = Path("."),
    branch: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--branch", help="Only history reachable from this ref (default: all refs)."),
    ] = None,
    since: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--since", help="Only commits not reachable from this ref or commit."),
    ] = None,
    no_history: Annotated[
        bool, typer.Option("--no-history", help="Scan the working tree only.")
    ] = False,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    show_secrets: ShowOpt = False,
    store: StoreOpt = False,
    report_to: ReportToOpt = None,
    store_scan_id: StoreScanIdOpt = None,
    min_confidence: MinConfidenceOpt = None,
    baseline: BaselineOpt = None,
    config: ConfigOpt = None,
    rules: RulesOpt = None,
    jobs: JobsOpt = None,
    max_file_size: MaxSizeOpt = None,
    progress: ProgressOpt = True,
    no_target_config: TargetConfigOpt = False,
) -> None:
    """Scan every blob reachable from every ref (branches, tags, remotes, stash), and
    commit and tag messages; each finding names the commit that introduced it."""
    from sentinel import scanner

    opts = _options(
        repo,
        config,
        baseline,
        rules,
        jobs,
        max_file_size,
        progress,
        "history",
        target_config=not no_target_config,
    )
    sink = Sink.make(
        store,
        report_to,
        store_scan_id,
        kind="path" if no_history else "git",
        target=_abs(repo),
        params={"branch": branch, "since": since, "no_history": no_history},
        complete=not (branch or since),
    )
    with _closing_progress(opts):
        if no_history:
            from sentinel.sources.git import open_repo

            _, work = open_repo(str(repo))
            if work is None:
                from sentinel.errors import SourceError

                raise SourceError(f"{repo} is a bare repository: it has no working tree to scan")
            result = scanner.scan_paths([work], opts)
        else:
            result = scanner.scan_git(str(repo), opts, branch=branch, since=since)
    emit(result, fmt, output, show_secrets, min_confidence, opts, sink)


@app.command("path")
def scan_path(
    paths: Annotated[list[Path], typer.Argument(help="Files and directories.", readable=False)],
    no_ignore: Annotated[
        bool, typer.Option("--no-ignore", help="Also scan files that .gitignore excludes.")
    ] = False,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    show_secrets: ShowOpt = False,
    store: StoreOpt = False,
    report_to: ReportToOpt = None,
    store_scan_id: StoreScanIdOpt = None,
    min_confidence: MinConfidenceOpt = None,
    baseline: BaselineOpt = None,
    config: ConfigOpt = None,
    rules: RulesOpt = None,
    jobs: JobsOpt = None,
    max_file_size: MaxSizeOpt = None,
    progress: ProgressOpt = True,
    no_target_config: TargetConfigOpt = False,
) -> None:
    """Scan files and directories, honouring .gitignore; binaries and files over the
    size limit are skipped and counted."""
    from sentinel import scanner

    opts = _options(
        paths[0],
        config,
        baseline,
        rules,
        jobs,
        max_file_size,
        progress,
        "files",
        target_config=not no_target_config,
    )
    sink = Sink.make(
        store,
        report_to,
        store_scan_id,
        kind="path",
        target=",".join(sorted(_abs(p) for p in paths)),
        params={"no_ignore": no_ignore},
        complete=True,
    )
    with _closing_progress(opts):
        result = scanner.scan_paths([str(p) for p in paths], opts, use_ignore=not no_ignore)
    emit(result, fmt, output, show_secrets, min_confidence, opts, sink)


@app.command("image")
def scan_image(
    target: Annotated[
        str,
        typer.Argument(
            help="A docker save archive (.tar, .tar.gz), an OCI layout directory, or a "
            "registry reference (host[:port]/name:tag or name@sha256:...)."
        ),
    ],
    platform: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--platform", help="Only this platform of a multi-arch image, e.g. linux/amd64."
        ),
    ] = None,
    insecure_registry: Annotated[
        bool,
        typer.Option(
            "--insecure-registry", help="Plain HTTP to the registry (loopback or private hosts)."
        ),
    ] = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Scan every layer, even ones scanned clean before.")
    ] = False,
    max_layer_size: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--max-layer-size", help="Stop decompressing a layer past this (default 16GB)."
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=1, help="Seconds to wait for the registry per request."),
    ] = 30.0,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    show_secrets: ShowOpt = False,
    store: StoreOpt = False,
    report_to: ReportToOpt = None,
    store_scan_id: StoreScanIdOpt = None,
    min_confidence: MinConfidenceOpt = None,
    baseline: BaselineOpt = None,
    config: ConfigOpt = None,
    rules: RulesOpt = None,
    jobs: JobsOpt = None,
    max_file_size: MaxSizeOpt = None,
) -> None:
    """Scan every file of every layer (files a later layer deletes included: they are
    still in the image) and the image config (Env, Labels, Cmd, Entrypoint, history)."""
    from sentinel import config as config_mod
    from sentinel import scanner

    opts = _options(Path("."), config, baseline, rules, jobs, max_file_size, False, "image")
    sink = Sink.make(
        store,
        report_to,
        store_scan_id,
        kind="image",
        target=target if not Path(target).exists() else _abs(Path(target)),
        params={"platform": platform},
        complete=True,
    )
    result = scanner.scan_image(
        target,
        opts,
        platform=platform,
        insecure=insecure_registry,
        use_cache=not no_cache,
        max_layer_size=config_mod.parse_size(max_layer_size, "--max-layer-size")
        if max_layer_size
        else None,
        timeout=timeout,
        need_values=show_secrets or sink is not None,
    )
    emit(result, fmt, output, show_secrets, min_confidence, opts, sink)


@app.command("k8s")
def scan_k8s(
    paths: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(help="Manifests, directories, Helm charts, or - for stdin."),
    ] = None,
    cluster: Annotated[
        bool, typer.Option("--cluster", help="Scan a live cluster through its API.")
    ] = False,
    kubeconfig: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--kubeconfig",
            help="Kubeconfig file (default: $KUBECONFIG or ~/.kube/config; in a pod: its service account).",
        ),
    ] = None,
    context: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--context", help="Kubeconfig context (default: the current one)."),
    ] = None,
    namespace: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--namespace", "-n", help="Only this namespace (repeatable; default: all)."),
    ] = None,
    include_secrets: Annotated[
        bool,
        typer.Option("--include-secrets", help="Also list Secrets (provider rules only)."),
    ] = False,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, max=5000, help="Objects per list request.")
    ] = 500,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds to wait for the API server.")
    ] = 30.0,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    show_secrets: ShowOpt = False,
    store: StoreOpt = False,
    report_to: ReportToOpt = None,
    store_scan_id: StoreScanIdOpt = None,
    min_confidence: MinConfidenceOpt = None,
    baseline: BaselineOpt = None,
    config: ConfigOpt = None,
    rules: RulesOpt = None,
    max_file_size: MaxSizeOpt = None,
) -> None:
    """Scan Kubernetes ConfigMaps, Secrets and workload env values: manifests on disk
    (multi-document YAML, JSON, List kinds, Helm charts, kustomize output on stdin) or
    a live cluster (--cluster)."""
    from sentinel import scanner
    from sentinel.errors import ConfigError
    from sentinel.sources.k8s import ClusterOptions

    if not paths and not cluster:
        raise ConfigError("give manifests to scan (or - for stdin), or --cluster")
    opts = _options(Path("."), config, baseline, rules, None, max_file_size, False, "k8s")
    sink = Sink.make(
        store,
        report_to,
        store_scan_id,
        kind="k8s",
        target=(context or "current-context")
        if cluster
        else ",".join(sorted(p if p == "-" else _abs(Path(p)) for p in paths or [])),
        params={"cluster": cluster, "namespaces": list(namespace or [])},
        complete=not namespace,
    )
    result = scanner.scan_k8s(
        list(paths or []),
        opts,
        cluster=ClusterOptions(
            kubeconfig=kubeconfig,
            context=context,
            namespaces=tuple(namespace or ()),
            include_secrets=include_secrets,
            page_size=page_size,
            timeout=timeout,
        )
        if cluster
        else None,
        stdin=sys.stdin.buffer,
    )
    emit(result, fmt, output, show_secrets, min_confidence, opts, sink)
