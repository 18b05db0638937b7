"""The detection engine: bytes in, matches out.

One pass of Hyperscan over the bytes finds, for every rule at once, where a
match can end. Each rule's hits are merged into small windows (a rule's
maximum width before the hit, a little after) and only those windows are run
through the ``regex`` module, which confirms the match, extracts the secret
group and evaluates what Hyperscan cannot (lookaround, back-references).
Confirmed matches then pass the keyword, entropy, checksum, filter and
allowlist gates. When Hyperscan cannot load, the ``regex`` backend finds hits
by scanning each rule whose keywords occur, then shares every later step, so
both backends report the same matches.

Adversarial input (a chunk of a hundred thousand key-shaped strings) is bounded
per rule, never for the whole chunk, so one flooded rule cannot blind the
others: a rule with more than ``FLOOD_HITS`` hits is confirmed over the whole
chunk at once (its hits are no longer stored); a value is judged once however
often it repeats; at most ``MAX_DISTINCT`` distinct values a rule and
``MAX_REPEATS`` occurrences a value are reported from one chunk. What a cap
leaves out is counted in ``EngineStats.truncated``, by rule, for the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import regex

from detectors import decoders, filters, hsdb
from detectors.entropy import shannon
from detectors.rule import Rule, is_builtin
from detectors.ruleset import RuleSet
from detectors.validators import CHECKSUMS

Backend = Literal["auto", "hyperscan", "regex"]
INLINE_ALLOW = b"sentinel:allow"
TAIL = 64  # bytes after a hit that the confirmation window also covers
# Bump when a change makes the engine report differently for the same rules and bytes:
# caches of earlier verdicts (image layers) are keyed by it.
ENGINE_VERSION = "2"
FLOOD_HITS = 20_000  # hits of one rule in one chunk past which the whole chunk is confirmed
MAX_DISTINCT = 10_000  # distinct values of one rule judged in one chunk; the rest is counted
MAX_REPEATS = 1_000  # occurrences of one value reported from one chunk; the rest is counted
CONTEXT = 16  # bytes either side of a window that belong to its cache key (\b, lookbehind)
CACHE_BYTES = 32 * 1024 * 1024
# A rule that is not built in (a config's [[rule]], --rules, possibly from the scanned
# target itself) may backtrack without end: each of its searches gives up after this many
# seconds, and after GIVE_UP_AFTER such searches the rule is not run again by this engine.
CUSTOM_RULE_TIMEOUT = 1.0
GIVE_UP_AFTER = 3
# (secret start, end, match start, end, secret, entropy), offsets into the window's chunk
_Verdict = tuple[int, int, int, int, bytes, float]


@dataclass(frozen=True, slots=True)
class Match:
    """One confirmed secret. Offsets are into the scanned bytes; for a secret found
    inside an encoded blob they cover the encoded blob and ``decoded`` says how."""

    rule_id: str
    start: int
    end: int
    secret: bytes
    entropy: float
    decoded: str = ""


@dataclass(frozen=True, slots=True)
class GlobalAllowlist:
    """Values never reported, from the project configuration."""

    regexes: tuple[str, ...] = ()
    stopwords: tuple[str, ...] = ()


@dataclass
class EngineStats:
    """What the engine did, for the report. ``truncated``: matches a cap left out, by
    rule (``decoders`` for encoded blobs not decoded); ``scanned_as``: how each chunk
    was read (``text``, ``utf-16le``, ``binary-strings`` ...), counted by the caller."""

    hits: int = 0
    windows: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    truncated: dict[str, int] = field(default_factory=dict)
    scanned_as: dict[str, int] = field(default_factory=dict)
    timed_out: dict[str, int] = field(default_factory=dict)  # searches a rule gave up, by rule

    def reject(self, why: str) -> None:
        self.rejected[why] = self.rejected.get(why, 0) + 1

    def truncate(self, what: str, n: int = 1) -> None:
        self.truncated[what] = self.truncated.get(what, 0) + n

    def time_out(self, rule_id: str, n: int = 1) -> None:
        self.timed_out[rule_id] = self.timed_out.get(rule_id, 0) + n

    def incomplete(self) -> int:
        """Matches a cap left out and searches a timeout cut short: a chunk with any is
        not known to be clean."""
        return sum(self.truncated.values()) + sum(self.timed_out.values())

    def merge(self, other: EngineStats) -> None:
        self.hits += other.hits
        self.windows += other.windows
        for mine, theirs in (
            (self.rejected, other.rejected),
            (self.truncated, other.truncated),
            (self.scanned_as, other.scanned_as),
            (self.timed_out, other.timed_out),
        ):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v

    def take(self) -> EngineStats:
        """These stats, and a fresh start (a worker sends them back per batch)."""
        out = EngineStats(
            self.hits, self.windows, self.rejected, self.truncated, self.scanned_as, self.timed_out
        )
        self.hits = self.windows = 0
        self.rejected, self.truncated, self.scanned_as, self.timed_out = {}, {}, {}, {}
        return out


class _Judged:
    """One rule's verdicts within one chunk: a value is judged once however often it
    repeats, and at most ``MAX_DISTINCT`` values are judged at all."""

    __slots__ = ("left_out", "verdicts")

    def __init__(self) -> None:
        self.verdicts: dict[bytes | tuple[bytes, bytes], tuple[str | None, float]] = {}
        self.left_out = 0


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    pattern: regex.Pattern[bytes]
    group: int | str
    window: int
    reach: int  # bytes after a hit the match can still run (a trigger's rest of the match)
    keywords: tuple[bytes, ...]
    validator: Callable[[bytes], bool] | None
    allow: regex.Pattern[bytes] | None
    stopwords: tuple[bytes, ...]
    named: bool  # a generic rule whose pattern captures the name the value is assigned to
    timeout: float | None  # seconds a search may take: built-in rules are not bounded


def _alternation(parts: Iterable[str]) -> regex.Pattern[bytes] | None:
    parts = [p for p in parts if p]
    if not parts:
        return None
    import regex

    return regex.compile("|".join(f"(?:{p})" for p in parts).encode())


class Engine:
    def __init__(
        self,
        ruleset: RuleSet,
        *,
        backend: Backend = "auto",
        cache_dir: Path | None = None,
        decode_depth: int = 2,
        inline_allow: bool = True,
        allowlist: GlobalAllowlist | None = None,
    ) -> None:
        self.rules = ruleset
        self.decode_depth = decode_depth
        self.inline_allow = inline_allow
        self.stats = EngineStats()
        self._cache: dict[tuple[str, int, int, bytes], list[_Verdict]] = {}
        self._cache_bytes = 0
        self._gave_up: dict[str, int] = {}  # searches of a custom rule that timed out
        allowlist = allowlist or GlobalAllowlist()
        self._global_allow = _alternation(allowlist.regexes)
        self._global_stop = tuple(s.lower().encode() for s in allowlist.stopwords)
        self._rules = list(ruleset)
        # a rule's regex is compiled when it first has hits: most rules never do
        self._compiled: list[_Compiled | None] = [None] * len(self._rules)
        self._generic_ids = frozenset(r.id for r in ruleset if r.generic)
        self._order = {r.id: i for i, r in enumerate(self._rules)}
        self._strict = frozenset(
            i for i, r in enumerate(self._rules) if not r.generic and r.confidence == "high"
        )
        n = len(self._rules)
        self._b64_id, self._pct_id = n, n + 1
        self._db: Any = None
        self.backend: str = "regex"
        if backend in ("auto", "hyperscan"):
            try:
                patterns = [
                    hsdb.Pattern(hsdb.to_hyperscan(r.scan_pattern()), i)
                    for i, r in enumerate(self._rules)
                ]
                patterns.append(hsdb.Pattern(decoders.BASE64_TRIGGER, self._b64_id))
                patterns.append(hsdb.Pattern(decoders.PERCENT_TRIGGER, self._pct_id))
                self._db = hsdb.load_or_compile(patterns, cache_dir)
                self.backend = "hyperscan"
            except hsdb.HyperscanUnavailable:
                if backend == "hyperscan":
                    raise
        if self.backend == "regex":
            import regex

            self._triggers: dict[int, Any] = {}
            self._b64_trigger = regex.compile(decoders.BASE64_TRIGGER, regex.MULTILINE)
            self._pct_trigger = regex.compile(decoders.PERCENT_TRIGGER, regex.MULTILINE)

    def _get(self, i: int) -> _Compiled:
        c = self._compiled[i]
        if c is None:
            c = self._compiled[i] = self._compile(self._rules[i])
        return c

    @staticmethod
    def _compile(rule: Rule) -> _Compiled:
        validator = CHECKSUMS[rule.checksum] if rule.checksum else None
        pattern = rule.compiled()
        return _Compiled(
            rule=rule,
            pattern=pattern,
            group=rule.group(pattern),
            window=rule.window(),
            reach=rule.reach(),
            keywords=tuple(k.encode() for k in rule.keywords),
            validator=validator,
            allow=_alternation(rule.allowlist.regexes),
            stopwords=tuple(s.lower().encode() for s in rule.allowlist.stopwords),
            named=rule.generic and "name" in pattern.groupindex,
            timeout=None if is_builtin(rule) else CUSTOM_RULE_TIMEOUT,
        )

    # -- hits ---------------------------------------------------------------------------

    def _hits_hyperscan(self, data: bytes) -> tuple[dict[int, list[int]], set[int]]:
        """Each rule's hit ends, and the rules flooded past ``FLOOD_HITS`` (their ends
        are not all kept: they are confirmed over the whole chunk)."""
        hits: dict[int, list[int]] = {}
        flooded: set[int] = set()
        count = 0

        def on_match(pid: int, _from: int, to: int, _flags: int, _ctx: object) -> bool:
            nonlocal count
            count += 1
            ends = hits.get(pid)
            if ends is None:
                hits[pid] = [to]
            elif len(ends) < FLOOD_HITS:
                ends.append(to)
            else:
                flooded.add(pid)
            return False

        try:
            self._db.scan(data, match_event_handler=on_match)
        except Exception as exc:
            raise RuntimeError(f"hyperscan scan failed: {exc}") from None
        self.stats.hits += count
        return hits, flooded

    def _hits_regex(self, data: bytes) -> tuple[dict[int, list[int]], set[int]]:
        hits: dict[int, list[int]] = {}
        lowered: bytes | None = None
        for i, rule in enumerate(self._rules):
            if rule.keywords:
                if lowered is None:
                    lowered = data.lower()
                if not any(k.encode() in lowered for k in rule.keywords):
                    continue
            c = self._get(i)
            if self._gave_up.get(rule.id, 0) >= GIVE_UP_AFTER:
                self.stats.time_out(rule.id)
                continue
            try:
                if rule.trigger is None:
                    ends = [m.end() for m in c.pattern.finditer(data, timeout=c.timeout)]
                else:  # the same hit positions Hyperscan reports: the trigger's ends
                    trigger = self._triggers.get(i)
                    if trigger is None:
                        trigger = self._triggers[i] = rule.compiled_trigger()
                    ends = [
                        m.end() for m in trigger.finditer(data, overlapped=True, timeout=c.timeout)
                    ]
            except TimeoutError:
                self._timed_out(rule.id)
                continue
            if ends:
                hits[i] = ends
        hits[self._b64_id] = [m.end() for m in self._b64_trigger.finditer(data)]
        hits[self._pct_id] = [m.end() for m in self._pct_trigger.finditer(data)]
        flooded = {pid for pid, ends in hits.items() if len(ends) > FLOOD_HITS}
        for pid in flooded:  # the same ends Hyperscan keeps
            del hits[pid][FLOOD_HITS:]
        return hits, flooded

    # -- confirmation -------------------------------------------------------------------

    def scan(self, data: bytes, *, strict: bool = False) -> list[Match]:
        """Every secret in ``data``, in order of position. ``strict``: only rules that
        are sure without context (high confidence, not generic), for printable runs in
        binary content, where anything looser is noise."""
        return self._scan(unescape_quotes(data), self.decode_depth, strict)

    def _scan(self, data: bytes, depth: int, strict: bool = False) -> list[Match]:
        if not data:
            return []
        if self._db is not None:
            hits, flooded = self._hits_hyperscan(data)
        else:
            hits, flooded = self._hits_regex(data)
        b64, pct = hits.pop(self._b64_id, []), hits.pop(self._pct_id, [])
        out: list[Match] = []
        for pid, ends in hits.items():
            if strict and pid not in self._strict:
                continue
            self._confirm(self._get(pid), data, ends, out, whole=pid in flooded)
        if depth > 0 and (b64 or pct):
            if self._b64_id in flooded or self._pct_id in flooded:
                self.stats.truncate("decoders")  # encoded runs past the flood are not decoded
            for span, decoded, how in decoders.decoded_regions(data, b64, pct, self.stats):
                for m in self._scan(decoded, depth - 1, strict):
                    out.append(
                        Match(
                            rule_id=m.rule_id,
                            start=span[0],
                            end=span[1],
                            secret=m.secret,
                            entropy=m.entropy,
                            decoded=how + (">" + m.decoded if m.decoded else ""),
                        )
                    )
        if self._generic_ids and len(out) > 1:
            out = self._drop_shadowed_generic(out)
        out.sort(key=lambda m: (m.start, m.rule_id))
        return out

    def _drop_shadowed_generic(self, out: list[Match]) -> list[Match]:
        """A provider rule that found the same secret beats the generic detector, and
        one generic finding per value is enough."""
        import bisect

        specific = sorted((m.start, m.end) for m in out if m.rule_id not in self._generic_ids)
        starts = [s for s, _ in specific]
        reach: list[int] = []  # the furthest end among specific spans starting up to here
        for _, e in specific:
            reach.append(max(e, reach[-1]) if reach else e)
        kept: list[Match] = []
        spans: set[tuple[int, int]] = set()
        for m in sorted(out, key=lambda m: self._order[m.rule_id]):  # first rule wins
            if m.rule_id in self._generic_ids:
                i = bisect.bisect_left(starts, m.end)  # specific spans starting before m ends
                if i and reach[i - 1] > m.start:
                    continue
                if (m.start, m.end) in spans:  # two generic shapes found the same value
                    continue
                spans.add((m.start, m.end))
            kept.append(m)
        return kept

    def _confirm(
        self, c: _Compiled, data: bytes, ends: Sequence[int], out: list[Match], whole: bool
    ) -> None:
        """``whole``: the rule flooded; confirm it over the whole chunk."""
        n = len(data)
        seen: set[tuple[int, int]] = set()
        windows: list[tuple[int, int]] = []
        if whole:
            windows.append((0, n))
        else:
            lo = hi = -1
            after = c.reach + TAIL
            for e in sorted(ends):
                s = e - c.window
                if lo >= 0 and s <= hi:
                    hi = e + after
                else:
                    if lo >= 0:
                        windows.append((lo, hi))
                    lo, hi = max(0, s), e + after
            if lo >= 0:
                windows.append((lo, hi))
        self.stats.windows += len(windows)
        if c.timeout is not None and self._gave_up.get(c.rule.id, 0) >= GIVE_UP_AFTER:
            self.stats.time_out(c.rule.id, len(windows))
            return
        judged = _Judged()
        repeats: dict[bytes, int] = {}
        left_out = 0
        for lo, hi in windows:
            hi = min(hi, n)
            a, b = max(0, lo - CONTEXT), min(n, hi + CONTEXT)
            chunk = data[a:b]
            key = (c.rule.id, lo - a, hi - a, chunk)
            verdicts = self._cache.get(key)
            if verdicts is None:
                before = judged.left_out
                try:
                    verdicts = self._confirm_window(c, chunk, lo - a, hi - a, judged)
                except TimeoutError:
                    self._timed_out(c.rule.id)
                    if self._gave_up[c.rule.id] >= GIVE_UP_AFTER:
                        break
                    continue
                if judged.left_out == before:  # a window cut short is judged again next time
                    self._remember(key, verdicts, len(chunk))
            for s, e, ms, me, secret, ent in verdicts:
                s, e = s + a, e + a
                if (s, e) in seen:
                    continue
                seen.add((s, e))
                if self.inline_allow and INLINE_ALLOW in _line_at(data, ms + a, me + a):
                    self.stats.reject("inline_allow")
                    continue
                times = repeats.get(secret, 0) + 1
                repeats[secret] = times
                if times > MAX_REPEATS:
                    left_out += 1
                    continue
                out.append(Match(rule_id=c.rule.id, start=s, end=e, secret=secret, entropy=ent))
        left_out += judged.left_out
        if left_out:
            self.stats.truncate(c.rule.id, left_out)

    def _timed_out(self, rule_id: str) -> None:
        self.stats.time_out(rule_id)
        self._gave_up[rule_id] = self._gave_up.get(rule_id, 0) + 1

    def _remember(
        self, key: tuple[str, int, int, bytes], verdicts: list[_Verdict], size: int
    ) -> None:
        """Windows recur across the versions of a file in history: cache their verdicts,
        bounded by the bytes the keys hold."""
        self._cache_bytes += size
        if self._cache_bytes > CACHE_BYTES:
            self._cache.clear()
            self._cache_bytes = size
        self._cache[key] = verdicts

    def _confirm_window(
        self, c: _Compiled, chunk: bytes, pos: int, endpos: int, judged: _Judged
    ) -> list[_Verdict]:
        """Matches in ``chunk[pos:endpos]`` that pass every gate that depends only on the
        match (keyword, entropy, checksum, filters, allowlists)."""
        verdicts: list[_Verdict] = []
        seen = judged.verdicts
        for m in c.pattern.finditer(chunk, pos, endpos, overlapped=False, timeout=c.timeout):
            s, e = m.span(c.group)
            if s < 0 or s == e:
                continue
            secret = chunk[s:e]
            # the gates read the whole match, and a generic rule the name before it
            what: bytes | tuple[bytes, bytes] = m.group(0)
            if c.named:
                what = (m.group(0), chunk[max(0, m.start() - NAME_REACH) : m.start()])
            verdict = seen.get(what)
            if verdict is None:
                if len(seen) >= MAX_DISTINCT:
                    judged.left_out += 1
                    continue
                ent = shannon(secret)
                verdict = seen[what] = (self._reject(c, m, secret, ent), round(ent, 3))
            why, ent = verdict
            if why is not None:
                self.stats.reject(why)
                continue
            verdicts.append((s, e, m.start(), m.end(), secret, ent))
        return verdicts

    def _reject(self, c: _Compiled, m: regex.Match[bytes], secret: bytes, ent: float) -> str | None:
        """Why this match is not a secret, or None."""
        rule = c.rule
        if c.keywords:
            whole = m.group(0).lower()
            if not any(k in whole for k in c.keywords):
                return "keyword"
        if rule.entropy is not None and ent < rule.entropy:
            return "entropy"
        if c.validator is not None and not c.validator(secret):
            return "checksum"
        why = filters.rejected_by(secret, rule.generic)
        if why is not None:
            return why
        if rule.generic:
            from detectors import generic  # its patterns compile only when a name needs judging

            ev = generic.Evidence.PASSWORD  # no name: the rule's context says password (-p...)
            if c.named:
                ends = m.ends("name")  # a rule may name the group in each alternative
                if ends:
                    ev = generic.evidence(_whole_name(m.string, m.starts("name")[-1], ends[-1]))
            why = generic.value_rejection(secret, ev)
            if why is not None:
                return why
        low = secret.lower()
        if c.allow is not None and (
            c.allow.search(secret) or (b"%" in secret and c.allow.search(_unquote(secret)))
        ):
            return "rule_allowlist"  # a URL's password is checked as written and decoded
        if any(w in low for w in c.stopwords):
            return "rule_allowlist"
        if (self._global_allow is not None and self._global_allow.search(secret)) or any(
            w in low for w in self._global_stop
        ):
            return "allowlist"
        return None


def _unquote(value: bytes) -> bytes:
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(value)


def unescape_quotes(data: bytes) -> bytes:
    """Escaped quotes read as quotes: backslash-quote becomes space-quote (same length, so
    every offset, line and column stays true). Code inside JSON strings (Jupyter
    notebooks, package.json scripts, ECS task definitions) and inside quoted shell or C
    strings then has the shape it has in its own file, which is what the rules expect."""
    if b'\\"' in data:
        data = data.replace(b'\\"', b' "')
    if b"\\'" in data:
        data = data.replace(b"\\'", b" '")
    return data


_NAME_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
NAME_REACH = 40  # identifier bytes a name may have before its secret word


def _whole_name(data: bytes, start: int, end: int) -> str:
    """The name a generic match captured from its secret word on (``Password``,
    ``PASSWORD``), extended left over identifier bytes: ``dbPassword``, ``DB_PASSWORD``."""
    i = start
    while i > 0 and start - i < NAME_REACH and data[i - 1] in _NAME_BYTES:
        i -= 1
    return data[i:end].decode("latin-1")


def _line_at(data: bytes, start: int, end: int) -> bytes:
    """The full line(s) around ``data[start:end]``, capped so a 10 MB line costs little."""
    ls = data.rfind(b"\n", max(0, start - 4096), start) + 1 or max(0, start - 4096)
    le = data.find(b"\n", end, end + 4096)
    if le < 0:
        le = min(len(data), end + 4096)
    return data[ls:le]


def line_col(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset."""
    line = data.count(b"\n", 0, offset) + 1
    ls = data.rfind(b"\n", 0, offset) + 1
    col = len(data[ls:offset].decode("utf-8", "replace")) + 1
    return line, col
