"""Starlette's websocket, as the connection object the `ocpp` package expects.

`ocpp.ChargePoint` reads with `await connection.recv()` and writes with `await
connection.send(text)` (what a `websockets` connection offers). This adapter gives a
Starlette `WebSocket` the same two methods, so the CSMS runs inside `evota serve`'s own
FastAPI app on its one port, and `ConnectionClosedError` is the only way a read ends.
"""

from __future__ import annotations

import contextlib

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

__all__ = ["ConnectionClosedError", "StarletteConnection"]


class ConnectionClosedError(Exception):
    """The charger closed the websocket, or it was closed under us (not an evota error: the
    session's normal end)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"websocket closed ({code})")
        self.code = code


class StarletteConnection:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def recv(self) -> str | bytes:
        """The next frame's payload. OCPP-J uses text frames; a binary frame is handed on as
        bytes so that the parser answers it with a CALLERROR instead of the loop dying."""
        if self.websocket.client_state is WebSocketState.DISCONNECTED:
            raise ConnectionClosedError(1006)
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise ConnectionClosedError(int(message.get("code", 1005)))
        text = message.get("text")
        if text is not None:
            return str(text)
        return bytes(message.get("bytes") or b"")

    async def send(self, text: str) -> None:
        if self.websocket.application_state is not WebSocketState.CONNECTED:
            raise ConnectionClosedError(1006)
        try:
            await self.websocket.send_text(text)
        except WebSocketDisconnect as e:  # the charger went while we were writing (a reboot)
            raise ConnectionClosedError(e.code) from e
        except (RuntimeError, OSError) as e:  # closed while we were writing
            raise ConnectionClosedError(1006) from e

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
                await self.websocket.close(code=code, reason=reason)
