"""OCPP 1.6J handlers, with the security extension (OCA white paper, edition 3).

1.6 connector N is stored as EVSE N, connector 1 (connector 0, the charge point itself, as
EVSE 0). Transaction ids are integers evota assigns in StartTransaction. BootNotification
has no reason in 1.6; it is stored as "Unknown", and the firmware side infers a reboot after
an install from the version the charger then reports.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus

from evota.domain.chargers import Protocol, normalise_connector_status, parse_ocpp_time
from evota.errors import InputError
from evota.server.ocpp.rpc import CsmsChargePoint
from evota.server.services import csms

__all__ = ["Csms16"]

_ACCEPTED = {"status": AuthorizationStatus.accepted.value}


class Csms16(CsmsChargePoint, ChargePoint):
    protocol = Protocol.V16

    @on(Action.boot_notification)
    async def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any
    ) -> call_result.BootNotification:
        boot = csms.Boot(
            vendor=charge_point_vendor,
            model=charge_point_model,
            firmware_version=kwargs.get("firmware_version"),
            serial_number=kwargs.get("charge_point_serial_number") or kwargs.get("charge_box_serial_number"),
            reason="Unknown",
        )
        await self.accept_boot(boot)
        return call_result.BootNotification(
            current_time=self.now_iso(),
            interval=self.ctx.heartbeat_interval_s,
            status=RegistrationStatus.accepted,
        )

    @after(Action.boot_notification)
    def after_boot_notification(self, **kwargs: Any) -> None:
        self.boot_answered()

    @on(Action.heartbeat)
    async def on_heartbeat(self) -> call_result.Heartbeat:
        await asyncio.to_thread(csms.record_seen, self.db, self.charge_point_id, now=self.ctx.clock.now())
        return call_result.Heartbeat(current_time=self.now_iso())

    @on(Action.status_notification)
    async def on_status_notification(
        self, connector_id: int, error_code: str, status: str, **kwargs: Any
    ) -> call_result.StatusNotification:
        try:
            common = normalise_connector_status(status)
        except InputError:  # the schema admits only known values; defensive
            common = normalise_connector_status("Unavailable")
        await asyncio.to_thread(
            csms.record_connector,
            self.db,
            self.charge_point_id,
            evse_id=connector_id,
            connector_id=1 if connector_id else 0,
            status=common,
            error_code=None if error_code == "NoError" else error_code,
            now=self.ctx.clock.now(),
        )
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str) -> call_result.Authorize:
        # evota is the firmware side of a CSMS, not its authorisation service: every tag is
        # accepted, so that sessions (the post-update health signal) can run.
        return call_result.Authorize(id_tag_info=dict(_ACCEPTED))

    @on(Action.start_transaction)
    async def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kwargs: Any
    ) -> call_result.StartTransaction:
        transaction_id = await asyncio.to_thread(
            csms.start_session,
            self.db,
            self.charge_point_id,
            transaction_id=None,
            evse_id=connector_id,
            id_tag=id_tag,
            meter_start_wh=float(meter_start),
            at=parse_ocpp_time(timestamp),
            now=self.ctx.clock.now(),
        )
        return call_result.StartTransaction(transaction_id=int(transaction_id), id_tag_info=dict(_ACCEPTED))

    @on(Action.stop_transaction)
    async def on_stop_transaction(
        self, meter_stop: int, timestamp: str, transaction_id: int, **kwargs: Any
    ) -> call_result.StopTransaction:
        await asyncio.to_thread(
            csms.stop_session,
            self.db,
            self.charge_point_id,
            transaction_id=str(transaction_id),
            meter_stop_wh=float(meter_stop),
            reason=kwargs.get("reason"),
            at=parse_ocpp_time(timestamp),
            now=self.ctx.clock.now(),
        )
        return call_result.StopTransaction(id_tag_info=dict(_ACCEPTED) if kwargs.get("id_tag") else None)

    @on(Action.meter_values)
    async def on_meter_values(self, connector_id: int, meter_value: list[Any], **kwargs: Any) -> Any:
        await asyncio.to_thread(csms.record_seen, self.db, self.charge_point_id, now=self.ctx.clock.now())
        return call_result.MeterValues()

    @on(Action.security_event_notification)
    async def on_security_event(self, type: str, timestamp: str, **kwargs: Any) -> Any:
        await asyncio.to_thread(
            csms.record_security_event, self.db, self.charge_point_id, event=type, now=self.ctx.clock.now()
        )
        return call_result.SecurityEventNotification()

    @on(Action.firmware_status_notification)
    async def on_firmware_status(self, status: str) -> call_result.FirmwareStatusNotification:
        # 1.6 core: no requestId; it belongs to the charger's newest open request.
        await self.firmware_status(status, None)
        return call_result.FirmwareStatusNotification()

    @on(Action.signed_firmware_status_notification)
    async def on_signed_firmware_status(
        self, status: str, request_id: int | None = None
    ) -> call_result.SignedFirmwareStatusNotification:
        await self.firmware_status(status, request_id)
        return call_result.SignedFirmwareStatusNotification()
