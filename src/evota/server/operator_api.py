"""The operator API under `/api/v1/`: fleet, campaigns, releases, audit and users.

Every route names the permission it needs (see `domain/access.py`); the acting user comes
from the bearer token and is what the audit log records, so four-eyes approval compares two
authenticated people. Request bodies are Pydantic models, which gives clients an OpenAPI
schema and a 422 with the field at fault; the domain then applies its own rules (valid waves,
percentages, windows) and answers with the same error shape.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from evota.deployment import Deployment
from evota.domain.access import Permission, Role
from evota.domain.audit import verify_chain
from evota.domain.campaign import DEFAULT_WAVES, CampaignEvent
from evota.domain.fleet import EcuIdentity, VehicleIdentity
from evota.domain.planner import RolloutPolicy, policy_from_dict, policy_to_dict
from evota.domain.registry import parse_vehicle_csv
from evota.errors import InputError
from evota.server.auth import OperatorAuth
from evota.server.services import audit, campaigns, devices, fleet, reports, users
from evota.server.services.users import Principal
from evota.server.store.db import Database

__all__ = ["operator_router"]

_DEFAULTS = policy_to_dict(RolloutPolicy())
_DEFAULT_PRE: dict[str, Any] = _DEFAULTS["preconditions"]  # type: ignore[assignment]

Name = Annotated[str, Field(min_length=1, max_length=64)]
MAX_SEQ = 2**63 - 1  # the largest integer a database column holds (SQLite, PostgreSQL bigint)


class _Body(BaseModel):
    # Python's JSON parser takes NaN and Infinity, which JSON does not have. Refused here: they
    # slip through checks written as comparisons (an empty ambient range is `min > max`, false
    # for NaN), and PostgreSQL then refuses the stored policy (a 500).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class VehicleImport(_Body):
    csv: Annotated[
        str, Field(max_length=50_000_000, description="The vehicles CSV (see `evota fleet import`).")
    ]


class EcuBody(_Body):
    serial: Name
    ecu_type: Name
    hardware_id: Name
    public_key: dict[str, Any] = Field(
        description="TUF key dict with its keyid: {keyid, keytype, scheme, keyval}."
    )


class ProvisionBody(_Body):
    primary_serial: Name
    ecus: Annotated[list[EcuBody], Field(min_length=1, max_length=64)]


class SelectorBody(_Body):
    depots: list[Name] = []
    regions: list[Name] = []
    climate_zones: list[Name] = []
    models: list[Name] = []
    hardware_ids: list[Name] = []
    tags: list[Name] = []
    vins: list[Name] = []


class WindowBody(_Body):
    start: str = Field(description="Local time HH:MM.", examples=["22:00"])
    end: str = Field(description="Local time HH:MM; before start means past midnight.", examples=["05:00"])
    weekdays: list[int] = Field(default=list(range(7)), description="0 = Monday … 6 = Sunday.")


class PreconditionsBody(_Body):
    min_soc_pct: float = _DEFAULT_PRE["min_soc_pct"]
    park_required: bool = _DEFAULT_PRE["park_required"]
    plugged_in: str = Field(default=_DEFAULT_PRE["plugged_in"], description="required, forbidden or any.")
    charging: str = Field(default=_DEFAULT_PRE["charging"], description="required, forbidden or any.")
    ambient_min_c: float | None = _DEFAULT_PRE["ambient_min_c"]
    ambient_max_c: float | None = _DEFAULT_PRE["ambient_max_c"]
    consent_required: bool = _DEFAULT_PRE["consent_required"]
    max_state_age_s: float = _DEFAULT_PRE["max_state_age_s"]


class PolicyBody(_Body):
    dwell_s: float = _DEFAULTS["dwell_s"]  # type: ignore[assignment]
    first_dwell_s: float | None = Field(
        default=None, description="The first wave's dwell (default: dwell_s)."
    )
    max_concurrent: int = _DEFAULTS["max_concurrent"]  # type: ignore[assignment]
    install_timeout_s: float = _DEFAULTS["install_timeout_s"]  # type: ignore[assignment]
    error_threshold_pct: float = _DEFAULTS["error_threshold_pct"]  # type: ignore[assignment]
    min_executed: int = _DEFAULTS["min_executed"]  # type: ignore[assignment]
    success_threshold_pct: float = _DEFAULTS["success_threshold_pct"]  # type: ignore[assignment]
    preconditions: PreconditionsBody = PreconditionsBody()
    windows: list[WindowBody] = []
    charger_capability: str | None = Field(
        default=None,
        max_length=64,
        description="Hold vehicles whose depot chargers are not all certified for this capability.",
        examples=["iso15118-20-bidirectional"],
    )


class CampaignBody(_Body):
    name: Name
    release: Name
    selector: SelectorBody = SelectorBody()
    waves: Annotated[list[float], Field(min_length=1, max_length=20)] = list(DEFAULT_WAVES)
    policy: PolicyBody = PolicyBody()
    gate: dict[str, Any] | None = Field(
        default=None,
        description=(
            "The health gate (evota.health-gate format, as `evota campaign create --health-gate` "
            "writes it, plus `interval_s` between looks); omitted: no gate, install outcomes only."
        ),
    )


class UserBody(_Body):
    name: Name
    role: Role


class TokenBody(_Body):
    label: Name


def _policy(body: PolicyBody) -> RolloutPolicy:
    data = body.model_dump()
    if data.get("first_dwell_s") is None:
        data.pop("first_dwell_s", None)
    for number in ("dwell_s", "install_timeout_s", *(("first_dwell_s",) if "first_dwell_s" in data else ())):
        if not 0 <= data[number] <= 365 * 86400:
            raise InputError(f"{number} must be between 0 and a year")
    if data["preconditions"]["max_state_age_s"] < 0 or data["preconditions"]["max_state_age_s"] > 365 * 86400:
        raise InputError("max_state_age_s must be between 0 and a year")
    return policy_from_dict(data)


def operator_router(dep: Deployment, db: Database) -> APIRouter:
    auth = OperatorAuth(db)
    router = APIRouter(prefix="/api/v1", tags=["operator"])

    def can(permission: Permission) -> Any:
        return Depends(auth.requires(permission))

    read, fleet_write = can(Permission.READ), can(Permission.FLEET_WRITE)
    campaign_write, approve = can(Permission.CAMPAIGN_WRITE), can(Permission.CAMPAIGN_APPROVE)
    user_admin = can(Permission.USER_ADMIN)

    @router.get("/whoami")
    def whoami(me: Principal = read) -> dict[str, str]:
        return {"name": me.name, "role": me.role.value}

    # ---- fleet --------------------------------------------------------------------------------------
    @router.get("/vehicles")
    def get_vehicles(
        depot: str | None = None,
        region: str | None = None,
        climate_zone: str | None = None,
        tag: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        _: Principal = read,
    ) -> list[dict[str, object]]:
        found = fleet.list_vehicles(
            db, depot=depot, region=region, climate_zone=climate_zone, tag=tag, limit=limit
        )
        return [v.to_json() for v in found]

    @router.post("/vehicles/import", status_code=201)
    def import_vehicles(body: VehicleImport, me: Principal = fleet_write) -> dict[str, int]:
        rows = parse_vehicle_csv(body.csv)
        return {"imported": fleet.import_vehicles(db, rows, dep.clock.now(), actor=me.name)}

    @router.post("/vehicles/{vin}/provision", status_code=201)
    def provision(vin: str, body: ProvisionBody, me: Principal = fleet_write) -> dict[str, str]:
        identity = VehicleIdentity(
            vin,
            body.primary_serial,
            tuple(EcuIdentity(e.serial, e.ecu_type, e.hardware_id, e.public_key) for e in body.ecus),
        )
        token = devices.provision(db, dep.director, identity, actor=me.name, now=dep.clock.now())
        return {"vin": vin, "token": token}

    # ---- releases -----------------------------------------------------------------------------------
    @router.get("/releases")
    def get_releases(_: Principal = read) -> list[dict[str, Any]]:
        return [b.to_json() for b in dep.images.bundles()]

    # ---- campaigns ----------------------------------------------------------------------------------
    @router.get("/campaigns")
    def get_campaigns(_: Principal = read) -> list[dict[str, object]]:
        return [c.to_json() for c in campaigns.list_campaigns(db)]

    @router.post("/campaigns", status_code=201)
    def create_campaign(body: CampaignBody, me: Principal = campaign_write) -> dict[str, object]:
        if not any(b.meta.name == body.release for b in dep.images.bundles()):
            raise InputError(f"release {body.release} is not in the image repository")
        summary = campaigns.create_campaign(
            db,
            name=body.name,
            release=body.release,
            selector=campaigns.Selector.from_dict(body.selector.model_dump()),
            waves=body.waves,
            policy=_policy(body.policy),
            created_by=me.name,
            now=dep.clock.now(),
            gate=body.gate,
        )
        return summary.to_json()

    @router.get("/campaigns/{name}")
    def get_campaign(name: str, _: Principal = read) -> dict[str, object]:
        return campaigns.campaign_summary(db, name).to_json()

    @router.get("/campaigns/{name}/report")
    def get_campaign_report(name: str, _: Principal = read) -> dict[str, object]:
        """The deployment report (as `evota campaign report --json`)."""
        return dict(reports.campaign_report(db, name, now=dep.clock.now()).to_json())

    def move(event: CampaignEvent, permission: Any) -> None:
        @router.post(f"/campaigns/{{name}}/{event.value}", name=f"campaign_{event.value}")
        def route(name: str, me: Principal = permission) -> dict[str, object]:
            return campaigns.move_campaign(db, name, event, actor=me.name, now=dep.clock.now()).to_json()

    move(CampaignEvent.APPROVE, approve)
    for event in (CampaignEvent.START, CampaignEvent.PAUSE, CampaignEvent.RESUME, CampaignEvent.ABORT):
        move(event, campaign_write)

    # ---- audit --------------------------------------------------------------------------------------
    @router.get("/audit")
    def get_audit(
        after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="Sequence number to page from.")] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        _: Principal = read,
    ) -> list[dict[str, object]]:
        return [e.to_json() for e in audit.list_entries(db, limit=limit, after=after)]

    @router.get("/audit/verify")
    def verify_audit(_: Principal = read) -> dict[str, object]:
        entries = audit.list_entries(db)
        problems = verify_chain(entries)
        head = {"seq": entries[-1].seq, "hash": entries[-1].hash} if entries else None
        return {"intact": not problems, "problems": problems, "entries": len(entries), "head": head}

    # ---- users --------------------------------------------------------------------------------------
    @router.get("/users")
    def get_users(_: Principal = user_admin) -> list[dict[str, object]]:
        return [u.to_json() for u in users.list_users(db)]

    @router.post("/users", status_code=201)
    def add_user(body: UserBody, me: Principal = user_admin) -> dict[str, str]:
        token = users.add_user(db, body.name, body.role.value, actor=me.name, now=dep.clock.now())
        return {"name": body.name, "token": token}

    @router.post("/users/{name}/tokens", status_code=201)
    def add_token(name: str, body: TokenBody, me: Principal = user_admin) -> dict[str, str]:
        token = users.issue_token(db, name, label=body.label, actor=me.name, now=dep.clock.now())
        return {"name": name, "token": token}

    @router.delete("/users/{name}/tokens")
    def revoke(name: str, label: str | None = None, me: Principal = user_admin) -> dict[str, int]:
        return {"revoked": users.revoke_tokens(db, name, label=label, actor=me.name, now=dep.clock.now())}

    return router
