"""The simulated charger's OCPP side: one `ocpp` ChargePoint per version, the messages it sends,
and the CSMS calls it answers.

Both classes offer the same coroutines to the simulator's core (`sim/charger.py`), which
holds the behaviour: `boot`, `heartbeat`, `connector`, `start_session`, `stop_session`,
`firmware_status`, `security_event`. Calls from the CSMS (UpdateFirmware,
SignedUpdateFirmware, TriggerMessage, ExtendedTriggerMessage) are answered by asking the
core; a 1.6 station with the security extension answers a plain UpdateFirmware with
CALLERROR NotSupported (white paper L01.FR.20), one without it has no SignedUpdateFirmware.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from ocpp.exceptions import NotSupportedError
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

__all__ = ["Core", "Station16", "Station201", "UpdateOrder"]


class UpdateOrder:
    """An update request as the station received it, whatever the version."""

    def __init__(
        self,
        *,
        request_id: int | None,
        location: str,
        retries: int | None,
        retry_interval: int | None,
        install_at: str | None,
        certificate: str | None,
        signature: str | None,
    ) -> None:
        self.request_id = request_id
        self.location = location
        self.retries = retries
        self.retry_interval = retry_interval
        self.install_at = install_at
        self.certificate = certificate
        self.signature = signature


class Core(Protocol):
    """What the OCPP side asks of the simulator."""

    security_extension: bool

    def now(self) -> dt.datetime: ...

    def accept_update(self, order: UpdateOrder) -> str: ...

    def trigger_firmware_status(self) -> bool: ...


def _time(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _order(firmware: dict[str, Any], **kwargs: Any) -> UpdateOrder:
    return UpdateOrder(
        location=firmware["location"],
        install_at=firmware.get("install_date_time"),
        certificate=firmware.get("signing_certificate"),
        signature=firmware.get("signature"),
        **kwargs,
    )


class Station16(ChargePoint16):
    def __init__(self, charge_point_id: str, connection: Any, core: Core) -> None:
        super().__init__(charge_point_id, connection, response_timeout=30)
        self.core = core
        self.status_message = "Signed" if core.security_extension else "Plain"

    # ---- what the station sends ---------------------------------------------------------------
    async def boot(self, *, vendor: str, model: str, firmware_version: str, reason: str) -> Any:
        del reason  # 1.6 has no boot reason
        return await self.call(
            call16.BootNotification(
                charge_point_model=model, charge_point_vendor=vendor, firmware_version=firmware_version
            ),
            suppress=False,
        )

    async def heartbeat(self) -> None:
        await self.call(call16.Heartbeat(), suppress=False)

    async def connector(self, connector_id: int, status: str) -> None:
        v16_status = {"Occupied": "Charging"}.get(status, status)
        await self.call(
            call16.StatusNotification(
                connector_id=connector_id,
                error_code="NoError",
                status=v16_status,
                timestamp=_time(self.core.now()),
            ),
            suppress=False,
        )

    async def start_session(self, connector_id: int, id_tag: str, meter_wh: int, number: int) -> str:
        del number
        answer = await self.call(
            call16.StartTransaction(
                connector_id=connector_id,
                id_tag=id_tag,
                meter_start=meter_wh,
                timestamp=_time(self.core.now()),
            ),
            suppress=False,
        )
        return str(answer.transaction_id)

    async def stop_session(
        self, connector_id: int, transaction: str, meter_wh: int, reason: str, seq: int
    ) -> None:
        del connector_id, seq
        await self.call(
            call16.StopTransaction(
                meter_stop=meter_wh,
                timestamp=_time(self.core.now()),
                transaction_id=int(transaction),
                reason=reason,
            ),
            suppress=False,
        )

    async def firmware_status(self, status: str, request_id: int | None) -> None:
        if self.core.security_extension:
            await self.call(
                call16.SignedFirmwareStatusNotification(status=status, request_id=request_id), suppress=False
            )
        else:
            await self.call(call16.FirmwareStatusNotification(status=status), suppress=False)

    async def security_event(self, kind: str) -> None:
        await self.call(
            # The package's 1.6 dataclass makes techInfo required (the schema does not).
            call16.SecurityEventNotification(
                type=kind, timestamp=_time(self.core.now()), tech_info="evota-sim"
            ),
            suppress=False,
        )

    # ---- what the CSMS asks -------------------------------------------------------------------
    @on(Action16.update_firmware)
    def on_update_firmware(
        self, location: str, retrieve_date: str, retries: int | None = None, retry_interval: int | None = None
    ) -> result16.UpdateFirmware:
        if self.core.security_extension:
            raise NotSupportedError(description="this station takes SignedUpdateFirmware only")
        self.core.accept_update(
            UpdateOrder(
                request_id=None,
                location=location,
                retries=retries,
                retry_interval=retry_interval,
                install_at=None,
                certificate=None,
                signature=None,
            )
        )
        return result16.UpdateFirmware()

    @on(Action16.signed_update_firmware)
    def on_signed_update_firmware(
        self,
        request_id: int,
        firmware: dict[str, Any],
        retries: int | None = None,
        retry_interval: int | None = None,
    ) -> result16.SignedUpdateFirmware:
        if not self.core.security_extension:
            raise NotSupportedError(description="this station has no security extension")
        order = _order(firmware, request_id=request_id, retries=retries, retry_interval=retry_interval)
        return result16.SignedUpdateFirmware(status=self.core.accept_update(order))

    @on(Action16.trigger_message)
    def on_trigger(self, requested_message: str, connector_id: int | None = None) -> result16.TriggerMessage:
        ok = requested_message == "FirmwareStatusNotification" and self.core.trigger_firmware_status()
        return result16.TriggerMessage(status="Accepted" if ok else "NotImplemented")

    @on(Action16.extended_trigger_message)
    def on_extended_trigger(
        self, requested_message: str, connector_id: int | None = None
    ) -> result16.ExtendedTriggerMessage:
        ok = requested_message == "FirmwareStatusNotification" and self.core.trigger_firmware_status()
        return result16.ExtendedTriggerMessage(status="Accepted" if ok else "NotImplemented")


class Station201(ChargePoint201):
    def __init__(self, charge_point_id: str, connection: Any, core: Core) -> None:
        super().__init__(charge_point_id, connection, response_timeout=30)
        self.core = core
        self.status_message = "201"

    async def boot(self, *, vendor: str, model: str, firmware_version: str, reason: str) -> Any:
        station = {"vendor_name": vendor, "model": model, "firmware_version": firmware_version}
        return await self.call(
            call201.BootNotification(charging_station=station, reason=reason), suppress=False
        )

    async def heartbeat(self) -> None:
        await self.call(call201.Heartbeat(), suppress=False)

    async def connector(self, connector_id: int, status: str) -> None:
        await self.call(
            call201.StatusNotification(
                timestamp=_time(self.core.now()),
                connector_status=status,
                evse_id=connector_id,
                connector_id=1,
            ),
            suppress=False,
        )

    def _event(self, kind: str, connector_id: int, tx: str, meter_wh: int, seq: int, **info: Any) -> Any:
        return call201.TransactionEvent(
            event_type=kind,
            timestamp=_time(self.core.now()),
            trigger_reason="CablePluggedIn" if kind == "Started" else "EVCommunicationLost",
            seq_no=seq,
            transaction_info={"transaction_id": tx, **info},
            evse={"id": connector_id, "connector_id": 1},
            meter_value=[{"timestamp": _time(self.core.now()), "sampled_value": [{"value": meter_wh}]}],
        )

    async def start_session(self, connector_id: int, id_tag: str, meter_wh: int, number: int) -> str:
        tx = f"{self.id}-{number}"
        await self.call(self._event("Started", connector_id, tx, meter_wh, 0), suppress=False)
        return tx

    async def stop_session(
        self, connector_id: int, transaction: str, meter_wh: int, reason: str, seq: int
    ) -> None:
        event = self._event("Ended", connector_id, transaction, meter_wh, seq, stopped_reason=reason)
        await self.call(event, suppress=False)

    async def firmware_status(self, status: str, request_id: int | None) -> None:
        await self.call(
            call201.FirmwareStatusNotification(status=status, request_id=request_id), suppress=False
        )

    async def security_event(self, kind: str) -> None:
        await self.call(
            call201.SecurityEventNotification(type=kind, timestamp=_time(self.core.now())), suppress=False
        )

    @on(Action201.update_firmware)
    def on_update_firmware(
        self,
        request_id: int,
        firmware: dict[str, Any],
        retries: int | None = None,
        retry_interval: int | None = None,
        **kwargs: Any,
    ) -> result201.UpdateFirmware:
        order = _order(firmware, request_id=request_id, retries=retries, retry_interval=retry_interval)
        return result201.UpdateFirmware(status=self.core.accept_update(order))

    @on(Action201.trigger_message)
    def on_trigger(self, requested_message: str, **kwargs: Any) -> result201.TriggerMessage:
        ok = requested_message == "FirmwareStatusNotification" and self.core.trigger_firmware_status()
        return result201.TriggerMessage(status="Accepted" if ok else "NotImplemented")
