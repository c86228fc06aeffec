"""The CSMS endpoint over real websockets on loopback: handshake, registry, sessions, CallErrors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed, InvalidStatus

from evota.server.services.chargers import get_charger
from evota.server.store.charger_models import ChargerSessionRow

from .conftest import BOOT, BOTH_DATABASES, Csms, RawCharger, basic, connecting, wait_until

V16, V201 = "ocpp1.6", "ocpp2.0.1"
STAMP = "2026-11-22T08:00:00Z"


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def sessions(csms: Csms) -> list[tuple[str, float | None, str | None, bool | None]]:
    with csms.db.sessions() as s:
        return [
            (r.transaction_id, r.meter_stop_wh, r.stop_reason, r.succeeded)
            for r in s.scalars(select(ChargerSessionRow).order_by(ChargerSessionRow.id))
        ]


@BOTH_DATABASES
def test_a_16_charger_boots_reports_and_charges(csms: Csms) -> None:
    async def go() -> None:
        async with connecting(csms, "CP1", V16) as ws:
            assert ws.subprotocol == V16
            cp = RawCharger(ws)
            boot = await cp.call("BootNotification", BOOT[V16])
            assert boot[2]["status"] == "Accepted" and boot[2]["interval"] == 300
            assert boot[2]["currentTime"].startswith("2026-11-22T08:00:00")
            assert (await cp.call("Heartbeat", {}))[0] == 3
            ok = {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": STAMP}
            assert (await cp.call("StatusNotification", ok))[2] == {}
            started = await cp.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": STAMP},
            )
            tx = started[2]["transactionId"]
            assert isinstance(tx, int) and started[2]["idTagInfo"]["status"] == "Accepted"
            stop = {"meterStop": 8500, "timestamp": STAMP, "transactionId": tx, "reason": "EVDisconnected"}
            assert (await cp.call("StopTransaction", stop))[0] == 3
            faulted = {"connectorId": 2, "errorCode": "GroundFailure", "status": "Faulted"}
            await cp.call("StatusNotification", faulted)

    run(go())
    view = get_charger(csms.db, "CP1")
    assert (view.vendor, view.model, view.firmware_version, view.protocol) == ("Acme", "AC22", "1.0.0", "1.6")
    assert view.last_good_firmware == "1.0.0" and view.boot_reason == "Unknown"
    assert view.connectors == (
        {"evse": 1, "connector": 1, "status": "Occupied", "error_code": None},
        {"evse": 2, "connector": 1, "status": "Faulted", "error_code": "GroundFailure"},
    )
    wait_until(lambda: not get_charger(csms.db, "CP1").connected, what="the session to close")
    assert sessions(csms) == [(sessions(csms)[0][0], 8500.0, "EVDisconnected", True)]


def _event(kind: str, seq: int, tx: str, wh: float, **extra: Any) -> dict[str, Any]:
    return {
        "eventType": kind,
        "timestamp": STAMP,
        "triggerReason": "CablePluggedIn" if kind == "Started" else "EVCommunicationLost",
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx, **extra},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": STAMP, "sampledValue": [{"value": wh}]}],
    }


@BOTH_DATABASES
def test_a_201_charger_boots_reports_and_charges(csms: Csms) -> None:
    async def go() -> None:
        async with connecting(csms, "CP1", V201) as ws:
            cp = RawCharger(ws)
            assert (await cp.call("BootNotification", BOOT[V201]))[2]["status"] == "Accepted"
            status = {"timestamp": STAMP, "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
            assert (await cp.call("StatusNotification", status))[2] == {}
            await cp.call("TransactionEvent", _event("Started", 0, "T-1", 200))
            await cp.call("TransactionEvent", _event("Updated", 1, "T-1", 900))
            await cp.call("TransactionEvent", _event("Ended", 2, "T-1", 7200, stoppedReason="EVDisconnected"))
            # A fault ends the next session: it counts as failed.
            await cp.call("TransactionEvent", _event("Started", 0, "T-2", 7200))
            await cp.call(
                "TransactionEvent", _event("Ended", 1, "T-2", 7300, stoppedReason="OvercurrentFault")
            )
            # An Ended whose start evota never saw is still recorded.
            await cp.call("TransactionEvent", _event("Ended", 5, "T-0", 100, stoppedReason="Local"))

    run(go())
    view = get_charger(csms.db, "CP1")
    assert (view.protocol, view.boot_reason, view.firmware_version) == ("2.0.1", "PowerUp", "1.0.0")
    assert view.connectors[0]["status"] == "Available"
    assert sessions(csms) == [
        ("T-1", 7200.0, "EVDisconnected", True),
        ("T-2", 7300.0, "OvercurrentFault", False),
        ("T-0", 100.0, "Local", False),  # no energy seen
    ]


@pytest.mark.parametrize(
    ("user", "password", "why"),
    [
        ("CP1", "not-the-password", "wrong password"),
        ("CP2", None, "another charger's name and password"),
        ("CP9", "whatever", "unknown charger"),
    ],
)
def test_a_charger_without_its_own_credentials_gets_401(
    csms: Csms, user: str, password: str | None, why: str
) -> None:
    from websockets.asyncio.client import connect

    async def go() -> None:
        secret = password or csms.passwords[user]
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                csms.ws_url("CP1" if user != "CP9" else "CP9"),
                subprotocols=[V201],  # type: ignore[list-item]
                additional_headers={"Authorization": basic(user, secret)},
            ):
                pass
        assert refused.value.response.status_code == 401, why

    run(go())


def test_no_authorization_header_gets_401(csms: Csms) -> None:
    from websockets.asyncio.client import connect

    async def go() -> None:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(csms.ws_url("CP1"), subprotocols=[V16]):  # type: ignore[list-item]
                pass
        assert refused.value.response.status_code == 401

    run(go())


def test_subprotocol_negotiation_prefers_201_and_closes_on_none_in_common(csms: Csms) -> None:
    from websockets.asyncio.client import connect

    auth = {"Authorization": basic("CP1", csms.passwords["CP1"])}

    async def go() -> None:
        async with connect(csms.ws_url("CP1"), subprotocols=[V16, V201], additional_headers=auth) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == V201
        async with connect(csms.ws_url("CP1"), subprotocols=["ocpp2.0"], additional_headers=auth) as ws:  # type: ignore[list-item]
            assert ws.subprotocol is None
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002

    run(go())


# Each odd frame, and the CALLERROR code each version must answer it with.
CALL_ERRORS: dict[str, tuple[Any, str, str]] = {
    "not JSON": ("{oops", "FormationViolation", "FormatViolation"),
    "not an array": ('{"a": 1}', "ProtocolError", "ProtocolError"),
    "unknown message type": (
        [7, "x1", "Heartbeat", {}],
        "PropertyConstraintViolation",
        "PropertyConstraintViolation",
    ),
    "missing a required field": (
        [2, "x1", "StatusNotification", {"connectorId": 1}],
        "ProtocolError",
        "ProtocolError",
    ),
    "a field of the wrong type": (
        [2, "x1", "Heartbeat", {"surprise": True}],
        "FormationViolation",
        "FormatViolation",
    ),
    "an action no version has": ([2, "x1", "MakeCoffee", {}], "NotSupported", "NotSupported"),
    "an action evota does not handle": (
        [2, "x1", "DataTransfer", {"vendorId": "x"}],
        "NotImplemented",
        "NotImplemented",
    ),
}


@pytest.mark.parametrize("protocol", [V16, V201])
@pytest.mark.parametrize("case", sorted(CALL_ERRORS))
def test_odd_frames_get_the_versions_callerror_and_the_session_goes_on(
    csms: Csms, protocol: str, case: str
) -> None:
    frame, code16, code201 = CALL_ERRORS[case]

    async def go() -> None:
        async with connecting(csms, "CP1", protocol) as ws:
            cp = RawCharger(ws)
            await cp.call("BootNotification", BOOT[protocol])
            await cp.send_frame(frame)
            answer = await cp.reply()
            assert answer[0] == 4 and answer[2] == (code16 if protocol == V16 else code201), answer
            expected_id = frame[1] if isinstance(frame, list) else "-1"
            assert answer[1] == expected_id
            assert (await cp.call("Heartbeat", {}))[0] == 3  # still served

    run(go())


@pytest.mark.parametrize("protocol", [V16, V201])
def test_a_call_before_the_first_boot_gets_security_error(csms: Csms, protocol: str) -> None:
    async def go() -> None:
        async with connecting(csms, "CP1", protocol) as ws:
            cp = RawCharger(ws)
            refused = await cp.call("Heartbeat", {})
            assert refused[0] == 4 and refused[2] == "SecurityError"
            assert (await cp.call("BootNotification", BOOT[protocol]))[2]["status"] == "Accepted"
            assert (await cp.call("Heartbeat", {}))[0] == 3
        # Reconnecting without a reboot is allowed: the boot is remembered.
        async with connecting(csms, "CP1", protocol) as ws:
            assert (await RawCharger(ws).call("Heartbeat", {}))[0] == 3

    run(go())


def test_a_new_connection_replaces_the_old_one(csms: Csms) -> None:
    async def go() -> None:
        async with connecting(csms, "CP1", V201) as first:
            await RawCharger(first).call("BootNotification", BOOT[V201])
            async with connecting(csms, "CP1", V201) as second:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(first.recv(), 5)
                assert (await RawCharger(second).call("Heartbeat", {}))[0] == 3
                assert get_charger(csms.db, "CP1").connected

    run(go())
    wait_until(lambda: not get_charger(csms.db, "CP1").connected, what="the session to close")


def test_a_handler_failure_answers_internal_error_and_the_csms_goes_on(csms: Csms) -> None:
    """Charger CP2 is removed from the registry under its open session: its messages fail in
    the handler, get InternalError, and CP1's session is untouched."""
    from sqlalchemy import delete

    from evota.server.store.charger_models import ChargerRow

    async def go() -> None:
        async with connecting(csms, "CP1", V16) as ws1, connecting(csms, "CP2", V16) as ws2:
            cp1, cp2 = RawCharger(ws1), RawCharger(ws2)
            await cp1.call("BootNotification", BOOT[V16])
            await cp2.call("BootNotification", BOOT[V16])
            with csms.db.sessions.begin() as s:
                s.execute(delete(ChargerRow).where(ChargerRow.charge_point_id == "CP2"))
            status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
            answer = await cp2.call("StatusNotification", status)
            assert answer[0] == 4 and answer[2] == "InternalError"
            assert (await cp1.call("StatusNotification", status))[0] == 3

    run(go())
    assert get_charger(csms.db, "CP1").connectors[0]["status"] == "Available"
