"""Firmware requests and charger campaigns as services, without websockets: the events the
CSMS would feed them, in the orders stations send them. The ones that take row locks (claims,
superseding, sweeps, campaign ticks) run on SQLite and PostgreSQL; the table's readings on
SQLite only (`SQLITE_ONLY`), since the SQL is the same and each PostgreSQL database costs
a second to make."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from evota.clock import SimClock
from evota.deployment import Deployment
from evota.domain.campaign import CampaignEvent
from evota.domain.charger_campaign import ChargerPolicy
from evota.domain.chargers import Protocol
from evota.domain.firmware import FirmwareStatus, FirmwareTimeouts
from evota.errors import InputError, NotFoundError
from evota.security.errors import FirmwareCertificateError
from evota.security.firmware_signing import FirmwarePki
from evota.server.services import charger_campaigns as cc
from evota.server.services import charger_controller, csms, firmware_queries
from evota.server.services import firmware_outbox as fo
from evota.server.services import firmware_requests as fr
from evota.server.services.chargers import add_charger
from evota.server.services.firmware import FirmwareView, add_firmware, images_folder
from evota.server.store.charger_models import (
    ChargerCampaignMemberRow,
    ChargerRow,
    FirmwareRequestRow,
    FirmwareStepRow,
)
from evota.server.store.db import Database

from .ocpp.firmware_fixtures import cheap_passwords

S = FirmwareStatus
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
LIMITS = FirmwareTimeouts(silence=dt.timedelta(minutes=10), max_attempts=2)


def limits(_: int | None) -> FirmwareTimeouts:
    return LIMITS


@dataclasses.dataclass
class Home:
    dep: Deployment
    db: Database
    clock: SimClock
    pki: FirmwarePki
    root: bytes
    images: dict[str, FirmwareView]


@pytest.fixture(autouse=True)
def _cheap_passwords() -> Iterator[None]:
    with cheap_passwords():
        yield


@pytest.fixture
def home(dep: Deployment, db: Database, clock: SimClock, tmp_path: Path) -> Home:
    pki = FirmwarePki(dep.home.path, dep.keys)
    root = pki.init(now=clock.now(), signing_days=60).public_bytes(serialization.Encoding.PEM)
    images = {}
    for version in ("1.0.0", "2.0.0"):
        path = tmp_path / f"ac22-{version}.bin"
        path.write_bytes(version.encode() * 500)
        images[version] = add_firmware(
            db,
            pki,
            dep.home.path,
            path=path,
            vendor="Acme",
            model="AC22",
            version=version,
            actor="alice",
            now=clock.now(),
        )
    for i, site in enumerate(("north", "north", "south", "south")):
        add_charger(
            db,
            charge_point_id=f"CP{i + 1}",
            site=site,
            time_zone="Europe/Berlin",
            actor="alice",
            now=clock.now(),
        )
        boot = csms.Boot(
            vendor="Acme", model="AC22", firmware_version="1.0.0", serial_number=None, reason="PowerUp"
        )
        csms.record_boot(db, f"CP{i + 1}", boot, now=clock.now())
        csms.record_connection(db, f"CP{i + 1}", connected=True, protocol="2.0.1", now=clock.now())
    return Home(dep, db, clock, pki, root, images)


def states(db: Database, cpid: str = "CP1") -> list[tuple[str, int, str | None]]:
    with db.sessions() as s:
        return [
            (r.state, r.attempt, r.reason)
            for r in s.scalars(
                select(FirmwareRequestRow)
                .join(ChargerRow, ChargerRow.id == FirmwareRequestRow.charger_id)
                .where(ChargerRow.charge_point_id == cpid)
                .order_by(FirmwareRequestRow.id)
            )
        ]


def sent(h: Home, cpid: str = "CP1", version: str = "2.0.0", retries: int = 3) -> int:
    rid = fr.request_update(
        h.db, cpid, h.images[version].id, retries=retries, retry_interval_s=1, now=h.clock.now()
    )
    order = fo.claim(h.db, rid, Protocol.V201, now=h.clock.now())
    assert order is not None and order.request_id == rid and order.path.endswith(".bin")
    fo.record_answer(h.db, rid, status="Accepted", error=None, timeouts=limits, now=h.clock.now())
    return rid


def status(h: Home, value: FirmwareStatus, rid: int | None, cpid: str = "CP1") -> None:
    fr.record_status(h.db, cpid, status=value, request_id=rid, timeouts=limits, now=h.clock.now())


def test_a_newer_request_supersedes_the_open_one_and_a_claim_is_taken_once(home: Home) -> None:
    first = sent(home)
    status(home, S.DOWNLOADING, first)
    second = fr.request_update(home.db, "CP1", home.images["2.0.0"].id, now=home.clock.now())
    assert fo.claim(home.db, second, Protocol.V16, now=home.clock.now()) is not None
    assert fo.claim(home.db, second, Protocol.V16, now=home.clock.now()) is None  # taken already
    assert [s for s, _, _ in states(home.db)] == ["canceled", "sending"]
    status(home, S.INSTALLED, first)  # a late status for the superseded one changes nothing
    assert [s for s, _, _ in states(home.db)] == ["canceled", "sending"]


@SQLITE_ONLY
def test_statuses_for_unknown_or_finished_requests_are_stored_and_ignored(home: Home) -> None:
    rid = sent(home)
    status(home, S.INSTALLATION_FAILED, rid)
    status(home, S.INSTALLED, rid)
    status(home, S.DOWNLOADING, 9999)
    assert states(home.db) == [("failed", 1, "InstallationFailed")]
    with home.db.sessions() as s:
        steps = s.execute(
            select(FirmwareStepRow.request_id, FirmwareStepRow.status).order_by(FirmwareStepRow.id)
        ).all()
    assert [tuple(x) for x in steps][-3:] == [
        (rid, "InstallationFailed"),
        (rid, "Installed"),
        (9999, "Downloading"),
    ]


@SQLITE_ONLY
def test_download_failed_is_final_once_the_tries_are_spent_either_way_a_station_reports_them(
    home: Home,
) -> None:
    every_try = sent(home, retries=2)  # EVerest style: DownloadFailed after every try
    for value in (S.DOWNLOADING, S.DOWNLOAD_FAILED, S.DOWNLOADING):
        status(home, value, every_try)
    assert states(home.db)[-1][0] == "downloading"
    status(home, S.DOWNLOAD_FAILED, every_try)
    assert states(home.db)[-1] == ("failed", 1, "DownloadFailed after 2 of 2 tries")
    last_only = sent(home, "CP2", retries=2)  # the spec: only after the last try
    for value in (S.DOWNLOADING, S.DOWNLOADING, S.DOWNLOAD_FAILED):
        status(home, value, last_only, "CP2")
    assert states(home.db, "CP2")[-1] == ("failed", 1, "DownloadFailed after 2 of 2 tries")


@SQLITE_ONLY
def test_idle_while_active_and_a_reboot_on_the_old_version_are_new_attempts_until_they_run_out(
    home: Home,
) -> None:
    sent(home)
    status(home, S.IDLE, None)  # triggered: no requestId
    assert [(s, a) for s, a, _ in states(home.db)] == [("interrupted", 1), ("queued", 2)]
    second = fo.claim(home.db, states_ids(home.db)[-1], Protocol.V201, now=home.clock.now())
    assert second is not None
    fo.record_answer(
        home.db, second.request_id, status="Accepted", error=None, timeouts=limits, now=home.clock.now()
    )
    status(home, S.INSTALLING, second.request_id)
    fr.record_boot(home.db, "CP1", firmware_version="1.0.0", timeouts=limits, now=home.clock.now())
    assert states(home.db)[-1] == ("failed", 2, "rebooted on 1.0.0 while installing (attempt 2 of 2)")


def states_ids(db: Database) -> list[int]:
    with db.sessions() as s:
        return list(s.scalars(select(FirmwareRequestRow.id).order_by(FirmwareRequestRow.id)))


@SQLITE_ONLY
def test_a_boot_on_the_target_is_success_even_without_installed(home: Home) -> None:
    rid = sent(home)
    status(home, S.INSTALL_REBOOTING, rid)
    fr.record_boot(home.db, "CP1", firmware_version="2.0.0", timeouts=limits, now=home.clock.now())
    assert states(home.db) == [("installed", 1, None)]


def test_silence_times_out_active_requests_never_queued_ones(home: Home) -> None:
    rid = sent(home)
    status(home, S.DOWNLOADING, rid)
    fr.request_update(home.db, "CP2", home.images["2.0.0"].id, now=home.clock.now())
    home.clock.advance(dt.timedelta(minutes=9))
    assert fr.sweep(home.db, timeouts=limits, now=home.clock.now()) == []
    home.clock.advance(dt.timedelta(minutes=2))
    assert fr.sweep(home.db, timeouts=limits, now=home.clock.now()) == [rid]
    assert [(s, a, r) for s, a, r in states(home.db)] == [
        ("interrupted", 1, "silent for 10 min while downloading"),
        ("queued", 2, None),
    ]
    assert states(home.db, "CP2") == [("queued", 1, None)]


@SQLITE_ONLY
def test_refusals_and_callerrors_are_typed_failures(home: Home) -> None:
    for cpid, answer, error, reason in (
        ("CP1", "InvalidCertificate", None, "the charger answered InvalidCertificate"),
        ("CP2", None, "NotSupported", "the charger answered CALLERROR NotSupported"),
    ):
        rid = fr.request_update(home.db, cpid, home.images["2.0.0"].id, now=home.clock.now())
        assert fo.claim(home.db, rid, Protocol.V16, now=home.clock.now()) is not None
        fo.record_answer(home.db, rid, status=answer, error=error, timeouts=limits, now=home.clock.now())
        assert states(home.db, cpid) == [("failed", 1, reason)]
    rid = fr.request_update(home.db, "CP3", home.images["2.0.0"].id, now=home.clock.now())
    assert fo.claim(home.db, rid, Protocol.V16, now=home.clock.now()) is not None
    fo.record_answer(
        home.db, rid, status=None, error=None, timeouts=limits, now=home.clock.now()
    )  # no answer
    assert [s for s, _, _ in states(home.db, "CP3")] == ["interrupted", "queued"]


# ---- campaigns ------------------------------------------------------------------------------------
def create(h: Home, name: str = "c1", version: str = "2.0.0", **kw: object) -> cc.ChargerCampaignSummary:
    policy = kw.pop("policy", ChargerPolicy(dwell=dt.timedelta(0)))
    return cc.create_campaign(
        h.db,
        h.dep.home.path,
        h.root,
        name=name,
        vendor="Acme",
        model="AC22",
        version=version,
        selector=kw.pop("selector", cc.ChargerSelector()),  # type: ignore[arg-type]
        waves=(50, 100),
        policy=policy,  # type: ignore[arg-type]
        created_by="alice",
        now=h.clock.now(),
        **kw,  # type: ignore[arg-type]
    )


def test_a_campaign_is_scoped_stratified_approved_by_someone_else_and_started(home: Home) -> None:
    summary = create(home, selector=cc.ChargerSelector(sites=("north", "south")))
    assert (summary.state, summary.wave_sizes, summary.statuses) == ("draft", (2, 2), {"pending": 4})
    waves = {m.charge_point_id: m.wave for m in cc.campaign_members(home.db, "c1")}
    assert {m.site for m in cc.campaign_members(home.db, "c1") if waves[m.charge_point_id] == 0} == {
        "north",
        "south",
    }
    with pytest.raises(InputError, match="someone else"):
        cc.move_campaign(home.db, "c1", CampaignEvent.APPROVE, actor="Alice", now=home.clock.now())
    cc.move_campaign(home.db, "c1", CampaignEvent.APPROVE, actor="bob", now=home.clock.now())
    started = cc.move_campaign(home.db, "c1", CampaignEvent.START, actor="alice", now=home.clock.now())
    assert started.state == "running" and started.approved_by == "bob"
    report = charger_controller.tick(home.db, home.clock.now())
    assert report.sent == 2  # the first wave
    assert {m.status for m in cc.campaign_members(home.db, "c1") if waves[m.charge_point_id] == 0} == {
        "updating"
    }
    with pytest.raises(InputError, match="already exists"):
        create(home)
    with pytest.raises(InputError, match="finds no"):
        create(home, "c2", selector=cc.ChargerSelector(tags=("nobody",)))


@SQLITE_ONLY
def test_the_image_is_checked_before_a_campaign_is_stored(home: Home) -> None:
    long = ChargerPolicy(max_duration=dt.timedelta(days=90))  # the signing certificate lasts 60 days
    with pytest.raises(FirmwareCertificateError, match="expires"):
        create(home, policy=long)
    stored = next(images_folder(home.dep.home.path).glob(f"{home.images['2.0.0'].sha256}.*"))
    stored.write_bytes(b"tampered")
    with pytest.raises(InputError, match="changed"):
        create(home)
    with pytest.raises(NotFoundError):
        create(home, version="9.9.9")


def test_a_charger_with_no_rollback_image_is_held_and_sent_once_there_is_one(
    home: Home, tmp_path: Path
) -> None:
    with home.db.sessions.begin() as s:
        row = s.scalars(select(ChargerRow).where(ChargerRow.charge_point_id == "CP1")).one()
        row.last_good_firmware = row.firmware_version = "0.9.0"
    create(home, selector=cc.ChargerSelector(charge_point_ids=("CP1",)))
    cc.move_campaign(home.db, "c1", CampaignEvent.APPROVE, actor="bob", now=home.clock.now())
    cc.move_campaign(home.db, "c1", CampaignEvent.START, actor="alice", now=home.clock.now())
    charger_controller.tick(home.db, home.clock.now())
    [m] = cc.campaign_members(home.db, "c1")
    assert (m.status, m.reasons) == (
        "held",
        ("no rollback: no image of its last good firmware 0.9.0 is registered",),
    )
    path = tmp_path / "ac22-0.9.0.bin"
    path.write_bytes(b"old" * 100)
    add_firmware(
        home.db,
        home.pki,
        home.dep.home.path,
        path=path,
        vendor="Acme",
        model="AC22",
        version="0.9.0",
        actor="alice",
        now=home.clock.now(),
    )
    assert charger_controller.tick(home.db, home.clock.now()).sent == 1


@SQLITE_ONLY
def test_a_campaign_policy_sets_its_requests_timeouts(home: Home) -> None:
    policy = ChargerPolicy(timeouts=FirmwareTimeouts(silence=dt.timedelta(minutes=3), max_attempts=5))
    create(home, policy=policy)
    resolve = firmware_queries.timeouts_resolver(home.db, LIMITS)
    with home.db.sessions() as s:
        campaign_id = s.scalars(select(ChargerCampaignMemberRow.campaign_id)).first()
    assert resolve(campaign_id).silence == dt.timedelta(minutes=3) and resolve(None) is LIMITS
