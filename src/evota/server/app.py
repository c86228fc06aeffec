"""The FastAPI application factory.

`create_app` takes a wired `Deployment` (home, keys, repositories, clock) and returns the
app; nothing is built at import time. Errors raised by evota reach clients through one
handler as `{"error": {"code", "message"}}` with an HTTP status chosen by error family.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from evota import __version__
from evota.deployment import Deployment
from evota.errors import ConfigError, EvotaError, InputError, KeyUnavailableError
from evota.security.errors import SecurityError
from evota.server.repo_routes import repo_router

__all__ = ["create_app"]

log = logging.getLogger("evota.server")

REFRESH_INTERVAL_S = 60.0


def _status(error: EvotaError) -> int:
    if isinstance(error, InputError):
        return 422
    if isinstance(error, SecurityError):
        return 403
    if isinstance(error, ConfigError | KeyUnavailableError):
        return 503
    return 500


def create_app(dep: Deployment, *, refresh_interval_s: float | None = REFRESH_INTERVAL_S) -> FastAPI:
    """Build the app for one home. `refresh_interval_s=None` turns off the background
    re-signing of online metadata (tests drive it explicitly)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = None
        if refresh_interval_s is not None:
            task = asyncio.create_task(_refresh_loop(dep, refresh_interval_s))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(title="evota", version=__version__, lifespan=lifespan)
    app.include_router(repo_router(dep))

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.exception_handler(EvotaError)
    async def evota_error(_: Request, exc: EvotaError) -> JSONResponse:
        return JSONResponse(
            status_code=_status(exc), content={"error": {"code": exc.code, "message": exc.message}}
        )

    return app


async def _refresh_loop(dep: Deployment, interval: float) -> None:
    """Keep the image repository's snapshot and timestamp from expiring.

    Director chains need no loop: each is re-signed when its vehicle asks for its timestamp
    (`Director.metadata_file`), so a fleet of idle vehicles costs nothing.
    """
    while True:
        try:
            await asyncio.to_thread(dep.images.refresh)
        except EvotaError as e:
            log.error("refreshing online metadata failed: %s", e)
        await asyncio.sleep(interval)
