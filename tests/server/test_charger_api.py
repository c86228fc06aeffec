"""The charger routes of the operator API with real tokens: a campaign created by an operator,
approved by an approver (never its creator), started, rolled back; certifications."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from evota.clock import SimClock
from evota.deployment import Deployment
from evota.security.firmware_signing import FirmwarePki
from evota.server.app import create_app
from evota.server.services import chargers, csms, users
from evota.server.services.firmware import add_firmware
from evota.server.store.db import Database


@pytest.fixture
def api(
    dep: Deployment, db: Database, clock: SimClock, tmp_path: Path
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    now = clock.now()
    pki = FirmwarePki(dep.home.path, dep.keys)
    pki.init(now=now)
    for version in ("1.0.0", "2.0.0"):
        image = tmp_path / f"ac22-{version}.bin"
        image.write_bytes(version.encode() * 50)
        add_firmware(
            db,
            pki,
            dep.home.path,
            path=image,
            vendor="Acme",
            model="AC22",
            version=version,
            actor="t",
            now=now,
        )
    for cpid in ("CP1", "CP2"):
        chargers.add_charger(db, charge_point_id=cpid, site="north", time_zone="UTC", actor="t", now=now)
        boot = csms.Boot(
            vendor="Acme", model="AC22", firmware_version="1.0.0", serial_number=None, reason="PowerUp"
        )
        csms.record_boot(db, cpid, boot, now=now)
    tokens = {
        name: users.add_user(db, name, role, actor="t", now=now)
        for name, role in (
            ("alice", "operator"),
            ("bob", "approver"),
            ("rita", "release-manager"),
            ("vic", "viewer"),
        )
    }
    app = create_app(dep, db, refresh_interval_s=None, tick_interval_s=None, charger_interval_s=None)
    with TestClient(app) as client:
        yield client, {n: f"Bearer {t}" for n, t in tokens.items()}


def test_a_charger_campaign_over_the_api(api: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = api

    def call(method: str, path: str, who: str, **kw: object) -> dict[str, object]:
        r = client.request(method, f"/api/v1{path}", headers={"Authorization": auth[who]}, **kw)  # type: ignore[arg-type]
        return (
            {"status": r.status_code, **r.json()}
            if isinstance(r.json(), dict)
            else {"status": r.status_code, "list": r.json()}
        )

    assert [c["charge_point_id"] for c in call("GET", "/chargers", "vic")["list"]] == ["CP1", "CP2"]  # type: ignore[index]
    assert [f["version"] for f in call("GET", "/charger-firmware", "vic")["list"]] == ["1.0.0", "2.0.0"]  # type: ignore[index]
    body = {
        "name": "ac22-2",
        "model": "AC22",
        "version": "2.0.0",
        "waves": [50, 100],
        "policy": {"dwell_s": 0},
    }
    assert call("POST", "/charger-campaigns", "vic", json=body)["status"] == 403
    created = call("POST", "/charger-campaigns", "alice", json=body)
    assert (created["status"], created["created_by"], created["wave_sizes"]) == (201, "alice", [1, 1])
    assert (
        call("POST", "/charger-campaigns/ac22-2/approve", "alice")["status"] == 403
    )  # no approve permission
    approved = call("POST", "/charger-campaigns/ac22-2/approve", "bob")
    assert (approved["status"], approved["approved_by"]) == (200, "bob")
    assert call("POST", "/charger-campaigns/ac22-2/start", "alice")["state"] == "running"
    shown = call("GET", "/charger-campaigns/ac22-2", "vic")
    assert len(shown["chargers"]) == 2 and shown["validation"]["verdict"] == "hold"  # type: ignore[arg-type,index]
    assert call("POST", "/charger-campaigns/ac22-2/roll_back", "alice")["state"] == "rolled_back"
    again = call("POST", "/charger-campaigns/ac22-2/start", "alice")
    assert again["status"] == 422 and again["error"]["code"] == "invalid_transition"  # type: ignore[index]
    bad = call("POST", "/charger-campaigns", "alice", json={**body, "name": "x2", "version": "9.9.9"})
    assert bad["status"] == 404
    history = call("GET", "/chargers/CP1/firmware", "vic")
    assert history["requests"] == [] and history["status"] == 200
    cert = {
        "capability": "iso15118-20-bidirectional",
        "vendor": "Acme",
        "model": "AC22",
        "versions": ">=2.0,<3",
    }
    assert call("POST", "/charger-certifications", "alice", json=cert)["status"] == 403
    assert call("POST", "/charger-certifications", "rita", json=cert)["status"] == 201
    assert call("POST", "/charger-certifications", "rita", json=cert)["status"] == 422  # once
    assert [c["versions"] for c in call("GET", "/charger-certifications", "vic")["list"]] == [">=2.0,<3"]  # type: ignore[index]
