"""The FastAPI application factory.

`create_app` takes a wired `Deployment` (home, keys, repositories, clock) and, for the APIs
and the rollout controller, an open `Database`; it returns the app, and nothing is built at
import time. Errors raised by evota reach clients through one handler as
`{"error": {"code", "message"}}` with an HTTP status chosen by error family; the OpenAPI
document lists those answers on every API route, so clients generated from it (and the
schemathesis run in the test suite) know every status a route can give.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from evota import __version__
from evota.deployment import Deployment
from evota.errors import ConfigError, EvotaError, InputError, KeyUnavailableError, NotFoundError
from evota.security.errors import AuthenticationError, PermissionDeniedError, SecurityError
from evota.server.ocpp.endpoint import ocpp_router
from evota.server.ocpp.firmware import FirmwareDispatcher, charger_loop
from evota.server.ocpp.hub import ChargerHub
from evota.server.ocpp.rpc import CsmsContext
from evota.server.repo_routes import repo_router
from evota.server.store.db import Database

__all__ = ["create_app", "error_status"]

log = logging.getLogger("evota.server")

REFRESH_INTERVAL_S = 60.0
TICK_INTERVAL_S = 10.0
CHARGER_INTERVAL_S = 2.0


class ErrorDetail(BaseModel):
    code: str = Field(
        description="Stable and machine-readable: unauthenticated, forbidden, not_found, input_error, …",
        examples=["forbidden"],
    )
    message: str = Field(description="Written for a fleet operator: what was wrong.")


class ErrorBody(BaseModel):
    """How every evota error reaches a client (see `evota_error` in `create_app`)."""

    error: ErrorDetail


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """FastAPI's answer to a request that does not match the schema (a Pydantic 422)."""

    detail: list[ValidationIssue]


class HTTPErrorBody(BaseModel):
    """Starlette's answer for a path or method no route serves."""

    detail: str


def _error(description: str, model: Any = ErrorBody) -> dict[str, Any]:
    return {"model": model, "description": description}


# The statuses the error handler below gives, for the OpenAPI document of every API route.
API_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("The body cannot be read as JSON text at all, e.g. it is not UTF-8.", HTTPErrorBody),
    401: _error("No bearer token, or an unknown or revoked one."),
    403: _error("The token's role lacks the permission, or a security check refused the request."),
    404: _error("What the request names does not exist."),
    422: _error(
        "The request does not match the schema (`detail`), or breaks one of evota's rules (`error`).",
        ErrorBody | ValidationErrorBody,
    ),
    503: _error("A signing key or the home is not usable right now."),
}
REPO_ERRORS: dict[int | str, dict[str, Any]] = {
    404: _error("No such file: also how a TUF client learns that no newer root exists.", HTTPErrorBody),
}


def error_status(error: EvotaError) -> int:
    """The HTTP status of an evota error, by family (also what the in-process port reports)."""
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
    mqtt_url: str | None = None,
    charger_interval_s: float | None = CHARGER_INTERVAL_S,
    charger_decisions: bool | None = None,
    csms: CsmsContext | None = None,
) -> FastAPI:
    """Build the app for one home. Without `db` only the repositories are served. `None` for
    an interval turns that background loop off (tests drive the work explicitly).

    The charger loop sends queued firmware requests to the chargers connected here every
    `charger_interval_s` (and when a charger event wakes it); it also decides (request
    timeouts, charger campaigns) while this process leads, if `charger_decisions` (default:
    whenever the vehicle controller runs, i.e. `tick_interval_s` is not None).
    `csms` overrides the CSMS's settings (tests: short timeouts and a simulated clock).
    `mqtt_url` also ingests vehicle telemetry from that broker (`server/mqtt.py`).
    """
    ctx: CsmsContext | None = None
    dispatcher: FirmwareDispatcher | None = None
    if db is not None:
        ctx = csms or _csms_context(dep, db)
        dispatcher = FirmwareDispatcher(ctx, ChargerHub())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = []
        if refresh_interval_s is not None:
            tasks.append(asyncio.create_task(_refresh_loop(dep, refresh_interval_s)))
        if db is not None and tick_interval_s is not None:
            tasks.append(asyncio.create_task(_controller_loop(dep, db, tick_interval_s)))
        ingest = None
        if db is not None and mqtt_url is not None:
            from evota.server.mqtt import MqttIngest

            ingest = MqttIngest(dep, db, mqtt_url)
            await asyncio.to_thread(ingest.start)
            app.state.mqtt = ingest
        if dispatcher is not None and charger_interval_s is not None:
            deciding = charger_decisions if charger_decisions is not None else tick_interval_s is not None
            decide = _charger_decisions(dispatcher.ctx) if deciding else None
            tasks.append(asyncio.create_task(charger_loop(dispatcher, charger_interval_s, decide)))
        try:
            yield
        finally:
            if ingest is not None:
                await asyncio.to_thread(ingest.stop)
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(title="evota", version=__version__, lifespan=lifespan)
    app.include_router(repo_router(dep), responses=REPO_ERRORS)
    if db is not None:
        from evota.server.charger_api import charger_router
        from evota.server.device_api import device_router
        from evota.server.operator_api import operator_router

        app.include_router(operator_router(dep, db), responses=API_ERRORS)
        app.include_router(charger_router(dep, db), responses=API_ERRORS)
        app.include_router(device_router(dep, db), responses=API_ERRORS)
        from evota.server.firmware_routes import firmware_router

        # The CSMS: chargers' websockets on the same port (see server/ocpp/endpoint.py), and
        # the firmware images they download.
        assert ctx is not None and dispatcher is not None
        app.state.chargers = dispatcher.hub
        app.state.csms = ctx
        app.include_router(ocpp_router(ctx, dispatcher.hub, dispatcher))
        app.include_router(firmware_router(dep), responses=REPO_ERRORS)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.exception_handler(EvotaError)
    async def evota_error(_: Request, exc: EvotaError) -> JSONResponse:
        status = error_status(exc)
        return JSONResponse(
            status_code=status,
            content={"error": {"code": exc.code, "message": exc.message}},
            headers={"WWW-Authenticate": "Bearer"} if status == 401 else None,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own 422, made renderable: it echoes the refused input, and when that is NaN
        or an infinity (Python's JSON parser takes them, JSON output cannot carry them) the
        default handler raised instead of answering, a 500."""
        return JSONResponse(status_code=422, content={"detail": _json_safe(jsonable_encoder(exc.errors()))})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Starlette answers a wrong method with the `Allow` of the first route on that path,
        but a path here often has one route per method (GET and POST /api/v1/campaigns), so
        `Allow` would omit methods the resource supports (RFC 9110 §10.2.1): name them all."""
        if exc.status_code == 405:
            path, root = request.scope["path"], request.scope.get("root_path", "")
            allowed = _allowed_methods(app.routes, path[len(root) :] if path.startswith(root) else path)
            if allowed:
                headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(allowed))}
                exc = StarletteHTTPException(405, exc.detail, headers)
        return await http_exception_handler(request, exc)

    return app


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf"
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _routes(routes: list[BaseRoute]) -> Iterator[Any]:
    """Every endpoint, however routers are nested: FastAPI 0.137 stopped copying included
    routes into `app.routes`, and 0.137.2 added `iter_route_contexts` to flatten them."""
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # older FastAPI: app.routes is flat
        yield from routes
    else:
        yield from iter_route_contexts(routes)


def _allowed_methods(routes: list[BaseRoute], path: str) -> set[str]:
    allowed: set[str] = set()
    for route in _routes(routes):
        regex, methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and methods and regex.match(path):
            allowed.update(methods)
    return allowed


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


def _csms_context(dep: Deployment, db: Database) -> CsmsContext:
    from evota.domain.firmware import FirmwareTimeouts
    from evota.server.services.firmware_queries import timeouts_resolver

    return CsmsContext(
        db, dep.clock, timeouts=timeouts_resolver(db, FirmwareTimeouts()), public_url=dep.settings.public_url
    )


def _charger_decisions(ctx: CsmsContext) -> Any:
    """The leader's share of a charger round: time out silent requests, plan the campaigns."""
    from evota.server.services import charger_controller, firmware_requests
    from evota.server.services.controller import Leadership

    leadership = Leadership(ctx.db, key=_CHARGER_LEADER_LOCK)

    def decide() -> None:
        if leadership.is_leader():
            firmware_requests.sweep(ctx.db, timeouts=ctx.timeouts, now=ctx.clock.now())
            report = charger_controller.tick(ctx.db, ctx.clock.now())
            if report.advanced or report.halted or report.completed:
                log.info("charger controller tick: %s", report)

    return decide


_CHARGER_LEADER_LOCK = 0x65766F7443  # "evotC": the charger controller's lock (the vehicles' is "evotc")
