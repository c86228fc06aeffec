"""The audit chain: an intact chain verifies; any change, removal or reordering is found."""

from __future__ import annotations

import dataclasses
import datetime as dt

from evota.domain.audit import GENESIS, AuditEntry, entry_hash, verify_chain

T0 = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)


def chain(n: int) -> list[AuditEntry]:
    out, prev = [], GENESIS
    for seq in range(1, n + 1):
        fields = {
            "seq": seq,
            "at": T0 + dt.timedelta(minutes=seq),
            "actor": "alice",
            "action": "campaign.start",
            "subject": f"campaign:c{seq}",
            "details": {"wave": seq},
            "prev_hash": prev,
        }
        digest = entry_hash(**fields)  # type: ignore[arg-type]
        out.append(AuditEntry(**fields, hash=digest))  # type: ignore[arg-type]
        prev = digest
    return out


def test_an_intact_chain_verifies() -> None:
    assert verify_chain(chain(5)) == []
    assert verify_chain([]) == []


def test_a_changed_entry_is_found() -> None:
    entries = chain(5)
    entries[2] = dataclasses.replace(entries[2], actor="mallory")
    assert verify_chain(entries) == ["entry 3: content changed (hash does not match)"]


def test_a_removed_entry_is_found() -> None:
    entries = chain(5)
    del entries[2]
    problems = verify_chain(entries)
    assert problems and all(p.startswith("entry 4:") for p in problems)


def test_a_removed_last_entry_cannot_be_seen_from_the_chain_alone() -> None:
    """Truncation at the end leaves a valid shorter chain: the count must be checked against
    what was published (docs: keep the head hash elsewhere). The chain itself stays intact."""
    assert verify_chain(chain(5)[:4]) == []


def test_reordered_entries_are_found() -> None:
    entries = chain(5)
    entries[1], entries[2] = entries[2], entries[1]
    assert any("entry 3" in p for p in verify_chain(entries))


def test_a_rewritten_tail_needs_every_later_hash_rewritten() -> None:
    entries = chain(5)
    changed = dataclasses.replace(entries[1], details={"wave": 99})
    entries[1] = dataclasses.replace(
        changed,
        hash=entry_hash(
            seq=changed.seq,
            at=changed.at,
            actor=changed.actor,
            action=changed.action,
            subject=changed.subject,
            details=changed.details,
            prev_hash=changed.prev_hash,
        ),
    )
    assert verify_chain(entries) == [
        "entry 3: does not follow the entry before it (removed, inserted or reordered)"
    ]
