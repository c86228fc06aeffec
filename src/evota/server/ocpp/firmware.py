"""Sending firmware requests to connected chargers, from the database's outbox.

The dispatcher runs on the server's event loop, where the chargers' sessions live. Each
round it asks the database for queued requests of chargers connected to this process,
claims each (so two processes never send the same one), builds the message for the
charger's protocol and profile (`firmware_messages.py`), sends it, and stores the answer:
Accepted, a refusal, a CALLERROR code, or no answer at all. A round runs every `interval`
seconds, or at once when a boot, a status or a connection wakes it.

A charger that reconnects without rebooting while one of its requests is active is asked
for its firmware status ((Extended)TriggerMessage) after `reconcile_after_s`: a station that
lost the update answers Idle, and the request is sent again.

The periodic work that is a decision (timeouts, campaign planning) is not here: it runs in
`charger_loop` under the controller's leadership, in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import urllib.parse
from collections.abc import Callable

from evota.server.ocpp.errors import ChargerCallError, ChargerError
from evota.server.ocpp.firmware_messages import answer_status, build_trigger, build_update
from evota.server.ocpp.hub import ChargerHub
from evota.server.ocpp.rpc import CsmsChargePoint, CsmsContext
from evota.server.services import firmware_outbox, firmware_queries

__all__ = ["FirmwareDispatcher", "charger_loop", "session_base_url"]

log = logging.getLogger("evota.ocpp")


def session_base_url(websocket_url: str) -> str:
    """The HTTP base a charger reached us at: `ws://host:port/ocpp/CP1` → `http://host:port`."""
    parts = urllib.parse.urlsplit(websocket_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


class FirmwareDispatcher:
    def __init__(self, ctx: CsmsContext, hub: ChargerHub) -> None:
        self.ctx, self.hub = ctx, hub
        self._sending: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def dispatch(self) -> None:
        """One round: start sending every queued request of a connected charger."""
        ids = await asyncio.to_thread(firmware_outbox.pending_requests, self.ctx.db, self.hub.connected())
        for request_id in ids:
            if request_id not in self._sending:
                self._sending.add(request_id)
                self._spawn(self._send(request_id))

    async def _send(self, request_id: int) -> None:
        try:
            await self._send_one(request_id)
        except Exception:  # a bug must not stop the dispatcher; the request stays where it was
            log.exception("sending firmware request %s failed", request_id)
        finally:
            self._sending.discard(request_id)

    async def _send_one(self, request_id: int) -> None:
        ctx = self.ctx
        charger = await asyncio.to_thread(_charger_of, ctx, request_id)
        session = self.hub.get(charger) if charger else None
        if not isinstance(session, CsmsChargePoint) or not await session.ready_for_calls():
            return  # not here, or not booted yet: a later round (or its boot) sends it
        order = await asyncio.to_thread(
            firmware_outbox.claim, ctx.db, request_id, session.protocol, now=ctx.clock.now()
        )
        if order is None:
            return
        status: str | None = None
        error: str | None = None
        try:
            payload = build_update(order, session.base_url, ctx.clock.now())
            log.info("%s: %s request %s", order.charge_point_id, order.message.action, request_id)
            status = answer_status(await session.request(payload))
        except ChargerCallError as e:
            error = e.ocpp_code
            log.warning("%s refused firmware request %s: %s", order.charge_point_id, request_id, e)
        except ChargerError as e:  # offline, or no answer in time
            log.warning("%s: firmware request %s got no answer: %s", order.charge_point_id, request_id, e)
        except ValueError as e:  # a location beyond OCPP's limit: the server's URL is too long
            error = "FormatViolation"
            log.error("%s: firmware request %s cannot be built: %s", order.charge_point_id, request_id, e)
        await asyncio.to_thread(
            firmware_outbox.record_answer,
            ctx.db,
            request_id,
            status=status,
            error=error,
            timeouts=ctx.timeouts,
            now=ctx.clock.now(),
        )
        ctx.waker.wake()

    def connected(self, session: CsmsChargePoint) -> None:
        """A charger connected: send what waits for it, and reconcile an update in flight."""
        self.ctx.waker.wake()
        self._spawn(self._reconcile(session))

    async def _reconcile(self, session: CsmsChargePoint) -> None:
        await asyncio.sleep(self.ctx.reconcile_after_s)
        if session.boots or self.hub.get(session.charge_point_id) is not session:
            return  # it booted (the boot is judged) or it is gone
        request_id = await asyncio.to_thread(
            firmware_queries.active_request, self.ctx.db, session.charge_point_id
        )
        if request_id is None:
            return
        signed = await asyncio.to_thread(_signed_profile, self.ctx, session.charge_point_id)
        with contextlib.suppress(ChargerError):
            answer = await session.request(build_trigger(session.protocol, signed=signed))
            log.info("%s: asked for its firmware status: %s", session.charge_point_id, answer_status(answer))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _charger_of(ctx: CsmsContext, request_id: int) -> str | None:
    from sqlalchemy import select

    from evota.server.store.charger_models import ChargerRow, FirmwareRequestRow

    with ctx.db.sessions() as s:
        return s.scalars(
            select(ChargerRow.charge_point_id)
            .join(FirmwareRequestRow, FirmwareRequestRow.charger_id == ChargerRow.id)
            .where(FirmwareRequestRow.id == request_id)
        ).one_or_none()


def _signed_profile(ctx: CsmsContext, charge_point_id: str) -> bool:
    from evota.server.services.chargers import get_charger

    return get_charger(ctx.db, charge_point_id).signed_updates


async def charger_loop(
    dispatcher: FirmwareDispatcher,
    interval: float,
    decide: Callable[[], object] | None,
) -> None:
    """Send what is queued for chargers connected here when woken (a boot, a status, a
    connection) and every `interval`; and every `interval`, first run `decide` in a worker
    thread if given (timeouts and campaign planning, by the leader). A busy fleet wakes the
    loop often; deciding stays at its pace."""
    ctx = dispatcher.ctx
    last = -math.inf
    try:
        while True:
            try:
                if decide is not None and time.monotonic() - last >= interval:
                    last = time.monotonic()
                    await asyncio.to_thread(decide)
                await dispatcher.dispatch()
            except Exception:  # the loop must outlive a bad round; the next one starts from the DB
                log.exception("charger firmware round failed")
            await ctx.waker.wait(interval)
    finally:
        await dispatcher.close()
