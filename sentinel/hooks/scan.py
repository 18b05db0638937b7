"""What every hook does with bytes: the engine and the suppression rules of a scan,
built once per hook run, and the verdict on each occurrence (block or warn)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sentinel.config import Config
from sentinel.models import Occurrence, Origin


@dataclass
class Verdicts:
    """Occurrences a hook found: ``blocking`` stop the commit or push, ``warnings`` are
    secrets that were already there before this change, ``unsure`` are new ones below
    the blocking confidence (generic guesses, by default): both reported, not blocking."""

    blocking: list[Occurrence] = field(default_factory=list)
    warnings: list[Occurrence] = field(default_factory=list)
    unsure: list[Occurrence] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    scanned: int = 0


class HookScanner:
    """The engine plus the project's allowlists and (optionally) a baseline."""

    def __init__(self, config: Config, baseline_path: Path | None) -> None:
        from sentinel import baseline as baseline_mod
        from sentinel.fingerprint import PUBLIC_KEY, installation_key
        from sentinel.scanner import Collector, ScanOptions, build_ruleset, engine_spec
        from sentinel.scanning import OccurrenceFactory

        key = installation_key().key
        baseline = baseline_mod.load(baseline_path, key) if baseline_path else None
        # the fingerprints a hook prints are for 'sentinel baseline add': under the
        # project baseline's key (the public one for a new baseline)
        opts = ScanOptions(config=config, baseline=baseline, baseline_key=PUBLIC_KEY)
        ruleset = build_ruleset(opts)
        spec = engine_spec(opts, ruleset)
        self.engine = spec.build()
        self.max_size = config.max_file_size
        self.block_confidence = config.block_confidence
        self.collector = Collector(opts, OccurrenceFactory(ruleset, key), dedupe_history=False)

    def scan(self, data: bytes, origin: Origin) -> list[Occurrence]:
        """The occurrences in ``data`` that no allowlist or baseline suppresses."""
        from sentinel.scanning import text_hits
        from sentinel.sources.sniff import is_binary

        if is_binary(data):
            self.collector.suppressed["binary"] += 1
            return []
        kept = []
        for hit in text_hits(self.engine, data):
            occ = self.collector.add(origin, hit)
            if occ is not None:
                kept.append(occ)
        return kept


def split_unsure(
    blocking: list[Occurrence], floor: str
) -> tuple[list[Occurrence], list[Occurrence]]:
    """(findings sure enough to block, the rest): hooks stay quiet on generic guesses."""
    from sentinel.confidence import at_least

    sure = [o for o in blocking if at_least(o.confidence, floor)]
    return sure, [o for o in blocking if not at_least(o.confidence, floor)]
