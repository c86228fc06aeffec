"""The websocket route `/ocpp/<charge_point_id>`, inside the FastAPI app on `evota serve`'s port.

One port serves the repositories, the APIs and the CSMS: a charger's URL is
`ws://HOST:PORT/ocpp/<id>` (or `wss://` behind TLS, security profile 2). The handshake:

1. Basic auth: the user is the charge point id, the password the one evota generated. A bad
   or missing one gets HTTP 401 and no websocket (the charger retries with backoff).
2. Subprotocol: the newest of `ocpp2.0.1` and `ocpp1.6` the charger offers. None in common:
   the handshake completes without a subprotocol and the socket closes at once (RFC 6455,
   as OCPP 2.0.1 part 4 §3.1.2 asks).
3. A session for that version runs until the socket closes; a newer connection of the same
   charger replaces it. A failing handler answers InternalError; nothing a charger sends
   ends the server.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, WebSocket
from starlette.responses import PlainTextResponse

from evota.domain.chargers import Protocol, negotiate, validate_charge_point_id
from evota.errors import InputError
from evota.security.errors import AuthenticationError
from evota.server.ocpp.auth import basic_credentials
from evota.server.ocpp.connection import ConnectionClosedError, StarletteConnection
from evota.server.ocpp.firmware import FirmwareDispatcher, session_base_url
from evota.server.ocpp.hub import ChargerHub
from evota.server.ocpp.rpc import CsmsChargePoint, CsmsContext
from evota.server.ocpp.v16 import Csms16
from evota.server.ocpp.v201 import Csms201
from evota.server.services import csms
from evota.server.services.chargers import VerifiedPasswords, authenticate_charger

__all__ = ["ocpp_router"]

log = logging.getLogger("evota.ocpp")

_SESSIONS: dict[Protocol, type[CsmsChargePoint]] = {Protocol.V16: Csms16, Protocol.V201: Csms201}


def ocpp_router(ctx: CsmsContext, hub: ChargerHub, dispatcher: FirmwareDispatcher | None = None) -> APIRouter:
    router = APIRouter()
    verified = VerifiedPasswords()

    @router.websocket("/ocpp/{charge_point_id}")
    async def ocpp_endpoint(websocket: WebSocket, charge_point_id: str) -> None:
        try:
            validate_charge_point_id(charge_point_id)
            password = basic_credentials(websocket.headers.get("authorization"), charge_point_id)
            await asyncio.to_thread(
                authenticate_charger, ctx.db, charge_point_id, password, verified=verified
            )
        except (InputError, AuthenticationError) as e:
            log.warning("refused a charger connection to /ocpp/%s: %s", charge_point_id[:48], e)
            await websocket.send_denial_response(
                PlainTextResponse("unauthorized\n", 401, headers={"WWW-Authenticate": 'Basic realm="evota"'})
            )
            return
        protocol = negotiate(websocket.scope.get("subprotocols", []))
        if protocol is None:
            log.warning(
                "%s offered no OCPP version evota speaks: %s",
                charge_point_id,
                websocket.scope.get("subprotocols"),
            )
            await websocket.accept()
            await websocket.close(code=1002, reason="evota speaks ocpp2.0.1 and ocpp1.6")
            return
        await websocket.accept(subprotocol=protocol.subprotocol)
        session = _SESSIONS[protocol](charge_point_id, StarletteConnection(websocket), ctx)
        if not session.base_url:
            session.base_url = session_base_url(str(websocket.url))
        await run_session(session, hub, ctx, dispatcher)

    return router


async def run_session(
    session: CsmsChargePoint, hub: ChargerHub, ctx: CsmsContext, dispatcher: FirmwareDispatcher | None = None
) -> None:
    """Serve one charger's connection until it closes."""
    cpid = session.charge_point_id
    old = hub.attach(session)
    if old is not None:
        log.info("%s reconnected: closing its previous session", cpid)
        await old.close()
    await asyncio.to_thread(
        csms.record_connection,
        ctx.db,
        cpid,
        connected=True,
        protocol=session.protocol.value,
        now=ctx.clock.now(),
    )
    log.info("%s connected (OCPP %s)", cpid, session.protocol.value)
    if dispatcher is not None:
        dispatcher.connected(session)
    try:
        await session.start()
    except ConnectionClosedError as e:
        log.info("%s disconnected (%s)", cpid, e.code)
    except Exception:  # a bug in a handler path: the session ends, the CSMS goes on
        log.exception("%s: session failed", cpid)
        await session.connection.close(1011, "internal error")
    finally:
        if hub.detach(session):
            await asyncio.to_thread(
                csms.record_connection, ctx.db, cpid, connected=False, protocol=None, now=ctx.clock.now()
            )
