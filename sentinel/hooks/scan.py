"""What every hook does with bytes: the engine and the suppression rules of a scan,
built once per hook run, and the verdict on each occurrence (block or warn)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sentinel.config import Config
from sentinel.models import Occurrence, Origin

if TYPE_CHECKING:
    from sentinel.scanning import RawHit


@dataclass(frozen=True)
class Oversize:
    """A file over ``max_file_size``: only its first and last parts were scanned."""

    path: str
    size: int
    scanned: int  # bytes of it that were scanned (head + tail)

    @property
    def unscanned(self) -> int:
        return self.size - self.scanned

    def record(self) -> dict[str, object]:
        return {"path": self.path, "size": self.size, "unscanned_bytes": self.unscanned}


def shifted(hit: RawHit, lines: int, offset: int) -> RawHit:
    """``hit`` found in a file's tail, placed where it is in the whole file."""
    from dataclasses import replace

    return replace(
        hit,
        line=hit.line + lines,
        end_line=hit.end_line + lines,
        offset=None if hit.offset is None else hit.offset + offset,
        end_offset=None if hit.end_offset is None else hit.end_offset + offset,
    )


def oversize_mode(config_value: str, git_value: str | None) -> str:
    """``warn`` or ``block``: git config ``sentinel.oversize`` when set, else the config
    file's ``oversize``."""
    from sentinel.config import OVERSIZE_MODES
    from sentinel.errors import ConfigError

    if git_value is None:
        return config_value
    mode = git_value.strip().lower()
    if mode not in OVERSIZE_MODES:
        raise ConfigError(f"sentinel.oversize {git_value!r} is not warn or block")
    return mode


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def describe_oversize(o: Oversize, max_size: int) -> str:
    """One line, loud, naming the file, its size and what was not scanned (the path is
    escaped for the terminal: it comes from someone's tree)."""
    from sentinel.display import for_terminal

    return for_terminal(
        f"{o.path} is {_mb(o.size)} ({o.size} bytes), over max_file_size ({_mb(max_size)}): "
        f"only its first and last {_mb(max_size // 2)} were scanned, "
        f"{o.unscanned} bytes in the middle were NOT"
    )


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
    oversize: list[Oversize] = field(default_factory=list)


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
        self.oversize = config.oversize  # warn | block (git config may override it)
        self.collector = Collector(opts, OccurrenceFactory(ruleset, key), dedupe_history=False)

    def scan(
        self, data: bytes, origin: Origin, first_line: int = 0, first_byte: int = 0
    ) -> list[Occurrence]:
        """The occurrences in ``data`` that no allowlist or baseline suppresses, read as
        the engine reads it (text, UTF-16/32, a binary's printable runs). ``first_line``
        and ``first_byte``: where ``data`` starts in its file, when it is the tail of
        one too large to read whole."""
        from sentinel.scanning import text_hits

        kept = []
        for hit in text_hits(self.engine, data):
            if first_line or first_byte:
                hit = shifted(hit, first_line, first_byte)
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
