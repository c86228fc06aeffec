"""A vehicle release that needs a charger capability is held where the depot's chargers are not
certified for it, and offered once they are (the vehicle controller, on both databases)."""

from __future__ import annotations

from evota.clock import SimClock
from evota.deployment import Deployment
from evota.domain.charger_compat import ISO15118_20_BIDIRECTIONAL as BIDI
from evota.domain.charger_compat import Certification
from evota.server.services import controller, csms
from evota.server.services.certifications import add_certification, list_certifications
from evota.server.services.chargers import add_charger
from evota.server.store.db import Database

from ..conftest import Published
from .test_controller import rows, run_campaign, setup_fleet


def test_v2x_is_held_until_the_depot_chargers_are_certified(
    db: Database, dep: Deployment, published: Published, clock: SimClock
) -> None:
    setup_fleet(db, dep, clock)  # every vehicle's depot is berlin
    for cpid, version in (("CP1", "2.1.0"), ("CP2", "2.0.0")):
        add_charger(
            db, charge_point_id=cpid, site="berlin", time_zone="Europe/Berlin", actor="alice", now=clock.now()
        )
        boot = csms.Boot(
            vendor="Acme", model="AC22", firmware_version=version, serial_number=None, reason="PowerUp"
        )
        csms.record_boot(db, cpid, boot, now=clock.now())
    add_certification(
        db,
        Certification(BIDI, "Acme", "AC22", ">=2.1,<3"),
        note="lab report 17",
        actor="carol",
        now=clock.now(),
    )
    # Two waves, so that the campaign keeps running (a last wave of only held vehicles completes).
    run_campaign(db, clock, published.release.meta.name, (50, 100), charger_capability=BIDI)
    controller.tick(db, dep.director, clock.now())
    held = {vin: row for vin, row in rows(db).items() if row[0] != "pending"}
    assert len(held) == 2 and {status for status, _, _ in held.values()} == {"held"}
    assert next(iter(held.values()))[2] == [
        "incompatible (charger: at depot berlin, CP2 (Acme AC22 2.0.0) is not certified"
        " for iso15118-20-bidirectional)"
    ]
    boot = csms.Boot(
        vendor="Acme", model="AC22", firmware_version="2.1.0", serial_number=None, reason="FirmwareUpdate"
    )
    csms.record_boot(db, "CP2", boot, now=clock.now())  # CP2 took the certified firmware
    controller.tick(db, dep.director, clock.now())
    assert {rows(db)[vin][0] for vin in held} == {"offered"}
    assert [c.note for c in list_certifications(db, capability=BIDI)] == ["lab report 17"]
