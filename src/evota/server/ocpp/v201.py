"""OCPP 2.0.1 handlers.

A session is a TransactionEvent sequence: Started opens it (or the first event evota sees of
a transaction started offline), Ended closes it with its stoppedReason. Energy comes from
the Energy.Active.Import.Register samples the events carry (Wh, or kWh when the sample says).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call_result
from ocpp.v201.enums import Action, AuthorizationStatusEnumType, RegistrationStatusEnumType

from evota.domain.chargers import Protocol, normalise_connector_status, parse_ocpp_time
from evota.server.ocpp.rpc import CsmsChargePoint
from evota.server.services import csms

__all__ = ["Csms201", "energy_register_wh"]

_ACCEPTED = {"status": AuthorizationStatusEnumType.accepted.value}
_ENERGY = "Energy.Active.Import.Register"


def energy_register_wh(meter_values: Sequence[Any] | None) -> float | None:
    """The last energy register reading in a list of MeterValueType (snake-cased dicts)."""
    reading = None
    for meter_value in meter_values or ():
        for sample in meter_value.get("sampled_value", ()):
            if sample.get("measurand", _ENERGY) != _ENERGY:
                continue
            unit = (sample.get("unit_of_measure") or {}).get("unit", "Wh")
            scale = 10 ** int((sample.get("unit_of_measure") or {}).get("multiplier", 0))
            reading = float(sample["value"]) * scale * (1000.0 if unit == "kWh" else 1.0)
    return reading


class Csms201(CsmsChargePoint, ChargePoint):
    protocol = Protocol.V201

    @on(Action.boot_notification)
    async def on_boot_notification(
        self, charging_station: dict[str, Any], reason: str, **kwargs: Any
    ) -> call_result.BootNotification:
        boot = csms.Boot(
            vendor=charging_station["vendor_name"],
            model=charging_station["model"],
            firmware_version=charging_station.get("firmware_version"),
            serial_number=charging_station.get("serial_number"),
            reason=reason,
        )
        await self.accept_boot(boot)
        return call_result.BootNotification(
            current_time=self.now_iso(),
            interval=self.ctx.heartbeat_interval_s,
            status=RegistrationStatusEnumType.accepted,
        )

    @after(Action.boot_notification)
    def after_boot_notification(self, **kwargs: Any) -> None:
        self.boot_answered()

    @on(Action.heartbeat)
    async def on_heartbeat(self, **kwargs: Any) -> call_result.Heartbeat:
        await asyncio.to_thread(csms.record_seen, self.db, self.charge_point_id, now=self.ctx.clock.now())
        return call_result.Heartbeat(current_time=self.now_iso())

    @on(Action.status_notification)
    async def on_status_notification(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **kwargs: Any
    ) -> call_result.StatusNotification:
        await asyncio.to_thread(
            csms.record_connector,
            self.db,
            self.charge_point_id,
            evse_id=evse_id,
            connector_id=connector_id,
            status=normalise_connector_status(connector_status),
            error_code=None,
            now=self.ctx.clock.now(),
        )
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, id_token: dict[str, Any], **kwargs: Any) -> call_result.Authorize:
        return call_result.Authorize(id_token_info=dict(_ACCEPTED))

    @on(Action.transaction_event)
    async def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        trigger_reason: str,
        seq_no: int,
        transaction_info: dict[str, Any],
        **kwargs: Any,
    ) -> call_result.TransactionEvent:
        transaction_id = str(transaction_info["transaction_id"])
        evse_id = int((kwargs.get("evse") or {}).get("id", 0))
        energy = energy_register_wh(kwargs.get("meter_value"))
        at, now = parse_ocpp_time(timestamp), self.ctx.clock.now()
        id_token = kwargs.get("id_token") or {}
        if event_type == "Ended":
            await asyncio.to_thread(
                csms.stop_session,
                self.db,
                self.charge_point_id,
                transaction_id=transaction_id,
                meter_stop_wh=energy,
                reason=transaction_info.get("stopped_reason", "Local"),
                at=at,
                now=now,
                evse_id=evse_id,
            )
        else:  # Started, or an Updated of a transaction whose start evota never saw
            await asyncio.to_thread(
                csms.start_session,
                self.db,
                self.charge_point_id,
                transaction_id=transaction_id,
                evse_id=evse_id,
                id_tag=id_token.get("id_token"),
                meter_start_wh=energy or 0.0,
                at=at,
                now=now,
            )
        return call_result.TransactionEvent(id_token_info=dict(_ACCEPTED) if id_token else None)

    @on(Action.meter_values)
    async def on_meter_values(self, evse_id: int, meter_value: list[Any], **kwargs: Any) -> Any:
        await asyncio.to_thread(csms.record_seen, self.db, self.charge_point_id, now=self.ctx.clock.now())
        return call_result.MeterValues()

    @on(Action.notify_event)
    async def on_notify_event(
        self, generated_at: str, seq_no: int, event_data: list[Any], **kwargs: Any
    ) -> Any:
        await asyncio.to_thread(csms.record_seen, self.db, self.charge_point_id, now=self.ctx.clock.now())
        return call_result.NotifyEvent()

    @on(Action.security_event_notification)
    async def on_security_event(self, type: str, timestamp: str, **kwargs: Any) -> Any:
        await asyncio.to_thread(
            csms.record_security_event, self.db, self.charge_point_id, event=type, now=self.ctx.clock.now()
        )
        return call_result.SecurityEventNotification()

    @on(Action.firmware_status_notification)
    async def on_firmware_status(
        self, status: str, request_id: int | None = None, **kwargs: Any
    ) -> call_result.FirmwareStatusNotification:
        await self.firmware_status(status, request_id)
        return call_result.FirmwareStatusNotification()
