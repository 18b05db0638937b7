"""A human table (rich), redacted unless ``--show-secrets``."""

from __future__ import annotations

from typing import TextIO

from sentinel.display import for_terminal
from sentinel.models import ScanResult

STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def write_table(result: ScanResult, out: TextIO, show_secrets: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=out, soft_wrap=False, width=None if out.isatty() else 160)
    occs = result.occurrences
    if not occs:
        console.print("[green]No secrets found.[/green]")
    else:
        table = Table(show_lines=False, pad_edge=False, box=None)
        table.add_column("Severity")
        table.add_column("Rule")
        table.add_column("Location", overflow="fold")
        table.add_column("Commit")
        table.add_column("Secret", overflow="fold")
        for o in occs:
            loc = f"{o.origin.path}:{o.line}:{o.column}"
            commit = (o.origin.commit or "")[:10]
            if o.origin.kind and o.origin.source == "k8s":
                where = "/".join(x for x in (o.origin.namespace, o.origin.name) if x)
                loc += f" ({o.origin.kind} {where}" + (
                    f", key {o.origin.key})" if o.origin.key else ")"
                )
            if o.origin.layer_index:
                loc += f" (layer {o.origin.layer_index})"
            if o.origin.deleted_in_layer_index:
                loc += (
                    f", deleted in layer {o.origin.deleted_in_layer_index} but still in the image"
                )
            # paths and values are text, never rich markup, and never terminal controls
            table.add_row(
                f"[{STYLE.get(o.severity, '')}]{escape(for_terminal(o.severity))}[/]",
                escape(for_terminal(o.rule_id)),
                escape(for_terminal(loc)),
                escape(for_terminal(commit)),
                escape(for_terminal(o.secret if show_secrets else o.redacted)),
            )
        console.print(table)
    s = result.stats
    distinct = s.get("findings", 0)
    scanned = s.get("blobs_scanned", s.get("files_scanned", 0))
    unit = "blobs" if "blobs_scanned" in s else "files"
    console.print(
        f"{len(occs)} occurrence(s) of {distinct} distinct secret(s); "
        f"{scanned} {unit}, {s.get('bytes_scanned', 0) / 1e6:.1f} MB in {s.get('duration_seconds', 0)} s",
        style="dim",
    )
    skipped = s.get("skipped") or {}
    if skipped:
        console.print(
            escape(
                "skipped: "
                + ", ".join(f"{v} {for_terminal(k).replace('_', ' ')}" for k, v in skipped.items())
            ),
            style="dim",
        )
