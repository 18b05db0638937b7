"""Running a scan end to end: rules + config -> source -> occurrences -> suppression."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.engine import ENGINE_VERSION, Backend, EngineStats, GlobalAllowlist
from detectors.rule import RuleFormatError, lint_rule
from detectors.ruleset import RuleSet, load_builtin
from sentinel.baseline import Baseline
from sentinel.config import DEFAULT_MAX_FILE_SIZE, Config
from sentinel.errors import ConfigError, RuleError
from sentinel.fingerprint import fingerprint, installation_key
from sentinel.models import Occurrence, Origin, ScanResult, display_path
from sentinel.scanning import EngineSpec, OccurrenceFactory

OWN_FILES = frozenset({".sentinel.toml", ".sentinel-baseline.json"})
# suppressions that a config file decides (not baselines, rules' own allowlists, repeats)
TARGET_ALLOWLISTS = ("allowlist_path", "allowlist_commit", "allowlist_value", "sentinel_config")


@dataclass
class ScanOptions:
    config: Config = field(default_factory=Config)
    baseline: Baseline | None = None
    extra_rule_files: tuple[str, ...] = ()
    jobs: int | None = None
    backend: Backend = "auto"
    max_file_size: int | None = None
    progress: Any = None
    # the key of a baseline that findings may be added to (each occurrence then carries
    # its fingerprint under it too); the loaded baseline's own key when there is one
    baseline_key: bytes | None = None
    # the config was found inside the scanned target (its own .sentinel.toml or
    # [tool.sentinel]): whoever wrote the target wrote it, so what it hides is reported
    config_from_target: bool = False


def build_ruleset(opts: ScanOptions) -> RuleSet:
    try:
        rs = load_builtin()
        extra = list(opts.config.rules)
        for f in opts.extra_rule_files:
            extra.extend(_load_rule_file(Path(f)))
        for r in extra:
            problems = lint_rule(r)
            if problems:
                raise RuleError(f"custom rule {r.id!r} ({r.source_file}): {problems[0]}")
        rs = rs.plus(extra)
        unknown = [i for i in opts.config.disable_rules if i not in {r.id for r in rs}]
        if unknown:
            raise ConfigError(
                f"{opts.config.source}: disable_rules names unknown rule {unknown[0]!r}"
            )
        return rs.without(opts.config.disable_rules)
    except RuleFormatError as exc:
        raise RuleError(str(exc)) from None


def _load_rule_file(path: Path) -> list[Any]:
    """A ``--rules`` file, read so that a FIFO or device is refused, never waited on."""
    from detectors.ruleset import parse_rules_toml
    from sentinel.sources.safeio import read_text

    try:
        text = read_text(path, 16 * 1024 * 1024)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise RuleFormatError(f"{path}: cannot read rule file: {reason}") from None
    return parse_rules_toml(text, str(path))


def engine_spec(opts: ScanOptions, ruleset: RuleSet) -> EngineSpec:
    cfg = opts.config
    return EngineSpec(
        ruleset=ruleset,
        backend=opts.backend,
        allowlist=GlobalAllowlist(regexes=cfg.allow_regexes, stopwords=cfg.allow_stopwords),
        fingerprint_key=installation_key().key,
    )


def _gitignore_spec(globs: tuple[str, ...]) -> Any:
    """A gitignore-style matcher for ``globs``, or None (pathspec is imported only when
    there are globs: a hook's start-up pays for every import)."""
    if not globs:
        return None
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(globs)


class Collector:
    """Applies path/commit allowlists and the baseline, and collapses repeats."""

    def __init__(self, opts: ScanOptions, factory: OccurrenceFactory, dedupe_history: bool) -> None:
        cfg = opts.config
        self.factory = factory
        self.baseline = opts.baseline
        self.baseline_key = opts.baseline.key if opts.baseline is not None else opts.baseline_key
        # exclude_paths keep files out of a walk; in history they suppress what was found there
        globs = cfg.allow_paths + (cfg.exclude_paths if dedupe_history else ())
        self.allow_paths = _gitignore_spec(globs)
        self.allow_commits = {c.lower() for c in cfg.allow_commits}
        self.dedupe_history = dedupe_history
        self.suppressed: Counter[str] = Counter()
        self.config = cfg
        self.config_from_target = opts.config_from_target
        self._best: dict[tuple[str, str, str], Occurrence] = {}
        self._all: list[Occurrence] = []

    def add(self, origin: Origin, hit: Any, rel_path: str | None = None) -> Occurrence | None:
        """Keep ``hit`` unless an allowlist, the baseline or an older repeat suppresses
        it; the occurrence kept (None when suppressed)."""
        rel = rel_path if rel_path is not None else origin.path
        if rel in OWN_FILES:
            # rule examples and baselines are meant to hold secret-shaped strings; only the
            # target's own (at its root): a file of that name elsewhere is just a file
            self.suppressed["sentinel_config"] += 1
            return None
        if self.allow_paths is not None and self.allow_paths.match_file(rel):
            self.suppressed["allowlist_path"] += 1
            return None
        if not self.factory.path_allowed(hit.rule_id, origin.path):
            self.suppressed["rule_allowlist_path"] += 1
            return None
        if origin.commit and origin.commit.lower() in self.allow_commits:
            self.suppressed["allowlist_commit"] += 1
            return None
        occ = self.factory.make(hit, origin, rel)
        if self.baseline_key is not None:
            # a baseline under another key than the report's (the public one, usually):
            # the value is looked up under that key. Hits from the layer cache carry no
            # value; scan_image rescans their layers when this applies.
            occ.baseline_fingerprint = (
                fingerprint(occ.secret.encode(), self.baseline_key)
                if occ.secret and self.baseline_key != self.factory.key
                else occ.fingerprint
            )
        if self.baseline is not None and occ.baseline_fingerprint in self.baseline.fingerprints:
            self.suppressed["baseline"] += 1
            return None
        if not self.dedupe_history:
            self._all.append(occ)
            return occ
        # In history, one secret in one file is one occurrence: the oldest commit wins,
        # and of two with the same author date (a cherry-pick) the same one every run,
        # whatever order the workers finished in.
        key = (occ.rule_id, occ.fingerprint, origin.path)
        prev = self._best.get(key)
        if prev is None or _age(occ) < _age(prev):
            if prev is not None:
                self.suppressed["repeat_in_history"] += 1
            self._best[key] = occ
            return occ
        self.suppressed["repeat_in_history"] += 1
        return None

    def occurrences(self) -> list[Occurrence]:
        occs = list(self._best.values()) if self.dedupe_history else self._all
        occs.sort(key=lambda o: (o.origin.path, o.line, o.column, o.rule_id, o.origin.date or ""))
        return occs


def _age(occ: Occurrence) -> tuple[float, str, int, int]:
    o = occ.origin
    return (_instant(o.date), o.commit or "", occ.line, occ.column)


def _instant(date: str | None) -> float:
    """Seconds since the epoch of an ISO date with offset (authors live in many zones)."""
    if not date:
        return float("inf")
    try:
        return dt.datetime.fromisoformat(date).timestamp()
    except ValueError:
        return float("inf")


def engine_report(stats: dict[str, Any], es: EngineStats, col: Collector) -> None:
    """What the engine did that a reader must know: how files were read, matches a cap
    left out (by rule, with a warning), and matches an inline ``sentinel:allow`` hid."""
    if es.scanned_as:
        stats["scanned_as"] = dict(sorted(es.scanned_as.items()))
    inline = es.rejected.get("inline_allow", 0)
    if inline:
        col.suppressed["inline_allow"] += inline
    by_value = es.rejected.get("allowlist", 0)  # the config's allowlist regexes, stopwords
    if by_value:
        col.suppressed["allowlist_value"] += by_value
    if es.timed_out:
        from detectors.engine import CUSTOM_RULE_TIMEOUT, GIVE_UP_AFTER

        stats["timed_out"] = dict(sorted(es.timed_out.items()))
        rules = ", ".join(f"{k} ({v})" for k, v in sorted(es.timed_out.items())[:5])
        stats.setdefault("warnings", []).append(
            f"{sum(es.timed_out.values())} search(es) by custom rules not finished: each gives "
            f"up after {CUSTOM_RULE_TIMEOUT:g} s and a rule stops after {GIVE_UP_AFTER} "
            f"(a pattern that backtracks without end?); what they would have matched there "
            f"is not reported: {rules}"
        )
    if es.truncated:
        total = sum(es.truncated.values())
        stats["truncated"] = dict(sorted(es.truncated.items()))
        stats["truncated_total"] = total
        worst = ", ".join(f"{k} ({v})" for k, v in sorted(es.truncated.items())[:5])
        stats.setdefault("warnings", []).append(
            f"{total} match(es) not reported or not decoded because of per-chunk caps "
            f"(adversarial or generated content?): {worst}"
        )


def config_report(stats: dict[str, Any], col: Collector) -> str | None:
    """Name the config the scan ran under in ``stats["config"]``; when the scanned target
    supplied it, a warning line listing everything it hid or narrowed (None when nothing),
    since a repository can otherwise silence its own secrets without a word."""
    cfg = col.config
    if not cfg.source:
        return None
    stats["config"] = {"source": cfg.source, "from_scanned_target": col.config_from_target}
    if not col.config_from_target:
        return None
    effects = []
    hidden = {k: col.suppressed[k] for k in TARGET_ALLOWLISTS if col.suppressed[k]}
    if hidden:
        detail = ", ".join(f"{k} {n}" for k, n in sorted(hidden.items()))
        effects.append(f"it hid {sum(hidden.values())} match(es) ({detail})")
    excluded = (stats.get("skipped") or {}).get("excluded", 0)
    if excluded:
        effects.append(f"exclude_paths kept {excluded} file(s) out")
    if cfg.disable_rules:
        effects.append(
            f"it disables {len(cfg.disable_rules)} rule(s): {', '.join(cfg.disable_rules[:5])}"
        )
    if cfg.min_confidence != "low":
        effects.append(f"it reports only findings of {cfg.min_confidence} confidence or more")
    if cfg.max_file_size < DEFAULT_MAX_FILE_SIZE:
        effects.append(f"it lowers max_file_size to {cfg.max_file_size} bytes")
    if not effects:
        return None
    return (
        f"the scanned target's own config ({cfg.source}) shaped this report: "
        f"{'; '.join(effects)}. --no-target-config scans without it"
    )


def _finish(
    col: Collector,
    ruleset: RuleSet,
    started: float,
    stats: dict[str, Any],
    engine: EngineStats | None = None,
) -> ScanResult:
    """The result: ``stats["warnings"]`` (one line each) says what a reader must know
    about how far to trust it; the CLI prints them on stderr too."""
    if engine is not None:
        engine_report(stats, engine, col)
    occs = col.occurrences()
    key = installation_key()
    warnings = list(stats.get("warnings") or [])
    if key.warning():
        warnings.append(key.warning())
    shaped = config_report(stats, col)
    if shaped:
        warnings.append(shaped)
    stats.update(
        {
            "rules": len(ruleset),
            "findings": len({(o.rule_id, o.fingerprint) for o in occs}),
            "occurrences": len(occs),
            "suppressed": dict(sorted(col.suppressed.items())),
            "fingerprint_key_id": key.id,
            "duration_seconds": round(time.monotonic() - started, 3),
        }
    )
    if warnings:
        stats["warnings"] = warnings
    return ScanResult(occs, stats)


def scan_git(
    repo: str, opts: ScanOptions, *, branch: str | None = None, since: str | None = None
) -> ScanResult:
    from sentinel.sources import git

    started = time.monotonic()
    ruleset = build_ruleset(opts)
    spec = engine_spec(opts, ruleset)
    col = Collector(opts, OccurrenceFactory(ruleset, spec.fingerprint_key), dedupe_history=True)
    gs = git.scan_history(
        repo,
        spec,
        branch=branch,
        since=since,
        max_size=opts.max_file_size or opts.config.max_file_size,
        jobs=opts.jobs,
        progress=opts.progress,
        on_hit=col.add,
    )
    stats = {
        "source": "git",
        "blobs_scanned": gs.blobs,
        "commits_scanned": gs.commits,
        "tags_scanned": gs.tags,
        "bytes_scanned": gs.bytes,
        "skipped": dict(sorted(gs.skipped.items())),
    }
    if gs.warnings:
        stats["warnings"] = list(gs.warnings)
    if gs.errors:
        stats["errors"] = list(gs.errors)
    return _finish(col, ruleset, started, stats, gs.engine)


def scan_paths(paths: list[str], opts: ScanOptions, *, use_ignore: bool = True) -> ScanResult:
    from sentinel.sources import files

    started = time.monotonic()
    ruleset = build_ruleset(opts)
    spec = engine_spec(opts, ruleset)
    col = Collector(opts, OccurrenceFactory(ruleset, spec.fingerprint_key), dedupe_history=False)
    exclude = _gitignore_spec(opts.config.exclude_paths)
    hits, ws = files.scan_paths(
        paths,
        spec,
        use_ignore=use_ignore,
        max_size=opts.max_file_size or opts.config.max_file_size,
        exclude=exclude,
        jobs=opts.jobs,
        progress=opts.progress,
    )
    for display, rel, raw in hits:
        origin = Origin(source="file", path=display_path(display))
        for h in raw:
            col.add(origin, h, rel)
    stats = {
        "source": "file",
        "files_scanned": ws.files,
        "bytes_scanned": ws.bytes,
        "skipped": dict(sorted(ws.skipped.items())),
    }
    if ws.errors:  # arguments that could not be read: named on stderr, exit 2
        stats["errors"] = ws.errors
    return _finish(col, ruleset, started, stats, ws.engine)


def scan_image(
    target: str,
    opts: ScanOptions,
    *,
    platform: str | None = None,
    insecure: bool = False,
    use_cache: bool = True,
    max_layer_size: int | None = None,
    timeout: float = 30.0,
    need_values: bool = False,
) -> ScanResult:
    """Scan a container image: a docker archive, an OCI layout or a registry reference.
    ``need_values``: secret values will be printed (the layer cache has none)."""
    import hashlib

    from detectors.hsdb import default_cache_dir
    from sentinel.fingerprint import key_id
    from sentinel.sources import image
    from sentinel.sources.layer_cache import LayerCache
    from sentinel.sources.layers import Limits

    started = time.monotonic()
    ruleset = build_ruleset(opts)
    spec = engine_spec(opts, ruleset)
    col = Collector(opts, OccurrenceFactory(ruleset, spec.fingerprint_key), dedupe_history=False)
    if col.baseline_key is not None and col.baseline_key != spec.fingerprint_key:
        # cached hits carry fingerprints under this installation's key only: the
        # layers that hold them are read again to look their values up in the baseline
        need_values = True
    max_file = opts.max_file_size or opts.config.max_file_size
    limits = Limits(max_file=max_file, **({"max_layer": max_layer_size} if max_layer_size else {}))
    cache = None
    if use_cache:
        # everything that changes what the engine reports is part of a layer's cache key
        settings = hashlib.sha256(
            "|".join(
                [
                    ruleset.digest(),
                    ENGINE_VERSION,  # the same rules can report more (UTF-16, binaries, caps)
                    key_id(spec.fingerprint_key),  # cached hits carry fingerprints
                    repr(spec.allowlist),
                    str(spec.decode_depth),
                    str(max_file),
                ]
            ).encode()
        ).hexdigest()
        cache = LayerCache(
            Path(spec.cache_dir) if spec.cache_dir else default_cache_dir(), settings
        )
    ist = image.scan_images(
        target,
        spec,
        platform=platform,
        insecure=insecure,
        limits=limits,
        cache=cache,
        jobs=opts.jobs,
        timeout=timeout,
        on_hit=col.add,
        need_values=need_values,
    )
    stats = {
        "source": "image",
        "images_scanned": ist.images,
        "layers_scanned": ist.layers - ist.layers_cached,
        "layers_cached": ist.layers_cached,
        "files_scanned": ist.files,
        "bytes_scanned": ist.bytes,
        "skipped": dict(sorted(ist.skipped.items())),
        "errors": ist.errors,
    }
    return _finish(col, ruleset, started, stats, ist.engine)


def scan_k8s(
    paths: list[str],
    opts: ScanOptions,
    *,
    cluster: Any = None,
    stdin: Any = None,
) -> ScanResult:
    """Kubernetes manifests (files, directories, charts, ``-`` for stdin) and, with
    ``cluster`` (a ``ClusterOptions``), a live cluster's ConfigMaps and Secrets."""
    from sentinel.sources import k8s

    started = time.monotonic()
    ruleset = build_ruleset(opts)
    spec = engine_spec(opts, ruleset)
    factory = OccurrenceFactory(ruleset.plus([k8s.secret_manifest_rule()]), spec.fingerprint_key)
    col = Collector(opts, factory, dedupe_history=False)
    stats = k8s.KubeStats()
    scanner = k8s.ValueScanner(spec, col.add)
    cluster_name = None
    if paths:
        k8s.scan_manifests(paths, scanner, stats, stdin)
    if cluster is not None:
        cluster_name = k8s.scan_cluster(cluster, scanner, stats)
    out = {
        "source": "k8s",
        "files_scanned": stats.files,
        "documents_scanned": stats.documents,
        "objects_scanned": stats.objects,
        "values_scanned": stats.values,
        "bytes_scanned": stats.bytes,
        "skipped": dict(sorted(stats.skipped.items())),
        "errors": stats.errors,
    }
    if cluster_name is not None:
        out["cluster"] = cluster_name
    return _finish(col, ruleset, started, out, scanner.engine.stats)
