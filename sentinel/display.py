"""Text from scanned content, made safe to show a person on a terminal.

File names, author names, commit subjects, rule descriptions from custom rules and
Kubernetes keys come from whoever wrote the scanned content. Printed raw, an escape
sequence in a file name (``esc\\x1b[2J.txt``) clears the screen or rewrites the
lines above it, hiding findings; a bidirectional override (U+202E) makes a name
read backwards. ``for_terminal`` shows every such character as a visible escape
(``\\x1b``, ``\\u202e``) and leaves all other text, non-ASCII letters included,
as it is. JSON escapes C0 controls by itself but passes DEL, C1 controls and
bidi characters through raw (``ensure_ascii=False``), and reports are read with
``cat`` and ``jq -r`` too: ``json_text`` escapes those as ``\\uXXXX``, which any
JSON reader decodes back to the same string.
"""

from __future__ import annotations

# C0 controls, DEL and C1 controls (U+0080-U+009F: U+009B is a one-character CSI on
# terminals that honour 8-bit controls), and the Unicode bidirectional controls.
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))


_NAMED = {0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r"}


def _table(keep: str) -> dict[int, str]:
    table: dict[int, str] = {}
    for cp in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)):
        if chr(cp) not in keep:
            table[cp] = _NAMED.get(cp, f"\\x{cp:02x}")
    for cp in _BIDI:
        table[cp] = f"\\u{cp:04x}"
    return table


_ONE_LINE = _table("")
_MULTI_LINE = _table("\n\t")


def for_terminal(text: object, *, multiline: bool = False) -> str:
    """``text`` with every control character shown as an escape. ``multiline`` keeps
    newlines and tabs (a message of several lines); otherwise they are escaped too,
    so one field stays on one line."""
    s = text if isinstance(text, str) else str(text)
    return s.translate(_MULTI_LINE if multiline else _ONE_LINE)


# in JSON text these characters can only sit inside strings, where \uXXXX is the same value
_JSON = {cp: f"\\u{cp:04x}" for cp in (0x7F, *range(0x80, 0xA0), *_BIDI)}
_JSON_SEPARATORS = {0x2028: "\\u2028", 0x2029: "\\u2029"}  # line breaks to some readers


def json_text(encoded: str) -> str:
    """``encoded`` JSON (from ``json.dumps(..., ensure_ascii=False)``) with DEL, C1
    controls, bidi controls and Unicode line separators written as escapes."""
    return encoded.translate(_JSON | _JSON_SEPARATORS)


def write_json(doc: object, out: object, *, indent: int | None = 2) -> None:
    """``doc`` as JSON on ``out`` (a text stream), safe to show on a terminal."""
    import json

    out.write(json_text(json.dumps(doc, indent=indent, ensure_ascii=False)))  # type: ignore[attr-defined]
