"""The device API under `/api/v1/device/`: what a vehicle's agent sends.

Versioned with the operator API (a v2 would live beside it, so agents in the field keep
working). Each route acts as the vehicle its token was issued to. Director metadata is not
here: the agent fetches it from `/repo/director/<VIN>/metadata/` like any Uptane client.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from evota.deployment import Deployment
from evota.domain.gates import Gear
from evota.domain.steps import Step
from evota.server.auth import DeviceAuth
from evota.server.services import devices
from evota.server.store.db import Database

__all__ = ["device_router"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnergyBody(_Body):
    soc_pct: Annotated[float, Field(ge=0, le=100)]
    soh_pct: Annotated[float | None, Field(ge=0, le=100)] = None
    charging: bool
    plugged_in: bool
    gear: Gear
    ambient_c: Annotated[float, Field(ge=-60, le=80)]
    at: AwareDatetime


class ConsentBody(_Body):
    release: Annotated[str, Field(min_length=1, max_length=64)]
    by: Annotated[
        str, Field(min_length=1, max_length=64, description="Who consented (driver, fleet app user).")
    ]
    at: AwareDatetime


class CheckInBody(_Body):
    manifest: dict[str, Any] = Field(description="The signed vehicle version manifest (Uptane).")
    energy: EnergyBody | None = None
    consents: Annotated[list[ConsentBody], Field(max_length=16)] = []


class StepBody(_Body):
    release: Annotated[str, Field(min_length=1, max_length=64)]
    step: Step
    reason: Annotated[str | None, Field(max_length=512)] = None
    at: AwareDatetime


class SampleBody(_Body):
    at: AwareDatetime
    kpis: dict[Annotated[str, Field(min_length=1, max_length=64)], float]


class TelemetryBody(_Body):
    samples: Annotated[list[SampleBody], Field(max_length=devices.MAX_TELEMETRY_VALUES)]


def device_router(dep: Deployment, db: Database) -> APIRouter:
    auth = DeviceAuth(db, dep.clock)
    router = APIRouter(prefix="/api/v1/device", tags=["device"])
    # A default, not an Annotated alias: annotations are strings here, and FastAPI resolves
    # them in the module's globals, where a local alias does not exist.
    token_vin: Any = Depends(auth.vin)

    @router.post("/checkin")
    def check_in(body: CheckInBody, vin: str = token_vin) -> dict[str, object]:
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

    @router.post("/steps", status_code=201)
    def report_step(body: StepBody, vin: str = token_vin) -> dict[str, object]:
        campaign = devices.report_step(
            db, vin, release=body.release, step=body.step, reason=body.reason, at=body.at, now=dep.clock.now()
        )
        return {"vin": vin, "campaign": campaign}

    @router.post("/telemetry", status_code=201)
    def telemetry(body: TelemetryBody, vin: str = token_vin) -> dict[str, object]:
        samples = [devices.Sample(s.at, s.kpis) for s in body.samples]
        return {"vin": vin, "stored": devices.store_telemetry(db, vin, samples, now=dep.clock.now())}

    return router
