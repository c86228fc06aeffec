"""Firmware updates over real websockets on loopback, against the charger simulator.

Each test runs `evota serve`'s app in a thread (the CSMS, the firmware downloads, the
dispatcher) and simulated stations in the test's event loop: signed updates on 2.0.1 and 1.6,
plain 1.6, every failure status, refusals, timeouts, reboots mid-update.
"""

from __future__ import annotations

import datetime as dt

import pytest

from evota.domain.chargers import Protocol
from evota.server.services.chargers import get_charger
from evota.server.services.firmware_requests import request_update
from evota.sim.charger import Fault

from .firmware_fixtures import FirmwareCsms, fw_csms, fw_csms_cleaned, run, running, shared_fw_csms, until

__all__ = ["fw_csms", "fw_csms_cleaned", "shared_fw_csms"]

V16, V201 = Protocol.V16, Protocol.V201
HAPPY_SIGNED = [
    "Downloading",
    "Downloaded",
    "SignatureVerified",
    "Installing",
    "InstallRebooting",
    "Installed",
    "FirmwareUpdated",
]


def _update(csms: FirmwareCsms, cpid: str, version: str) -> int:
    return request_update(
        csms.db, cpid, csms.images[version].id, retries=2, retry_interval_s=1, now=csms.clock.now()
    )


def _finished(csms: FirmwareCsms, cpid: str) -> bool:
    requests = csms.requests(cpid)
    return bool(requests) and requests[-1][1] in ("installed", "failed")


@pytest.mark.parametrize("protocol", [V201, V16])
def test_a_full_signed_update(fw_csms_cleaned: FirmwareCsms, protocol: Protocol) -> None:
    csms = fw_csms_cleaned
    csms.add_chargers(["CP1"])
    csms.publish("2.0.0")
    station = csms.sim("CP1", protocol)

    async def go() -> None:
        async with running(station):
            await until(
                lambda: get_charger(csms.db, "CP1").firmware_version == "1.0.0", what="the first boot"
            )
            _update(csms, "CP1", "2.0.0")
            await until(lambda: _finished(csms, "CP1"), what="the update to finish")
            await until(lambda: "FirmwareUpdated" in csms.steps("CP1"), what="the security event")

    run(go())
    message = "UpdateFirmware/2.0.1" if protocol is V201 else "SignedUpdateFirmware"
    assert csms.requests("CP1") == [(message, "installed", None)]
    assert csms.steps("CP1") == HAPPY_SIGNED
    view = get_charger(csms.db, "CP1")
    assert view.firmware_version == "2.0.0"
    assert view.boot_reason == ("FirmwareUpdate" if protocol is V201 else "Unknown")
    assert station.history[:2] == ["boot PowerUp 1.0.0", "Downloading #1"]
    assert "boot FirmwareUpdate 2.0.0" in station.history


def test_a_plain_16_update_for_a_station_without_the_security_extension(
    fw_csms_cleaned: FirmwareCsms,
) -> None:
    csms = fw_csms_cleaned
    csms.add_chargers(["CP1"], plain=True)
    csms.publish("2.0.0")
    station = csms.sim("CP1", V16, security_extension=False)

    async def go() -> None:
        async with running(station):
            await until(lambda: get_charger(csms.db, "CP1").connected, what="the connection")
            _update(csms, "CP1", "2.0.0")
            await until(lambda: _finished(csms, "CP1"), what="the update")

    run(go())
    assert csms.requests("CP1") == [("UpdateFirmware/1.6", "installed", None)]
    assert csms.steps("CP1") == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert get_charger(csms.db, "CP1").firmware_version == "2.0.0"


FAILURES = {
    Fault.DOWNLOAD: ("DownloadFailed", ["Downloading", "Downloading", "DownloadFailed"]),
    Fault.SIGNATURE: ("InvalidSignature", ["Downloading", "Downloaded", "InvalidSignature"]),
    Fault.INSTALL: ("InstallationFailed", ["SignatureVerified", "Installing", "InstallationFailed"]),
    Fault.VERIFICATION: ("InstallVerificationFailed", ["Installing", "InstallVerificationFailed"]),
}


@pytest.mark.parametrize("protocol", [V201, V16])
@pytest.mark.parametrize("fault", sorted(FAILURES))
def test_each_failure_status_ends_the_request_failed(
    fw_csms_cleaned: FirmwareCsms, protocol: Protocol, fault: Fault
) -> None:
    csms = fw_csms_cleaned
    csms.add_chargers(["CP1"])
    csms.publish("2.0.0")
    station = csms.sim("CP1", protocol, faults=(fault,))
    status, tail = FAILURES[fault]

    async def go() -> None:
        async with running(station):
            await until(lambda: get_charger(csms.db, "CP1").connected, what="the connection")
            _update(csms, "CP1", "2.0.0")
            await until(lambda: _finished(csms, "CP1"), what="the failure")
            if fault is Fault.SIGNATURE:
                await until(
                    lambda: "InvalidFirmwareSignature" in csms.steps("CP1"), what="the security event"
                )

    run(go())
    [(_, state, reason)] = csms.requests("CP1")
    assert state == "failed" and reason is not None and reason.startswith(status), reason
    steps = [s for s in csms.steps("CP1") if s != "InvalidFirmwareSignature"]
    assert steps[-len(tail) :] == tail
    assert get_charger(csms.db, "CP1").firmware_version == "1.0.0"
    if fault is Fault.DOWNLOAD:  # final only once the two tries it was sent with are spent
        assert reason == "DownloadFailed after 2 of 2 tries"


def test_a_certificate_from_another_manufacturer_is_refused_at_once(
    fw_csms_cleaned: FirmwareCsms, tmp_path: object
) -> None:
    """The image is signed under another root than the one the station trusts: it answers
    InvalidCertificate without downloading anything."""
    from pathlib import Path

    from evota.security.firmware_signing import FirmwarePki
    from evota.security.keys import KeyStore
    from evota.server.store.charger_models import ChargerFirmwareRow

    csms = fw_csms_cleaned
    csms.add_chargers(["CP1"])
    image = csms.publish("2.0.2")
    other = Path(str(tmp_path)) / "other-manufacturer"
    rogue = FirmwarePki(other, KeyStore(other / "keys", [other / "offline"]))
    rogue.init(now=csms.clock.now(), organisation="rogue")
    signed = rogue.sign((csms.folder / "ac22-2.0.2.bin").read_bytes())
    with csms.db.sessions.begin() as s:
        row = s.get(ChargerFirmwareRow, image.id)
        assert row is not None
        row.signature, row.certificate_pem = signed.signature, signed.certificate_pem
    station = csms.sim("CP1", V201)

    async def go() -> None:
        async with running(station):
            await until(lambda: get_charger(csms.db, "CP1").connected, what="the connection")
            _update(csms, "CP1", "2.0.2")
            await until(lambda: _finished(csms, "CP1"), what="the refusal")
            await until(lambda: "InvalidFirmwareSigningCertificate" in csms.steps("CP1"), what="the event")

    run(go())
    assert csms.requests("CP1") == [
        ("UpdateFirmware/2.0.1", "failed", "the charger answered InvalidCertificate")
    ]
    assert "Downloading" not in csms.steps("CP1")


def test_a_tampered_signature_is_refused_after_the_download(fw_csms_cleaned: FirmwareCsms) -> None:
    """The certificate is genuine but the signature is another image's: InvalidSignature."""
    from evota.server.store.charger_models import ChargerFirmwareRow

    csms = fw_csms_cleaned
    csms.add_chargers(["CP1"])
    good, other = csms.publish("2.0.3"), csms.publish("2.0.4")
    with csms.db.sessions.begin() as s:
        row, donor = s.get(ChargerFirmwareRow, good.id), s.get(ChargerFirmwareRow, other.id)
        assert row is not None and donor is not None
        row.signature = donor.signature
    station = csms.sim("CP1", V16)

    async def go() -> None:
        async with running(station):
            await until(lambda: get_charger(csms.db, "CP1").connected, what="the connection")
            _update(csms, "CP1", "2.0.3")
            await until(lambda: _finished(csms, "CP1"), what="the refusal")

    run(go())
    assert csms.requests("CP1")[-1][1:] == ("failed", "InvalidSignature")
    assert get_charger(csms.db, "CP1").firmware_version == "1.0.0"


def test_a_plain_update_to_a_station_with_the_extension_is_a_typed_failure(
    fw_csms_cleaned: FirmwareCsms,
) -> None:
    """Registered as plain 1.6 but it has the security extension: CALLERROR NotSupported
    (white paper L01.FR.20) becomes the request's failure, never a silent None."""
    csms = fw_csms_cleaned
    csms.add_chargers(["CP1"], plain=True)
    csms.publish("2.0.0")
    station = csms.sim("CP1", V16, security_extension=True)

    async def go() -> None:
        async with running(station):
            await until(lambda: get_charger(csms.db, "CP1").connected, what="the connection")
            _update(csms, "CP1", "2.0.0")
            await until(lambda: _finished(csms, "CP1"), what="the refusal")

    run(go())
    assert csms.requests("CP1") == [
        ("UpdateFirmware/1.6", "failed", "the charger answered CALLERROR NotSupported")
    ]


@pytest.mark.parametrize("protocol", [V201, V16])
def test_a_power_cut_mid_install_is_resumed_with_a_new_request(
    fw_csms_cleaned: FirmwareCsms, protocol: Protocol
) -> None:
    csms = fw_csms_cleaned
    csms.add_chargers(["CP1"])
    csms.publish("2.0.0")
    station = csms.sim("CP1", protocol, faults=(Fault.POWER_LOSS,))

    async def go() -> None:
        async with running(station):
            await until(lambda: get_charger(csms.db, "CP1").connected, what="the connection")
            _update(csms, "CP1", "2.0.0")
            await until(lambda: _finished(csms, "CP1"), what="the second attempt")

    run(go())
    first, second = csms.requests("CP1")
    assert first[1] == "interrupted" and first[2] == "rebooted on 1.0.0 while installing"
    assert second[1:] == ("installed", None)
    assert station.history.count("boot PowerUp 1.0.0") == 2  # the cut
    assert get_charger(csms.db, "CP1").firmware_version == "2.0.0"


def test_a_network_drop_mid_download_is_reconciled_and_the_update_goes_on(
    fw_csms_cleaned: FirmwareCsms,
) -> None:
    """The station loses its connection (no reboot) while downloading and reconnects: the
    CSMS asks for its firmware status (ExtendedTriggerMessage) and the same request finishes."""
    csms = fw_csms_cleaned
    csms.add_chargers(["CP1"])
    csms.publish("2.0.0")
    station = csms.sim("CP1", V16, step_s=0.3)

    async def go() -> None:
        async with running(station):
            await until(lambda: get_charger(csms.db, "CP1").connected, what="the connection")
            _update(csms, "CP1", "2.0.0")
            await until(lambda: "Downloading" in csms.steps("CP1"), what="the download")
            station.drop_connection()
            await until(
                lambda: _finished(csms, "CP1"), timeout=60.0, what="the update"
            )  # a reconnect and re-send: slow on a loaded CI machine

    run(go())
    assert [r[1] for r in csms.requests("CP1")] == ["installed"]
    assert station.history.count("boot PowerUp 1.0.0") == 1  # it never rebooted on the old one
    assert "network drop" in station.history


def test_a_silent_charger_times_out_and_gets_the_update_when_it_returns(fw_csms: FirmwareCsms) -> None:
    csms = fw_csms
    csms.add_chargers(["CP1"])
    csms.publish("2.0.0")
    first = csms.sim("CP1", V201, step_s=1.0)  # slow enough to be switched off mid-download

    async def go() -> None:
        async with running(first):
            await until(lambda: get_charger(csms.db, "CP1").connected, what="the connection")
            _update(csms, "CP1", "2.0.0")
            await until(lambda: "Downloading" in csms.steps("CP1"), what="the download")
        csms.clock.advance(dt.timedelta(minutes=11))  # FAST: 10 minutes of silence
        await until(
            lambda: [r[1] for r in csms.requests("CP1")] == ["interrupted", "queued"], what="the timeout"
        )
        async with running(csms.sim("CP1", V201)):
            await until(lambda: _finished(csms, "CP1"), what="the resent update")

    run(go())
    (_, state, reason), (_, second, _) = csms.requests("CP1")
    assert (state, reason, second) == ("interrupted", "silent for 10 min while downloading", "installed")


def test_odd_firmware_messages_get_callerrors_or_acks_and_nothing_breaks(
    fw_csms_cleaned: FirmwareCsms,
) -> None:
    """Schema-invalid firmware statuses get the version's CALLERROR; a status for a request
    evota never sent, a 1.6 message on a 2.0.1 connection, a result nobody asked for: each is
    answered (or ignored) and the session goes on."""
    from .conftest import BOOT, RawCharger, basic

    csms = fw_csms_cleaned
    csms.add_chargers(["CP1"])

    async def go() -> None:
        from websockets.asyncio.client import connect

        headers = {"Authorization": basic("CP1", csms.passwords["CP1"])}
        async with connect(f"{csms.url}/CP1", subprotocols=["ocpp2.0.1"], additional_headers=headers) as ws:  # type: ignore[list-item]
            cp = RawCharger(ws)
            before = await cp.call("FirmwareStatusNotification", {"status": "Installed", "requestId": 1})
            assert before[0] == 4 and before[2] == "SecurityError"  # nothing before the boot
            await cp.call("BootNotification", BOOT["ocpp2.0.1"])
            bad = await cp.call("FirmwareStatusNotification", {"status": "Exploded", "requestId": 1})
            assert bad[0] == 4 and bad[2] == "FormatViolation", bad
            missing = await cp.call("FirmwareStatusNotification", {"requestId": 1})
            assert missing[0] == 4 and missing[2] == "ProtocolError", missing
            other = await cp.call("SignedFirmwareStatusNotification", {"status": "Installed", "requestId": 1})
            assert other[0] == 4 and other[2] == "NotSupported"  # a 1.6 message on 2.0.1
            unknown = await cp.call("FirmwareStatusNotification", {"status": "Installed", "requestId": 777})
            assert unknown == [3, unknown[1], {}]  # acknowledged, stored, ignored
            await cp.send_frame([3, "nobody-asked", {"status": "Accepted"}])
            assert (await cp.call("Heartbeat", {}))[0] == 3

    run(go())
    assert csms.steps("CP1") == ["Installed"]  # the unknown request's status, kept as a step
