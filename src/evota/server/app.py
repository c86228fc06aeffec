"""The FastAPI application factory.

`create_app` takes a wired `Deployment` (home, keys, repositories, clock) and, for the APIs
and the rollout controller, an open `Database`; it returns the app, and nothing is built at
import time. Errors raised by evota reach clients through one handler as
`{"error": {"code", "message"}}` with an HTTP status chosen by error family.
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
from evota.errors import ConfigError, EvotaError, InputError, KeyUnavailableError, NotFoundError
from evota.security.errors import AuthenticationError, PermissionDeniedError, SecurityError
from evota.server.repo_routes import repo_router
from evota.server.store.db import Database

__all__ = ["create_app"]

log = logging.getLogger("evota.server")

REFRESH_INTERVAL_S = 60.0
TICK_INTERVAL_S = 10.0


def _status(error: EvotaError) -> int:
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, InputError):
        return 422
    if isinstance(error, AuthenticationError):
        return 401
    if isinstance(error, PermissionDeniedError | SecurityError):
        return 403
    if isinstance(error, ConfigError | KeyUnavailableError):
        return 503
    return 500


def create_app(
    dep: Deployment,
    db: Database | None = None,
    *,
    refresh_interval_s: float | None = REFRESH_INTERVAL_S,
    tick_interval_s: float | None = TICK_INTERVAL_S,
) -> FastAPI:
    """Build the app for one home. Without `db` only the repositories are served. `None` for
    an interval turns that background loop off (tests drive the work explicitly)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = []
        if refresh_interval_s is not None:
            tasks.append(asyncio.create_task(_refresh_loop(dep, refresh_interval_s)))
        if db is not None and tick_interval_s is not None:
            tasks.append(asyncio.create_task(_controller_loop(dep, db, tick_interval_s)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(title="evota", version=__version__, lifespan=lifespan)
    app.include_router(repo_router(dep))
    if db is not None:
        from evota.server.device_api import device_router
        from evota.server.operator_api import operator_router

        app.include_router(operator_router(dep, db))
        app.include_router(device_router(dep, db))

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.exception_handler(EvotaError)
    async def evota_error(_: Request, exc: EvotaError) -> JSONResponse:
        status = _status(exc)
        return JSONResponse(
            status_code=status,
            content={"error": {"code": exc.code, "message": exc.message}},
            headers={"WWW-Authenticate": "Bearer"} if status == 401 else None,
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


async def _controller_loop(dep: Deployment, db: Database, interval: float) -> None:
    """Run the rollout controller while this process leads (see `services/controller.py`)."""
    from evota.server.services.controller import Leadership, tick

    leadership = Leadership(db)
    try:
        while True:
            try:
                if await asyncio.to_thread(leadership.is_leader):
                    report = await asyncio.to_thread(tick, db, dep.director, dep.clock.now())
                    if report.offered or report.advanced or report.halted or report.completed:
                        log.info("controller tick: %s", report)
            except Exception:  # the loop must outlive a bad tick; the next one retries from the DB
                log.exception("controller tick failed")
            await asyncio.sleep(interval)
    finally:
        leadership.release()
