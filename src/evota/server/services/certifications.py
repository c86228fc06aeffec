"""The charger certification registry: which charger firmware is certified for what.

An operator (or a release manager, over the API) records that a charger model, over a
firmware version range, is certified for a capability; `depot_reasons` answers, for the
vehicle controller, whether each depot's chargers are (`domain/charger_compat.py`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evota.domain.charger_compat import Certification, ChargerFacts, depot_hold_reason, validate_capability
from evota.errors import InputError, NotFoundError
from evota.server.services.audit import record
from evota.server.services.firmware import validate_label
from evota.server.store.charger_models import ChargerCertificationRow, ChargerRow
from evota.server.store.db import Database

__all__ = [
    "CertificationView",
    "add_certification",
    "depot_reasons",
    "list_certifications",
    "remove_certification",
]


@dataclasses.dataclass(frozen=True)
class CertificationView:
    id: int
    capability: str
    vendor: str
    model: str
    versions: str
    note: str | None
    added_by: str
    added_at: dt.datetime

    def to_json(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["added_at"] = self.added_at.isoformat()
        return out


def _view(r: ChargerCertificationRow) -> CertificationView:
    return CertificationView(
        r.id, r.capability, r.vendor, r.model, r.versions, r.note, r.added_by, r.added_at
    )


def add_certification(
    db: Database, cert: Certification, *, note: str | None = None, actor: str, now: dt.datetime
) -> CertificationView:
    validate_label(cert.vendor, "vendor")
    validate_label(cert.model, "model")
    if note is not None and len(note) > 256:
        raise InputError("a certification note has at most 256 characters")
    with db.sessions.begin() as session:
        row = ChargerCertificationRow(
            capability=cert.capability,
            vendor=cert.vendor,
            model=cert.model,
            versions=cert.versions,
            note=note,
            added_by=actor,
            added_at=now,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            raise InputError(
                f"{cert.vendor} {cert.model} {cert.versions} is certified for {cert.capability} already"
            ) from None
        record(
            session,
            actor=actor,
            action="charger.certification.add",
            subject=f"charger-certification:{cert.capability}",
            details={"vendor": cert.vendor, "model": cert.model, "versions": cert.versions, "note": note},
            now=now,
        )
        return _view(row)


def remove_certification(db: Database, certification_id: int, *, actor: str, now: dt.datetime) -> None:
    with db.sessions.begin() as session:
        row = session.get(ChargerCertificationRow, certification_id)
        if row is None:
            raise NotFoundError(f"no charger certification {certification_id}")
        record(
            session,
            actor=actor,
            action="charger.certification.remove",
            subject=f"charger-certification:{row.capability}",
            details={"vendor": row.vendor, "model": row.model, "versions": row.versions},
            now=now,
        )
        session.execute(delete(ChargerCertificationRow).where(ChargerCertificationRow.id == certification_id))


def list_certifications(db: Database, *, capability: str | None = None) -> list[CertificationView]:
    query = select(ChargerCertificationRow).order_by(
        ChargerCertificationRow.capability, ChargerCertificationRow.id
    )
    if capability:
        query = query.where(ChargerCertificationRow.capability == validate_capability(capability))
    with db.sessions() as session:
        return [_view(r) for r in session.scalars(query)]


def depot_reasons(session: Session, capability: str, depots: Iterable[str]) -> dict[str, str | None]:
    """Depot → why its vehicles must wait for a release needing `capability` (None: they need not)."""
    wanted = sorted(set(depots))
    certs = [
        Certification(r.capability, r.vendor, r.model, r.versions)
        for r in session.scalars(
            select(ChargerCertificationRow).where(ChargerCertificationRow.capability == capability)
        )
    ]
    at: dict[str, list[ChargerFacts]] = {d: [] for d in wanted}
    for cpid, site, vendor, model, version in session.execute(
        select(
            ChargerRow.charge_point_id,
            ChargerRow.site,
            ChargerRow.vendor,
            ChargerRow.model,
            ChargerRow.firmware_version,
        ).where(ChargerRow.site.in_(wanted))
    ):
        at[site].append(ChargerFacts(cpid, vendor, model, version))
    return {d: depot_hold_reason(capability, d, at[d], certs) for d in wanted}
