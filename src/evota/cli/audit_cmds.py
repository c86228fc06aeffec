"""`evota audit …`: read and verify the hash-chained audit log."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from evota.cli.common import (
    DEFAULT_HOME,
    HomeOpt,
    JsonOpt,
    console,
    database,
    done,
    print_json,
    reports_errors,
)
from evota.errors import EvotaError, InputError

audit_app = typer.Typer(help="The append-only, hash-chained audit log.", no_args_is_help=True)


class AuditBrokenError(EvotaError):
    code = "audit_broken"


@audit_app.command("verify")
@reports_errors
def audit_verify(
    home: HomeOpt = DEFAULT_HOME,
    anchor: Annotated[
        str | None,
        typer.Option(
            help="SEQ:HASH of a head printed by an earlier run and kept elsewhere; it must still be there."
        ),
    ] = None,
) -> None:
    """Check every entry: any changed, removed or reordered entry is reported (exit 1).

    Prints the head (newest entry and its hash): keep it elsewhere (a ticket, another system)
    and pass it back with --anchor to detect a truncated tail or a rewritten log.
    """
    from evota.domain.audit import check_anchor, verify_chain
    from evota.server.services.audit import list_entries  # database code loads on use

    seq_hash: tuple[int, str] | None = None
    if anchor is not None:
        seq_text, sep, digest = anchor.partition(":")
        if not sep or not seq_text.isdigit() or len(digest) != 64:
            raise InputError(f"--anchor {anchor!r}: expected SEQ:HASH as printed by evota audit verify")
        seq_hash = (int(seq_text), digest)
    with database(home) as db:
        entries = list_entries(db)
    problems = verify_chain(entries)
    if seq_hash is not None:
        problems += check_anchor(entries, *seq_hash)
    if problems:
        raise AuditBrokenError(f"the audit log is broken: {'; '.join(problems)}")
    # A chain cannot show that its newest entries were cut off: record the head elsewhere
    # (a ticket, another system) and compare it with a later run.
    head = f"; head (keep it for --anchor): {entries[-1].seq}:{entries[-1].hash}" if entries else ""
    done("intact", f"{len(entries)} audit entries, chain verified{head}")


@audit_app.command("list")
@reports_errors
def audit_list(
    limit: Annotated[int, typer.Option(help="At most this many (oldest first).")] = 200,
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """Show audit entries: who, what, when, to what."""
    from evota.server.services.audit import list_entries

    with database(home) as db:
        entries = list_entries(db, limit=limit)
    if as_json:
        print_json([e.to_json() for e in entries])
        return
    table = Table("seq", "at (UTC)", "actor", "action", "subject")
    for e in entries:
        table.add_row(str(e.seq), e.at.strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.action, e.subject)
    console.print(table)
