"""Appending to the audit log inside a use case's own transaction, and verifying it.

`record` is called by other services with their session, so an action and its audit entry
commit together or not at all. Appends are serialised (PostgreSQL: a transaction-scoped
advisory lock; SQLite: one writer at a time) so the chain never forks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from evota.domain.audit import GENESIS, AuditEntry, entry_hash, verify_chain
from evota.server.store.db import Database
from evota.server.store.models import AuditRow

__all__ = ["list_entries", "record", "verify"]

_APPEND_LOCK = 0x61756469  # "audi"


def record(
    session: Session, *, actor: str, action: str, subject: str, details: Mapping[str, Any], now: dt.datetime
) -> AuditEntry:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _APPEND_LOCK})
    last = session.scalars(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).one_or_none()
    seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
    now = now.astimezone(dt.UTC)  # stored and hashed in UTC on every backend
    clean = dict(details)
    digest = entry_hash(
        seq=seq, at=now, actor=actor, action=action, subject=subject, details=clean, prev_hash=prev
    )
    session.add(
        AuditRow(
            seq=seq,
            at=now,
            actor=actor,
            action=action,
            subject=subject,
            details=clean,
            prev_hash=prev,
            hash=digest,
        )
    )
    session.flush()
    return AuditEntry(seq, now, actor, action, subject, clean, prev, digest)


def list_entries(db: Database, *, limit: int | None = None, after: int = 0) -> list[AuditEntry]:
    """Entries oldest first, from the one after sequence number `after` (for paging)."""
    query = select(AuditRow).where(AuditRow.seq > after).order_by(AuditRow.seq)
    if limit is not None:
        query = query.limit(limit)
    with db.sessions() as session:
        return [
            AuditEntry(
                r.seq,
                r.at.astimezone(dt.UTC) if r.at.tzinfo else r.at.replace(tzinfo=dt.UTC),
                r.actor,
                r.action,
                r.subject,
                r.details,
                r.prev_hash,
                r.hash,
            )
            for r in session.scalars(query)
        ]


def verify(db: Database) -> list[str]:
    """Every problem in the stored chain (empty: intact)."""
    return verify_chain(list_entries(db))
