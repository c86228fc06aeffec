"""What the 1.6 and 2.0.1 sessions share: message routing with proper CALLERRORs, and typed calls.

`CsmsChargePoint` sits above the `ocpp` package's `ChargePoint` (which does the framing, the
JSON-schema checks and the `@on` routing) and changes three things:

- A frame that is not OCPP-J at all (not JSON, not an array, an unknown message type) gets a
  CALLERROR with the message id if one can be read, else "-1", instead of being dropped.
- A CALL before the charger's first accepted BootNotification gets CALLERROR SecurityError
  (1.6 §4.2, 2.0.1 B02.FR.09); so does nothing else: a charger that reconnects without
  rebooting need not boot again.
- Error codes follow the version on the wire: 1.6 spells FormationViolation and
  OccurenceConstraintViolation, 2.0.1 FormatViolation and OccurrenceConstraintViolation.

Every CALLERROR sent is logged with the charger, the action and why. `request` wraps
`ChargePoint.call` so that a CALLERROR, a timeout or a closed socket raises a typed
`ChargerError` (the package's default turns a CALLERROR into a silent None).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from typing import Any, ClassVar

from ocpp.charge_point import ChargePoint
from ocpp.exceptions import OCPPError, SecurityError
from ocpp.exceptions import ValidationError as OcppValidationError
from ocpp.messages import CallError, MessageType, unpack

from evota.clock import Clock
from evota.domain.chargers import Protocol
from evota.domain.firmware import FirmwareStatus, FirmwareTimeouts
from evota.server.ocpp.connection import ConnectionClosedError, StarletteConnection
from evota.server.ocpp.errors import ChargerCallError, ChargerOfflineError, ChargerTimeoutError
from evota.server.ocpp.hub import Waker
from evota.server.services import csms, firmware_requests
from evota.server.services.firmware_requests import TimeoutsOf
from evota.server.store.db import Database

__all__ = ["CsmsChargePoint", "CsmsContext", "wire_code"]

log = logging.getLogger("evota.ocpp")

_V16_SPELLING = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
}
_V201_SPELLING = {v: k for k, v in _V16_SPELLING.items()}


def wire_code(code: str, protocol: Protocol) -> str:
    """The CALLERROR code as `protocol` spells it."""
    table = _V16_SPELLING if protocol is Protocol.V16 else _V201_SPELLING
    return table.get(code, code)


def _default_timeouts(_: int | None) -> FirmwareTimeouts:
    return FirmwareTimeouts()


@dataclasses.dataclass(frozen=True)
class CsmsContext:
    """What every session needs: the database, the clock, and the CSMS's settings.

    `public_url` is the HTTP(S) base chargers download firmware from; empty, each session
    uses the address the charger itself reached (its websocket URL as http/https).
    """

    db: Database
    clock: Clock
    heartbeat_interval_s: int = 300
    call_timeout_s: float = 30.0
    timeouts: TimeoutsOf = _default_timeouts
    public_url: str = ""
    waker: Waker = dataclasses.field(default_factory=Waker)
    reconcile_after_s: float = 2.0  # a reconnect without a boot: ask for the firmware status then


def _message_id(raw: str | bytes) -> str:
    try:
        frame = json.loads(raw)
    except (ValueError, TypeError):
        return "-1"
    if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str):
        return frame[1][:36]
    return "-1"


class CsmsChargePoint(ChargePoint):
    protocol: ClassVar[Protocol]

    def __init__(self, charge_point_id: str, connection: StarletteConnection, ctx: CsmsContext) -> None:
        super().__init__(charge_point_id, connection, response_timeout=ctx.call_timeout_s, logger=log)
        self.charge_point_id = charge_point_id
        self.ctx = ctx
        self.connection = connection
        self._booted = False  # cached once true: a boot is never undone
        self.base_url = ctx.public_url  # set by the endpoint from the charger's own URL if empty
        self.boots = 0  # BootNotifications on this connection
        self.connected_at = time.monotonic()

    @property
    def db(self) -> Database:
        return self.ctx.db

    def now_iso(self) -> str:
        """The CSMS's time for `currentTime` fields: UTC, with a Z."""
        return self.ctx.clock.now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    async def booted(self) -> bool:
        if not self._booted:
            self._booted = await asyncio.to_thread(csms.is_booted, self.db, self.charge_point_id)
        return self._booted

    async def ready_for_calls(self) -> bool:
        """May the CSMS send calls now? After a boot on this connection; or, for a charger that
        booted before and reconnected without booting, once it had time to send a boot if it
        was going to (a call before an accepted boot breaks B02.FR.09 / 1.6 §4.2)."""
        if self.boots:
            return True
        waited = time.monotonic() - self.connected_at >= self.ctx.reconcile_after_s
        return waited and await self.booted()

    async def accept_boot(self, boot: csms.Boot) -> None:
        """Record a BootNotification and judge it for the charger's firmware request, before
        the answer goes out: a request queued from here on is never mistaken for one the
        reboot interrupted."""
        now = self.ctx.clock.now()
        await asyncio.to_thread(csms.record_boot, self.db, self.charge_point_id, boot, now=now)
        await asyncio.to_thread(
            firmware_requests.record_boot,
            self.db,
            self.charge_point_id,
            firmware_version=boot.firmware_version,
            timeouts=self.ctx.timeouts,
            now=now,
        )
        self._booted = True

    def boot_answered(self) -> None:
        """The boot's answer is out: calls to the charger may follow (`ready_for_calls`)."""
        self.boots += 1
        self.ctx.waker.wake()

    async def firmware_status(self, status: str, request_id: int | None) -> None:
        """A (Signed)FirmwareStatusNotification: stored as a step, and the request moved."""
        await asyncio.to_thread(
            firmware_requests.record_status,
            self.db,
            self.charge_point_id,
            status=FirmwareStatus(status),
            request_id=request_id,
            timeouts=self.ctx.timeouts,
            now=self.ctx.clock.now(),
        )
        self.ctx.waker.wake()

    async def route_message(self, raw_msg: str | bytes) -> None:
        try:
            msg = unpack(raw_msg)
        except OCPPError as e:
            await self._call_error(_message_id(raw_msg), None, e)
            return
        if msg.message_type_id == MessageType.Call:
            if msg.action != "BootNotification" and not await self.booted():
                error = SecurityError(description="no BootNotification accepted yet: send it first")
                await self._call_error(msg.unique_id, msg.action, error)
                return
            try:
                await self._handle_call(msg)
            except OCPPError as e:
                await self._call_error(msg.unique_id, msg.action, e)
        elif msg.message_type_id in (MessageType.CallResult, MessageType.CallError):
            self._response_queue.put_nowait(msg)

    async def _call_error(self, unique_id: str, action: str | None, error: OCPPError) -> None:
        code = wire_code(str(error.code), self.protocol)
        details = {k: v for k, v in (error.details or {}).items() if k != "ocpp_message"}
        log.warning(
            "%s: CALLERROR %s for %s: %s %s",
            self.charge_point_id,
            code,
            action or "an unreadable frame",
            error.description,
            details or "",
        )
        frame = CallError(unique_id, code, str(error.description)[:255], _jsonable(details))
        await self._send(frame.to_json())

    async def request(self, payload: Any) -> Any:
        """Send a CALL and return its typed result.

        Raises:
            ChargerOfflineError: the socket closed before the answer.
            ChargerTimeoutError: no answer within the call timeout.
            ChargerCallError: a CALLERROR, or an answer that breaks the schema.
        """
        action = type(payload).__name__
        try:
            return await self.call(payload, suppress=False)
        except ConnectionClosedError as e:
            raise ChargerOfflineError(f"{self.charge_point_id} disconnected during {action}") from e
        except TimeoutError as e:
            raise ChargerTimeoutError(
                f"{self.charge_point_id} did not answer {action} in {self.ctx.call_timeout_s:g} s"
            ) from e
        except OCPPError as e:
            raise ChargerCallError(
                wire_code(str(e.code), self.protocol),
                f"{self.charge_point_id} answered {action} with CALLERROR {e.code}: {e.description}",
            ) from e
        except OcppValidationError as e:
            raise ChargerCallError("FormatViolation", f"{action}: {e}") from e
        except Exception as e:  # UnknownCallErrorCodeError and other reply-parsing surprises
            raise ChargerCallError(
                "GenericError", f"{self.charge_point_id}: bad answer to {action}: {e}"
            ) from e

    async def close(self) -> None:
        await self.connection.close(1000, "replaced by a newer connection")


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(details)
    except (TypeError, ValueError):
        return {k: str(v) for k, v in details.items()}
    return details
