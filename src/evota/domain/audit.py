"""The audit log's chain: each entry's hash covers its content and the previous entry's hash.

Pure: `entry_hash` computes an entry's hash, `verify_chain` walks entries in sequence order
and reports every entry that was changed (its hash no longer matches its content), removed
(a gap in the sequence, or a previous-hash that names no entry before it) or reordered.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["GENESIS", "AuditEntry", "check_anchor", "entry_hash", "verify_chain"]

GENESIS = "0" * 64


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    """Who did what, when, to which subjects (vehicles, a campaign), and why."""

    seq: int
    at: dt.datetime
    actor: str
    action: str
    subject: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def entry_hash(
    *,
    seq: int,
    at: dt.datetime,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    body = {
        "seq": seq,
        "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
        "prev": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def verify_chain(entries: Sequence[AuditEntry]) -> list[str]:
    """Problems found in `entries` (read in sequence order); empty when the chain is intact."""
    problems = []
    prev, expected_seq = GENESIS, 1
    for e in entries:
        if e.seq != expected_seq:
            problems.append(f"entry {e.seq}: expected entry {expected_seq} here (removed or reordered)")
        if e.prev_hash != prev:
            problems.append(
                f"entry {e.seq}: does not follow the entry before it (removed, inserted or reordered)"
            )
        recomputed = entry_hash(
            seq=e.seq,
            at=e.at,
            actor=e.actor,
            action=e.action,
            subject=e.subject,
            details=e.details,
            prev_hash=e.prev_hash,
        )
        if recomputed != e.hash:
            problems.append(f"entry {e.seq}: content changed (hash does not match)")
        prev, expected_seq = e.hash, e.seq + 1
    return problems


def check_anchor(entries: Sequence[AuditEntry], seq: int, digest: str) -> list[str]:
    """Problems with a head recorded earlier outside the database (empty: it is still there).

    A hash chain cannot show that its newest entries were cut off, nor that the whole log was
    rewritten consistently. A head (sequence number and hash) kept elsewhere can: the entry
    must still exist with the same hash, and everything after it must chain from it.
    """
    entry = next((e for e in entries if e.seq == seq), None)
    if entry is None:
        return [f"anchored entry {seq} is gone (the log was truncated or rewritten)"]
    if entry.hash != digest:
        return [
            f"anchored entry {seq} has hash {entry.hash[:16]}…, not {digest[:16]}… (the log was rewritten)"
        ]
    return []
