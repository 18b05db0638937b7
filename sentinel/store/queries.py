"""Reading and triaging findings, and listing scans: what the API serves.

Every list is keyset-paginated: the cursor is an opaque base64 of the sort key and the
id of the last row given, so a page is one index range scan whatever its depth, and
rows inserted between pages never shift what comes next (no row is given twice; a new
row sorting before the cursor is simply not on later pages). One caveat of sorting by
``last_seen``: a finding seen again by a scan moves to the front, so a walk in progress
does not meet it again (nor twice).

Filters are chosen to use the indexes of migration 0002: status, severity and rule each
lead an index ending in (last_seen, id); source kind and target test occurrences with
EXISTS / IN over (finding_id, source) and (target, source, finding_id). Sorting by
severity walks the severities in rank order, one (severity, last_seen, id) range each,
instead of sorting by a computed rank.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    func,
    or_,
    select,
    tuple_,
    update,
)

from sentinel.store.models import (
    FINDING_STATUSES,
    SCAN_STATUSES,
    SOURCE_BITS,
    TRIAGE_STATUSES,
    Finding,
    Occurrence,
    Scan,
    utcnow,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

T = TypeVar("T")

SEVERITIES = ("critical", "high", "medium", "low", "info")  # most severe first
CONFIDENCES = ("high", "medium", "low")
SOURCES = ("git", "file", "image", "k8s")
FINDING_SORTS = ("last_seen", "first_seen", "severity")
ORDERS = ("desc", "asc")
ROTATION_STATUSES = tuple(s for s in FINDING_STATUSES if s not in TRIAGE_STATUSES)
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
OCCURRENCES_PAGE = 1000
MAX_REASON = 2000
_MAX_CURSOR = 1024
_MAX_TEXT = 200


class QueryError(ValueError):
    """A request the store cannot answer as asked (a bad filter, cursor or limit): the
    API's 422, with this one-line message."""


class NotFound(LookupError):
    pass


class Conflict(Exception):
    """The object is in a state that refuses this change (the API's 409)."""


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class FindingFilter:
    status: str | None = None
    severity: str | None = None
    confidence: str | None = None
    rule: str | None = None  # an exact rule id, or a prefix ending in "*" ("aws.*")
    source: str | None = None  # occurrence source kind: git | file | image | k8s
    target: str | None = None  # an occurrence's exact target (repository, path, image)
    since: datetime | None = None  # last seen at or after
    q: str | None = None  # text in the rule id or the redacted preview

    def check(self) -> None:
        _one_of("status", self.status, FINDING_STATUSES)
        _one_of("severity", self.severity, SEVERITIES)
        _one_of("confidence", self.confidence, CONFIDENCES)
        _one_of("source", self.source, SOURCES)
        for name in ("rule", "target", "q"):
            value = getattr(self, name)
            if value is None:
                continue
            limit = 4096 if name == "target" else _MAX_TEXT
            if not value or len(value) > limit:
                raise QueryError(f"{name}: give 1 to {limit} characters")
            if any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise QueryError(f"{name}: control characters are not allowed")
        if self.rule is not None and "*" in self.rule[:-1]:
            raise QueryError("rule: '*' may only end a prefix, as in aws.*")
        if self.since is not None and self.since.tzinfo is None:
            raise QueryError("since: give a time zone (e.g. 2026-01-01T00:00:00Z)")


def _one_of(name: str, value: str | None, allowed: Sequence[str]) -> None:
    if value is not None and value not in allowed:
        raise QueryError(f"{name}: {value[:40]!r} is not one of {', '.join(allowed)}")


def check_limit(limit: int, most: int = MAX_LIMIT) -> int:
    if not 1 <= limit <= most:
        raise QueryError(f"limit: give 1 to {most}")
    return limit


# -- cursors -------------------------------------------------------------------------


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str, types: Sequence[type]) -> list[Any]:
    """The key in ``cursor``, checked to be one given out for ``kind`` (a list, a sort
    and order) with values of ``types``."""
    bad = QueryError("cursor: not one this API gave out for this listing and sort")
    if len(cursor) > _MAX_CURSOR:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError):
        raise bad from None
    if not isinstance(doc, list) or len(doc) != len(types) + 1 or doc[0] != kind:
        raise bad
    out: list[Any] = []
    for value, typ in zip(doc[1:], types, strict=True):
        if typ is datetime:
            if not isinstance(value, str):
                raise bad
            try:
                dt = datetime.fromisoformat(value)
            except ValueError:
                raise bad from None
            if dt.tzinfo is None:
                raise bad
            out.append(dt)
        elif typ is int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad
            out.append(value)
        else:
            if not isinstance(value, str):
                raise bad
            out.append(value)
    return out


# -- findings ------------------------------------------------------------------------


def _prefix_range(prefix: str) -> tuple[str, str] | None:
    """[prefix, next) bounds that hold exactly the strings starting with ``prefix``
    under a byte-order collation (SQLite's default, and C / C.UTF-8 on PostgreSQL)."""
    if not prefix:
        return None
    last = prefix[-1]
    if ord(last) >= 0x10FFFF:
        return None
    return prefix, prefix[:-1] + chr(ord(last) + 1)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# A listing's statement depends on which filters it has, not on their values: it is
# built once per shape with bound parameters and kept (building a statement and its
# cache key for every request was a tenth of a page's time), the values bound at each
# execution. A shape is the names of the filters given, in this order.


def _shape(flt: FindingFilter) -> tuple[str, ...]:
    shape: list[str] = []
    for name in ("status", "severity", "confidence"):
        if getattr(flt, name):
            shape.append(name)
    if flt.rule:
        if not flt.rule.endswith("*"):
            shape.append("rule")
        elif _prefix_range(flt.rule[:-1]) is not None:
            shape.append("rule_range")
        else:
            shape.append("rule_like")
    if flt.since is not None:
        shape.append("since")
    if flt.target is not None:
        shape.append("target_source" if flt.source else "target")
    elif flt.source:
        shape.append("source")
    if flt.q:
        shape.append("q")
    return tuple(shape)


def _params(flt: FindingFilter) -> dict[str, Any]:
    """The values of ``flt`` for the parameters of ``_conditions(_shape(flt))``."""
    params: dict[str, Any] = {
        "f_status": flt.status,
        "f_severity": flt.severity,
        "f_confidence": flt.confidence,
        "f_rule": flt.rule,
        "f_since": flt.since,
        "f_target": flt.target,
        "f_source": flt.source,
        "f_source_bit": SOURCE_BITS.get(flt.source or "", 0),
    }
    if flt.rule and flt.rule.endswith("*"):
        prefix = flt.rule[:-1]
        bounds = _prefix_range(prefix)
        if bounds is not None:
            params["f_rule_lo"], params["f_rule_hi"] = bounds
        params["f_rule_like"] = _like_escape(prefix) + "%"
    if flt.q:
        params["f_q"] = "%" + _like_escape(flt.q.lower()) + "%"
    return params


@functools.cache
def _conditions(shape: tuple[str, ...]) -> tuple[ColumnElement[bool], ...]:
    from sqlalchemy import bindparam

    conds: list[ColumnElement[bool]] = []
    for name in shape:
        if name in ("status", "severity", "confidence"):
            conds.append(getattr(Finding, name) == bindparam(f"f_{name}"))
        elif name == "rule":
            conds.append(Finding.rule_id == bindparam("f_rule"))
        elif name in ("rule_range", "rule_like"):
            if name == "rule_range":
                # the range is what uses the index; the LIKE is exact under any collation
                conds.append(Finding.rule_id >= bindparam("f_rule_lo"))
                conds.append(Finding.rule_id < bindparam("f_rule_hi"))
            conds.append(Finding.rule_id.like(bindparam("f_rule_like"), escape="\\"))
        elif name == "since":
            conds.append(Finding.last_seen >= bindparam("f_since"))
        elif name in ("target", "target_source"):
            # one index range over (target, source, finding_id), not a probe per finding
            sub = select(Occurrence.finding_id).where(Occurrence.target == bindparam("f_target"))
            if name == "target_source":
                sub = sub.where(Occurrence.source == bindparam("f_source"))
            conds.append(Finding.id.in_(sub))
        elif name == "source":
            conds.append(Finding.sources.op("&")(bindparam("f_source_bit")) != 0)
        elif name == "q":
            pattern = bindparam("f_q")
            conds.append(
                or_(
                    func.lower(Finding.rule_id).like(pattern, escape="\\"),
                    func.lower(Finding.redacted).like(pattern, escape="\\"),
                )
            )
    return tuple(conds)


@functools.cache
def _page_statement(shape: tuple[str, ...], sort: str, desc: bool, after: bool) -> Any:
    """A page of a listing sorted by ``sort`` (last_seen or first_seen, then id), after
    the key bound as k_seen, k_id when ``after``, at most f_limit rows."""
    from sqlalchemy import Integer, bindparam

    col = Finding.last_seen if sort == "last_seen" else Finding.first_seen
    stmt = select(*_listed_columns()).where(*_conditions(shape))
    if after:
        key = tuple_(col, Finding.id)
        bound = tuple_(bindparam("k_seen", type_=col.type), bindparam("k_id", type_=Integer))
        stmt = stmt.where(key < bound if desc else key > bound)
    stmt = stmt.order_by(*[c.desc() if desc else c.asc() for c in (col, Finding.id)])
    return stmt.limit(bindparam("f_limit", type_=Integer))


def _keyed(
    stmt: Select[Finding],
    cols: Sequence[Any],
    after: Sequence[Any] | None,
    desc: bool,
) -> Select[Finding]:
    if after is not None:
        key = tuple_(*cols)
        bound = tuple_(*[_bind(c, v) for c, v in zip(cols, after, strict=True)])
        stmt = stmt.where(key < bound if desc else key > bound)
    return stmt.order_by(*[c.desc() if desc else c.asc() for c in cols])


def _bind(col: Any, value: Any) -> Any:
    from sqlalchemy import literal

    return literal(value, type_=col.type)


@functools.cache
def _listed_columns() -> tuple[Any, ...]:
    """What a listing reads of each finding: every column but the sealed value and its
    key id (only whether there is a value), as plain rows: building ORM objects was a third of a page's
    cost, and the value has no business leaving the store on a listing."""
    cols: list[Any] = [
        c
        for c in Finding.__table__.c
        if c.name not in ("secret_sealed", "secret_key_id", "sources")
    ]
    cols.append(Finding.__table__.c.secret_sealed.is_not(None).label("value_kept"))
    return tuple(cols)


def _rows(session: Session, stmt: Any) -> list[Any]:
    """``stmt``'s rows through the session's connection: Core rows, without the ORM's
    result machinery (a listing has no entities to load)."""
    return list(session.connection().execute(stmt).all())


def list_findings(
    session: Session,
    flt: FindingFilter | None = None,
    *,
    sort: str = "last_seen",
    order: str = "desc",
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[Any]:
    """A page of findings as rows (attributes named as Finding's columns, and
    ``value_kept`` instead of the sealed value)."""
    flt = flt or FindingFilter()
    flt.check()
    _one_of("sort", sort, FINDING_SORTS)
    _one_of("order", order, ORDERS)
    check_limit(limit)
    desc = order == "desc"
    kind = f"findings:{sort}:{order}"
    shape = _shape(flt)
    params = _params(flt)
    if sort == "severity":
        return _by_severity(session, flt, shape, params, kind, desc, limit, cursor)
    after = decode_cursor(cursor, kind, (datetime, int)) if cursor else None
    stmt = _page_statement(shape, sort, desc, after is not None)
    params["f_limit"] = limit + 1
    if after is not None:
        params["k_seen"], params["k_id"] = after
    rows = list(session.connection().execute(stmt, params).all())
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = None
    if more:
        last = rows[-1]
        nxt = encode_cursor(kind, (getattr(last, sort), last.id))
    return Page(rows, nxt)


def _by_severity(
    session: Session,
    flt: FindingFilter,
    shape: tuple[str, ...],
    params: dict[str, Any],
    kind: str,
    desc: bool,
    limit: int,
    cursor: str | None,
) -> Page[Any]:
    ranks = list(SEVERITIES if desc else reversed(SEVERITIES))
    start, after = 0, None
    if cursor:
        sev, seen, fid = decode_cursor(cursor, kind, (str, datetime, int))
        if sev not in ranks:
            raise QueryError("cursor: not one this API gave out for this listing and sort")
        start, after = ranks.index(sev), (seen, fid)
    ranks_left = [s for s in ranks[start:] if flt.severity in (None, s)]
    rows: list[Any] = []
    for i, sev in enumerate(ranks_left):
        first = i == 0 and ranks_left[0] == ranks[start]
        stmt = select(*_listed_columns()).where(*_conditions(shape), Finding.severity == sev)
        stmt = _keyed(stmt, (Finding.last_seen, Finding.id), after if first else None, desc)
        stmt = stmt.limit(limit + 1 - len(rows))
        rows.extend(session.connection().execute(stmt, params).all())
        if len(rows) > limit:
            break
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = None
    if more:
        last = rows[-1]
        nxt = encode_cursor(kind, (last.severity, last.last_seen, last.id))
    return Page(rows, nxt)


def get_finding(session: Session, finding_id: int) -> Finding:
    f = session.get(Finding, finding_id)
    if f is None:
        raise NotFound(f"no finding {finding_id}")
    return f


def finding_row(session: Session, finding_id: int) -> Any:
    """A finding as a listing's row, with ``occurrences_total`` and
    ``occurrences_present`` (not gone), in one query."""
    o = Occurrence.__table__.c
    of_it = o.finding_id == finding_id
    total = select(func.count()).where(of_it).scalar_subquery()
    present = select(func.count()).where(of_it, o.gone_at.is_(None)).scalar_subquery()
    stmt = select(
        *_listed_columns(),
        total.label("occurrences_total"),
        present.label("occurrences_present"),
    ).where(Finding.__table__.c.id == finding_id)
    rows = _rows(session, stmt)
    if not rows:
        raise NotFound(f"no finding {finding_id}")
    return rows[0]


@functools.cache
def _occurrence_columns() -> tuple[Any, ...]:
    """What the API shows of an occurrence: every column but its finding's id and the
    location key ingest dedupes on."""
    return tuple(c for c in Occurrence.__table__.c if c.name not in ("finding_id", "location_key"))


def occurrences_of(
    session: Session,
    finding_id: int,
    *,
    limit: int = OCCURRENCES_PAGE,
    cursor: str | None = None,
) -> Page[Any]:
    """A finding's occurrences in the order they were first recorded, a page at a time,
    as rows of ``_occurrence_columns``."""
    check_limit(limit, OCCURRENCES_PAGE)
    kind = f"occurrences:{finding_id}"
    o = Occurrence.__table__.c
    stmt = select(*_occurrence_columns()).where(o.finding_id == finding_id)
    if cursor:
        (after,) = decode_cursor(cursor, kind, (int,))
        stmt = stmt.where(o.id > after)
    rows = _rows(session, stmt.order_by(o.id).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(kind, (rows[-1].id,)) if more else None)


@dataclass(frozen=True)
class Triage:
    finding: Finding
    previous: str


def triage(
    session: Session,
    finding_id: int,
    status: str,
    *,
    reason: str | None,
    who: str,
    now: datetime | None = None,
) -> Triage:
    """Set a finding's triage status (the caller commits; on SQLite it should have
    begun with ``writing``). ``ignored`` and ``false_positive`` need a reason; ``open``
    reopens. A finding in a rotation state is rotation's to move: Conflict."""
    _one_of("status", status, TRIAGE_STATUSES)
    reason = (reason or "").strip() or None
    if status != "open" and reason is None:
        raise QueryError(f"reason: required to mark a finding {status}")
    if reason is not None and (len(reason) > MAX_REASON or "\x00" in reason):
        raise QueryError(f"reason: at most {MAX_REASON} characters, no NUL")
    now = now or utcnow()
    f = session.get(Finding, finding_id, with_for_update=True)
    if f is None:
        raise NotFound(f"no finding {finding_id}")
    previous = f.status
    if previous not in TRIAGE_STATUSES:
        raise Conflict(
            f"finding {finding_id} is {previous}: rotation decides its status, not triage"
        )
    # one conditional update: a rotation that started meanwhile is not overwritten
    res = session.execute(
        update(Finding)
        .where(Finding.id == finding_id, Finding.status.in_(TRIAGE_STATUSES))
        .values(status=status, triaged_by=who, triaged_at=now, triage_reason=reason)
        .execution_options(synchronize_session=False)
    )
    if not getattr(res, "rowcount", 1):
        raise Conflict(f"finding {finding_id} changed state meanwhile; read it again")
    session.refresh(f)
    return Triage(f, previous)


# -- scans ---------------------------------------------------------------------------


def list_scans(
    session: Session,
    *,
    status: str | None = None,
    kind: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[Scan]:
    """Newest first."""
    _one_of("status", status, SCAN_STATUSES)
    if kind is not None and (not kind or len(kind) > 16):
        raise QueryError("kind: give 1 to 16 characters")
    check_limit(limit)
    ckind = "scans"
    stmt = select(Scan)
    if status:
        stmt = stmt.where(Scan.status == status)
    if kind:
        stmt = stmt.where(Scan.kind == kind)
    if cursor:
        created, sid = decode_cursor(cursor, ckind, (datetime, str))
        stmt = stmt.where(
            or_(
                Scan.created_at < _bind(Scan.created_at, created),
                and_(Scan.created_at == _bind(Scan.created_at, created), Scan.id < sid),
            )
        )
    stmt = stmt.order_by(Scan.created_at.desc(), Scan.id.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(ckind, (rows[-1].created_at, rows[-1].id)) if more else None
    return Page(rows, nxt)


def get_scan(session: Session, scan_id: str) -> Scan:
    s = session.get(Scan, scan_id) if len(scan_id) <= 32 else None
    if s is None:
        raise NotFound(f"no scan {scan_id[:40]}")
    return s
