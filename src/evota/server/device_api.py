"""The device API under `/api/v1/device/`: what a vehicle's agent sends.

Versioned with the operator API (a v2 would live beside it, so agents in the field keep
working). Each route acts as the vehicle its token was issued to. Director metadata is not
here: the agent fetches it from `/repo/director/<VIN>/metadata/` like any Uptane client.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictFloat

from evota.deployment import Deployment
from evota.domain.gates import Gear
from evota.domain.steps import Step
from evota.server.auth import DeviceAuth
from evota.server.services import devices
from evota.server.store.db import Database

__all__ = [
    "CheckInBody",
    "StepBody",
    "TelemetryBody",
    "device_router",
    "handle_check_in",
    "handle_step",
    "handle_telemetry",
]


def _rfc3339(value: object) -> object:
    """A timestamp is RFC 3339 text. Pydantic would also take a number, as Unix seconds or
    milliseconds by its size, or a string of digits: an agent's unit bug would then store
    plausible wrong times instead of being refused."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and not value.isdigit():
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("expected an RFC 3339 date-time with its UTC offset, e.g. 2026-11-22T08:00:00Z")


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


class _Body(BaseModel):
    # Scalars are strict (StrictFloat, StrictBool; a float field still takes a JSON integer):
    # an agent sending "80" or "true" has a bug that should surface here, not be papered over
    # by coercion. NaN and Infinity (which Python's JSON parser takes) are refused.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class EnergyBody(_Body):
    soc_pct: Annotated[StrictFloat, Field(ge=0, le=100)]
    soh_pct: Annotated[StrictFloat | None, Field(ge=0, le=100)] = None
    charging: StrictBool
    plugged_in: StrictBool
    gear: Gear
    ambient_c: Annotated[StrictFloat, Field(ge=-60, le=80)]
    at: Timestamp


class ConsentBody(_Body):
    release: Annotated[str, Field(min_length=1, max_length=64)]
    by: Annotated[
        str, Field(min_length=1, max_length=64, description="Who consented (driver, fleet app user).")
    ]
    at: Timestamp


class CheckInBody(_Body):
    manifest: dict[str, Any] = Field(description="The signed vehicle version manifest (Uptane).")
    energy: EnergyBody | None = None
    consents: Annotated[list[ConsentBody], Field(max_length=16)] = []


class StepBody(_Body):
    release: Annotated[str, Field(min_length=1, max_length=64)]
    step: Step
    reason: Annotated[str | None, Field(max_length=512)] = None
    at: Timestamp


class SampleBody(_Body):
    at: Timestamp
    kpis: dict[Annotated[str, Field(min_length=1, max_length=64)], StrictFloat]


class TelemetryBody(_Body):
    samples: Annotated[list[SampleBody], Field(max_length=devices.MAX_TELEMETRY_VALUES)]


def handle_check_in(dep: Deployment, db: Database, vin: str, body: CheckInBody) -> dict[str, object]:
    """A validated check-in, handled as the route does (the in-process port calls this too)."""
    energy = None
    if body.energy is not None:
        e = body.energy
        energy = devices.EnergyReport(
            e.soc_pct, e.charging, e.plugged_in, e.gear, e.ambient_c, e.at, e.soh_pct
        )
    result = devices.check_in(
        db,
        dep.images,
        vin,
        json.dumps(body.manifest).encode("utf-8"),
        energy=energy,
        consents=[devices.Consent(c.release, c.by, c.at) for c in body.consents],
        now=dep.clock.now(),
    )
    return result.to_json()


def handle_step(dep: Deployment, db: Database, vin: str, body: StepBody) -> dict[str, object]:
    campaign = devices.report_step(
        db, vin, release=body.release, step=body.step, reason=body.reason, at=body.at, now=dep.clock.now()
    )
    return {"vin": vin, "campaign": campaign}


def handle_telemetry(dep: Deployment, db: Database, vin: str, body: TelemetryBody) -> dict[str, object]:
    samples = [devices.Sample(s.at, s.kpis) for s in body.samples]
    return {"vin": vin, "stored": devices.store_telemetry(db, vin, samples, now=dep.clock.now())}


def device_router(dep: Deployment, db: Database) -> APIRouter:
    auth = DeviceAuth(db, dep.clock)
    router = APIRouter(prefix="/api/v1/device", tags=["device"])
    # A default, not an Annotated alias: annotations are strings here, and FastAPI resolves
    # them in the module's globals, where a local alias does not exist.
    token_vin: Any = Depends(auth.vin)

    @router.post("/checkin")
    def check_in(body: CheckInBody, vin: str = token_vin) -> dict[str, object]:
        return handle_check_in(dep, db, vin, body)

    @router.post("/steps", status_code=201)
    def report_step(body: StepBody, vin: str = token_vin) -> dict[str, object]:
        return handle_step(dep, db, vin, body)

    @router.post("/telemetry", status_code=201)
    def telemetry(body: TelemetryBody, vin: str = token_vin) -> dict[str, object]:
        return handle_telemetry(dep, db, vin, body)

    return router
