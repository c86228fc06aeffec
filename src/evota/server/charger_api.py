"""The operator API for chargers under `/api/v1/`: the registry, firmware images, charger
campaigns (mirroring `/campaigns`) and certifications.

Every route names its permission, as in `operator_api.py`: reading needs `read`; creating
and moving campaigns `campaign.write`; approving `campaign.approve` (four eyes: the token's
user must not be the creator); certifications are release data (`release.write`).
Publishing an image needs the offline signing key and stays on the server's machine
(`evota charger firmware add`).
"""

from __future__ import annotations

from typing import Annotated, Any

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Depends
from pydantic import Field

from evota.deployment import Deployment
from evota.domain.access import Permission
from evota.domain.campaign import CampaignEvent
from evota.domain.charger_campaign import ChargerPolicy, policy_from_dict, policy_to_dict
from evota.domain.charger_compat import Certification
from evota.security.firmware_signing import FirmwarePki
from evota.server.auth import OperatorAuth
from evota.server.operator_api import Name, WindowBody, _Body
from evota.server.services import certifications, charger_campaigns, chargers, firmware, firmware_queries
from evota.server.services.users import Principal
from evota.server.store.db import Database

__all__ = ["charger_router"]

_D = policy_to_dict(ChargerPolicy())
Seconds = Annotated[float, Field(ge=0, le=366 * 86400)]
Label = Annotated[str, Field(min_length=1, max_length=50)]


class ChargerSelectorBody(_Body):
    sites: list[Name] = Field(default_factory=list, max_length=1000)
    firmware_versions: list[Label] = Field(default_factory=list, max_length=1000)
    tags: list[Name] = Field(default_factory=list, max_length=1000)
    charge_point_ids: list[Annotated[str, Field(min_length=1, max_length=48)]] = Field(
        default_factory=list, max_length=100_000
    )


class ChargerPolicyBody(_Body):
    dwell_s: Seconds = _D["dwell_s"]  # type: ignore[assignment]
    max_concurrent: Annotated[int, Field(ge=1, le=100_000)] = _D["max_concurrent"]  # type: ignore[assignment]
    error_threshold_pct: Annotated[float, Field(ge=0, le=100)] = _D["error_threshold_pct"]  # type: ignore[assignment]
    min_executed: Annotated[int, Field(ge=1, le=100_000)] = _D["min_executed"]  # type: ignore[assignment]
    success_threshold_pct: Annotated[float, Field(ge=0, le=100)] = _D["success_threshold_pct"]  # type: ignore[assignment]
    windows: list[WindowBody] = Field(default=[], max_length=20)
    retries: Annotated[int, Field(ge=1, le=100)] = _D["retries"]  # type: ignore[assignment]
    retry_interval_s: Annotated[float, Field(ge=1, le=86400)] = _D["retry_interval_s"]  # type: ignore[assignment]
    silence_s: Annotated[float, Field(ge=1, le=366 * 86400)] = _D["silence_s"]  # type: ignore[assignment]
    scheduled_s: Annotated[float, Field(ge=1, le=366 * 86400)] = _D["scheduled_s"]  # type: ignore[assignment]
    max_attempts: Annotated[int, Field(ge=1, le=100)] = _D["max_attempts"]  # type: ignore[assignment]
    available_within_s: Seconds = _D["available_within_s"]  # type: ignore[assignment]
    max_boots: Annotated[int, Field(ge=1, le=1000)] = _D["max_boots"]  # type: ignore[assignment]
    min_sessions: Annotated[int, Field(ge=0, le=1_000_000)] = _D["min_sessions"]  # type: ignore[assignment]
    alpha: Annotated[float, Field(gt=0, lt=1)] = _D["alpha"]  # type: ignore[assignment]
    max_duration_s: Seconds = _D["max_duration_s"]  # type: ignore[assignment]
    defer_during_sessions: bool = _D["defer_during_sessions"]  # type: ignore[assignment]


class ChargerCampaignBody(_Body):
    name: Name
    model: Label
    version: Label
    vendor: Label | None = None
    selector: ChargerSelectorBody = ChargerSelectorBody()
    waves: Annotated[list[float], Field(min_length=1, max_length=20)] = Field(
        default_factory=lambda: [10.0, 50.0, 100.0]
    )
    policy: ChargerPolicyBody = ChargerPolicyBody()
    quiet_hours: Annotated[int | None, Field(ge=1, le=23, description="Each site's quietest N hours.")] = None


class CertificationBody(_Body):
    capability: Annotated[str, Field(min_length=2, max_length=64, examples=["iso15118-20-bidirectional"])]
    vendor: Label
    model: Label
    versions: Annotated[str, Field(min_length=1, max_length=128, examples=[">=2.1,<3"])]
    note: Annotated[str | None, Field(max_length=256)] = None


def charger_router(dep: Deployment, db: Database) -> APIRouter:
    auth = OperatorAuth(db)
    router = APIRouter(prefix="/api/v1", tags=["chargers"])

    def can(permission: Permission) -> Any:
        return Depends(auth.requires(permission))

    read, write = can(Permission.READ), can(Permission.CAMPAIGN_WRITE)
    approve, release_write = can(Permission.CAMPAIGN_APPROVE), can(Permission.RELEASE_WRITE)

    @router.get("/chargers")
    def get_chargers(site: str | None = None, _: Principal = read) -> list[dict[str, object]]:
        return [c.to_json() for c in chargers.list_chargers(db, site=site)]

    @router.get("/chargers/{charge_point_id}")
    def get_charger(charge_point_id: str, _: Principal = read) -> dict[str, object]:
        return chargers.get_charger(db, charge_point_id).to_json()

    @router.get("/chargers/{charge_point_id}/firmware")
    def get_charger_firmware(charge_point_id: str, _: Principal = read) -> dict[str, object]:
        """The charger's firmware requests (newest first) and every status it reported."""
        requests, steps = firmware_queries.charger_history(db, charge_point_id)
        return {"requests": requests, "steps": steps}

    @router.get("/charger-firmware")
    def get_firmware(model: str | None = None, _: Principal = read) -> list[dict[str, object]]:
        return [f.to_json() for f in firmware.list_firmware(db, model=model)]

    @router.get("/charger-campaigns")
    def get_campaigns(_: Principal = read) -> list[dict[str, object]]:
        return [c.to_json() for c in charger_campaigns.list_campaigns(db)]

    @router.post("/charger-campaigns", status_code=201)
    def create_campaign(body: ChargerCampaignBody, me: Principal = write) -> dict[str, object]:
        policy = policy_from_dict({**body.policy.model_dump(), "site_windows": {}})
        root = (
            FirmwarePki(dep.home.path, dep.keys).root_certificate().public_bytes(serialization.Encoding.PEM)
        )
        summary = charger_campaigns.create_campaign(
            db,
            dep.home.path,
            root,
            name=body.name,
            vendor=body.vendor,
            model=body.model,
            version=body.version,
            selector=charger_campaigns.ChargerSelector.from_dict(body.selector.model_dump()),
            waves=body.waves,
            policy=policy,
            created_by=me.name,
            now=dep.clock.now(),
            quiet_hours=body.quiet_hours,
        )
        return summary.to_json()

    @router.get("/charger-campaigns/{name}")
    def get_campaign(name: str, _: Principal = read) -> dict[str, object]:
        summary = charger_campaigns.campaign_summary(db, name)
        members = charger_campaigns.campaign_members(db, name)
        return {**summary.to_json(), "chargers": [m.to_json() for m in members]}

    def move(event: CampaignEvent, permission: Any) -> None:
        @router.post(f"/charger-campaigns/{{name}}/{event.value}", name=f"charger_campaign_{event.value}")
        def route(name: str, me: Principal = permission) -> dict[str, object]:
            return charger_campaigns.move_campaign(
                db, name, event, actor=me.name, now=dep.clock.now()
            ).to_json()

    move(CampaignEvent.APPROVE, approve)
    for event in (
        CampaignEvent.START,
        CampaignEvent.PAUSE,
        CampaignEvent.RESUME,
        CampaignEvent.ABORT,
        CampaignEvent.ROLL_BACK,
    ):
        move(event, write)

    @router.get("/charger-certifications")
    def get_certifications(_: Principal = read) -> list[dict[str, object]]:
        return [c.to_json() for c in certifications.list_certifications(db)]

    @router.post("/charger-certifications", status_code=201)
    def add_certification(body: CertificationBody, me: Principal = release_write) -> dict[str, object]:
        cert = Certification(body.capability, body.vendor, body.model, body.versions)
        return certifications.add_certification(
            db, cert, note=body.note, actor=me.name, now=dep.clock.now()
        ).to_json()

    return router
