"""Access control, route by route: the test the issue asks for ("a test lists every operator
route and shows each refuses a token without the role").

The route table is the access-control table (`auth.OperatorAuth.requires` tags each operator
route's dependency with `required_permission`), so this test walks the app's real routes and
compares them with `ROUTES` below, the reviewed list of every operator route and the
permission it needs. A new route without a permission dependency, or one whose permission
changed, fails here until it is added to that list on purpose. Then every route is called
with a token of every role, with no token, with a revoked or unknown token, with a device
token and with a non-bearer scheme; and every device route with each operator token.

The probes send requests that pass FastAPI's validation (checked: an admitted role must get an
evota answer, never a Pydantic 422), so "admitted" means the request reached the handler.
That matters because FastAPI solves dependencies before it validates the parameters and the
body: a refused token is refused whatever the body, but a sloppy probe would make an admitted
role look refused or admitted for the wrong reason. (Only a body that is not JSON at all is
rejected before the token is looked at, with a 422, or a 400 if it is not even UTF-8: see
`test_malformed_json_is_rejected_before_the_token_is_checked`.)

Runs on SQLite only, as one module-scoped app: the permission check is Python over one
indexed token lookup that `test_rollout_api.py` already runs on both backends, and a second
backend here would double ~240 requests to re-test FastAPI's routing rather than the database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from httpx2 import Response  # what starlette.testclient returns (see pyproject.toml)

from evota.clock import SimClock
from evota.deployment import Deployment, init_home
from evota.domain.access import ROLE_PERMISSIONS, Permission, Role
from evota.domain.planner import RolloutPolicy
from evota.domain.registry import parse_vehicle_csv
from evota.server.app import create_app
from evota.server.auth import DeviceAuth, OperatorAuth
from evota.server.services import campaigns, devices, fleet, users
from evota.server.services.tokens import DEVICE_PREFIX, USER_PREFIX
from evota.server.store.db import Database, open_database

from ..conftest import START, make_vehicle

P = Permission
RELEASE = "energy-2026-11"
CAMPAIGN = "probe-campaign"
CHARGER_CAMPAIGN = "probe-charger-campaign"
HEADER = "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n"
ECUS = "gateway:GW-1:gw-tcu4:1.0.0|bms:BMS-1:bms-gen2:2.3.0|vcms:VCMS-1:vcms-gen3:3.0.0"
DEVICE_VIN = "WVWZZZ1JZ3W000001"  # provisioned: its token is the device token used below
PROVISIONED_VIN = "WVWZZZ1JZ3W000002"  # the provisioning probe's target
IMPORTED_VIN = "WVWZZZ1JZ3W000003"  # the import probe's row
TARGET_USER = "dora"  # whose tokens the user-admin probes issue and revoke (never a prober)
# Keys made once at import: the provisioning probe must send the same keys every time, or the
# second admitted role would be refused for "other keys" instead of reaching the same handler.
PROBED_VEHICLE = make_vehicle(PROVISIONED_VIN)


@dataclasses.dataclass(frozen=True)
class Probe:
    """One route (as the route table names it) and a request that passes its validation."""

    method: str
    path: str
    permission: Permission
    url: str = ""
    body: Any = None

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def _provision_body() -> dict[str, Any]:
    return {
        "primary_serial": PROBED_VEHICLE.identity.primary_serial,
        "ecus": [
            {
                "serial": e.serial,
                "ecu_type": e.ecu_type,
                "hardware_id": e.hardware_id,
                "public_key": e.public_key,
            }
            for e in PROBED_VEHICLE.identity.ecus
        ],
    }


# Every operator route and the permission it needs: the reviewed access-control table.
ROUTES = [
    Probe("GET", "/api/v1/whoami", P.READ),
    Probe("GET", "/api/v1/vehicles", P.READ, "/api/v1/vehicles?depot=berlin&limit=10"),
    Probe(
        "POST",
        "/api/v1/vehicles/import",
        P.FLEET_WRITE,
        body={"csv": f"{HEADER}{IMPORTED_VIN},eVan-3,berlin,eu,cold,Europe/Berlin,,{ECUS}\n"},
    ),
    Probe(
        "POST",
        "/api/v1/vehicles/{vin}/provision",
        P.FLEET_WRITE,
        f"/api/v1/vehicles/{PROVISIONED_VIN}/provision",
        _provision_body(),
    ),
    Probe("GET", "/api/v1/releases", P.READ),
    Probe("GET", "/api/v1/campaigns", P.READ),
    Probe(
        "POST",
        "/api/v1/campaigns",
        P.CAMPAIGN_WRITE,
        body={"name": "probe-created", "release": RELEASE, "waves": [50, 100]},
    ),
    Probe("GET", "/api/v1/campaigns/{name}", P.READ, f"/api/v1/campaigns/{CAMPAIGN}"),
    Probe("GET", "/api/v1/campaigns/{name}/report", P.READ, f"/api/v1/campaigns/{CAMPAIGN}/report"),
    Probe(
        "POST",
        "/api/v1/campaigns/{name}/approve",
        P.CAMPAIGN_APPROVE,
        f"/api/v1/campaigns/{CAMPAIGN}/approve",
    ),
    Probe("POST", "/api/v1/campaigns/{name}/start", P.CAMPAIGN_WRITE, f"/api/v1/campaigns/{CAMPAIGN}/start"),
    Probe("POST", "/api/v1/campaigns/{name}/pause", P.CAMPAIGN_WRITE, f"/api/v1/campaigns/{CAMPAIGN}/pause"),
    Probe(
        "POST", "/api/v1/campaigns/{name}/resume", P.CAMPAIGN_WRITE, f"/api/v1/campaigns/{CAMPAIGN}/resume"
    ),
    Probe("POST", "/api/v1/campaigns/{name}/abort", P.CAMPAIGN_WRITE, f"/api/v1/campaigns/{CAMPAIGN}/abort"),
    Probe("GET", "/api/v1/audit", P.READ, "/api/v1/audit?after=0&limit=5"),
    Probe("GET", "/api/v1/audit/verify", P.READ),
    Probe("GET", "/api/v1/users", P.USER_ADMIN),
    Probe("POST", "/api/v1/users", P.USER_ADMIN, body={"name": "probe-added", "role": "viewer"}),
    Probe(
        "POST",
        "/api/v1/users/{name}/tokens",
        P.USER_ADMIN,
        f"/api/v1/users/{TARGET_USER}/tokens",
        {"label": "probe"},
    ),
    Probe(
        "DELETE",
        "/api/v1/users/{name}/tokens",
        P.USER_ADMIN,
        f"/api/v1/users/{TARGET_USER}/tokens?label=probe",
    ),
    # chargers (server/charger_api.py)
    Probe("GET", "/api/v1/chargers", P.READ, "/api/v1/chargers?site=north"),
    Probe("GET", "/api/v1/chargers/{charge_point_id}", P.READ, "/api/v1/chargers/CP1"),
    Probe("GET", "/api/v1/chargers/{charge_point_id}/firmware", P.READ, "/api/v1/chargers/CP1/firmware"),
    Probe("GET", "/api/v1/charger-firmware", P.READ),
    Probe("GET", "/api/v1/charger-campaigns", P.READ),
    Probe(
        "POST",
        "/api/v1/charger-campaigns",
        P.CAMPAIGN_WRITE,
        body={"name": "probe-cc-created", "model": "AC22", "version": "2.0.0", "waves": [100]},
    ),
    Probe("GET", "/api/v1/charger-campaigns/{name}", P.READ, f"/api/v1/charger-campaigns/{CHARGER_CAMPAIGN}"),
    *(
        Probe(
            "POST",
            f"/api/v1/charger-campaigns/{{name}}/{event}",
            P.CAMPAIGN_APPROVE if event == "approve" else P.CAMPAIGN_WRITE,
            f"/api/v1/charger-campaigns/{CHARGER_CAMPAIGN}/{event}",
        )
        for event in ("approve", "start", "pause", "resume", "abort", "roll_back")
    ),
    Probe("GET", "/api/v1/charger-certifications", P.READ),
    Probe(
        "POST",
        "/api/v1/charger-certifications",
        P.RELEASE_WRITE,
        body={
            "capability": "iso15118-20-bidirectional",
            "vendor": "Acme",
            "model": "AC22",
            "versions": ">=2",
        },
    ),
]
ROUTES = [dataclasses.replace(p, url=p.url or p.path) for p in ROUTES]

DEVICE_ROUTES = [
    Probe("POST", "/api/v1/device/checkin", P.READ, body={"manifest": {}}),  # permission unused
    Probe(
        "POST",
        "/api/v1/device/steps",
        P.READ,
        body={"release": RELEASE, "step": "downloading", "at": START.isoformat()},
    ),
    Probe("POST", "/api/v1/device/telemetry", P.READ, body={"samples": []}),
]
DEVICE_ROUTES = [dataclasses.replace(p, url=p.path) for p in DEVICE_ROUTES]

# Routes anyone may call: the health probe and the Uptane repositories (TUF metadata is
# signed, images are verified by hash; the repositories are public by design).
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/repo/image/metadata/{name}"),
    ("GET", "/repo/image/targets/{path:path}"),
    ("GET", "/repo/director/{vin}/metadata/{name}"),
    ("GET", "/charger-firmware/{sha256}/{name}"),  # signed images; the signature comes over OCPP
}

# Which roles each permission admits, written out on its own so that a change to
# `ROLE_PERMISSIONS` is a reviewed change here too (`test_roles_grant_the_reviewed_permissions`).
ADMITTED: dict[Permission, set[Role]] = {
    P.READ: set(Role),
    P.FLEET_WRITE: {Role.OPERATOR, Role.ADMIN},
    P.CAMPAIGN_WRITE: {Role.OPERATOR, Role.RELEASE_MANAGER, Role.ADMIN},
    P.CAMPAIGN_APPROVE: {Role.APPROVER, Role.ADMIN},
    P.RELEASE_WRITE: {Role.RELEASE_MANAGER, Role.ADMIN},
    P.USER_ADMIN: {Role.ADMIN},
}


# ---- walking the route table ----------------------------------------------------------------------
def api_routes(app: FastAPI) -> Iterator[tuple[str, str, Dependant]]:
    """(method, path, dependant) of every endpoint of `app`, however its routers are nested.

    FastAPI 0.137 stopped copying included routes into `app.routes` (it keeps one node per
    included router); `iter_route_contexts` (0.137.2) is its public way to flatten them, with
    the prefixes and router-level dependencies applied. Before that, `app.routes` was flat.
    """
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # FastAPI < 0.137: included routes are copied into app.routes
        contexts: list[Any] = list(app.routes)
    else:
        contexts = list(iter_route_contexts(app.routes))
    for context in contexts:
        if isinstance(getattr(context, "original_route", context), APIRoute):
            for method in sorted(context.methods):
                yield method, context.path, context.dependant


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)


@dataclasses.dataclass
class RouteTable:
    operator: dict[tuple[str, str], Permission]
    device: set[tuple[str, str]]
    public: set[tuple[str, str]]
    unguarded: list[str]  # neither: each one fails the test


def route_table(app: FastAPI) -> RouteTable:
    """Classify every endpoint by the guard found in its dependency tree."""
    table = RouteTable({}, set(), set(), [])
    for method, path, dependant in api_routes(app):
        key = (method, path)
        calls = [d.call for d in _dependencies(dependant)]
        permissions = {p for c in calls if (p := getattr(c, "required_permission", None)) is not None}
        device = any(getattr(c, "__func__", None) is DeviceAuth.vin for c in calls)
        if len(permissions) == 1 and not device:
            table.operator[key] = permissions.pop()
        elif device and not permissions and path.startswith("/api/v1/device/"):
            table.device.add(key)
        elif key in PUBLIC and not permissions and not device:
            table.public.add(key)
        else:
            table.unguarded.append(
                f"{method} {path} (permissions {sorted(permissions)}, device auth {device})"
            )
    return table


# ---- the app under test ---------------------------------------------------------------------------
@dataclasses.dataclass
class Access:
    client: TestClient
    app: FastAPI
    db: Database
    tokens: dict[Role, str]
    revoked: str  # an admin's token that was revoked: only the revocation refuses it
    device: str
    revoked_device: str

    def call(self, probe: Probe, headers: dict[str, str] | None = None) -> Response:
        return self.client.request(probe.method, probe.url, json=probe.body, headers=headers or {})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _publish(dep: Deployment, folder: Path) -> None:
    folder.mkdir()
    paths = []
    for name, ecu_type, hardware, version in (
        ("vcms-3.1.0.bin", "vcms", "vcms-gen3", "3.1.0"),
        ("bms-2.4.0.bin", "bms", "bms-gen2", "2.4.0"),
    ):
        (folder / name).write_bytes(name.encode() * 64)
        image = dep.images.add_image(
            folder / name, ecu_type=ecu_type, hardware_ids=[hardware], version=version
        )
        paths.append(image.path)
    dep.images.add_bundle(RELEASE, paths)


@pytest.fixture(scope="module")
def access(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Access]:
    folder = tmp_path_factory.mktemp("access")
    clock = SimClock(START)
    dep = init_home(folder / "home", clock)
    _publish(dep, folder / "firmware")
    db = open_database(f"sqlite:///{folder / 'evota.db'}")
    now = clock.now()
    try:
        tokens = {
            role: users.add_user(db, f"probe-{role.value}", role.value, actor="test", now=now)
            for role in Role
        }
        users.add_user(db, TARGET_USER, "viewer", actor="test", now=now)
        revoked = users.add_user(db, "gone", "admin", actor="test", now=now)
        assert users.revoke_tokens(db, "gone", actor="test", now=now) == 1
        rows = "".join(
            f"{vin},eVan-3,berlin,eu,cold,Europe/Berlin,,{ECUS}\n" for vin in (DEVICE_VIN, PROVISIONED_VIN)
        )
        fleet.import_vehicles(db, parse_vehicle_csv(HEADER + rows), now, actor="test")
        car = make_vehicle(DEVICE_VIN)
        revoked_device = devices.provision(db, dep.director, car.identity, actor="test", now=now)
        device = devices.provision(db, dep.director, car.identity, actor="test", now=now)  # revokes the first
        campaigns.create_campaign(
            db,
            name=CAMPAIGN,
            release=RELEASE,
            selector=campaigns.Selector(),
            waves=[100],
            policy=RolloutPolicy(),
            created_by="creator",  # not a prober: every approver-role prober may approve
            now=now,
        )
        _charger_campaign(dep, db, folder, now)
        app = create_app(dep, db, refresh_interval_s=None, tick_interval_s=None, charger_interval_s=None)
        with TestClient(app) as client:
            yield Access(client, app, db, tokens, revoked, device, revoked_device)
    finally:
        db.dispose()


def _charger_campaign(dep: Deployment, db: Database, folder: Path, now: Any) -> None:
    """A booted charger, a signed image and a draft charger campaign for the charger probes."""
    from cryptography.hazmat.primitives import serialization

    from evota.domain.charger_campaign import ChargerPolicy
    from evota.security.firmware_signing import FirmwarePki
    from evota.server.services import charger_campaigns, chargers, csms
    from evota.server.services.firmware import add_firmware

    pki = FirmwarePki(dep.home.path, dep.keys)
    root = pki.init(now=now)
    image = folder / "ac22-2.0.0.bin"
    image.write_bytes(b"ac22" * 100)
    add_firmware(
        db, pki, dep.home.path, path=image, vendor="Acme", model="AC22", version="2.0.0", actor="t", now=now
    )
    chargers.add_charger(db, charge_point_id="CP1", site="north", time_zone="UTC", actor="t", now=now)
    boot = csms.Boot(
        vendor="Acme", model="AC22", firmware_version="1.0.0", serial_number=None, reason="PowerUp"
    )
    csms.record_boot(db, "CP1", boot, now=now)
    charger_campaigns.create_campaign(
        db,
        dep.home.path,
        root.public_bytes(serialization.Encoding.PEM),
        name=CHARGER_CAMPAIGN,
        vendor="Acme",
        model="AC22",
        version="2.0.0",
        selector=charger_campaigns.ChargerSelector(),
        waves=[100],
        policy=ChargerPolicy(),
        created_by="creator",
        now=now,
    )


# ---- the route table is the reviewed table ---------------------------------------------------------
def test_every_route_is_guarded_and_the_operator_routes_are_the_reviewed_table(access: Access) -> None:
    """Walk the live app: each endpoint is an operator route with one permission, a device route
    with the device token, or a listed public route; the operator routes and their permissions
    are exactly `ROUTES`."""
    table = route_table(access.app)
    assert table.unguarded == []
    assert table.operator == {(p.method, p.path): p.permission for p in ROUTES}
    assert table.device == {(p.method, p.path) for p in DEVICE_ROUTES}
    assert table.public == PUBLIC


def test_the_route_walk_finds_a_nested_route_without_a_permission(access: Access) -> None:
    """The walk must not go blind (FastAPI's included-router nodes hid every route once): an
    unguarded route two routers deep is reported, a guarded one beside it is classified."""
    app = FastAPI()
    outer, inner = APIRouter(prefix="/api/v1"), APIRouter(prefix="/fleet")

    fleet_write = Depends(OperatorAuth(access.db).requires(P.FLEET_WRITE))

    @inner.get("/guarded")
    def guarded(_: Any = fleet_write) -> None: ...

    @inner.post("/open")
    def unguarded() -> None: ...

    outer.include_router(inner)
    app.include_router(outer)
    table = route_table(app)
    assert table.operator == {("GET", "/api/v1/fleet/guarded"): P.FLEET_WRITE}
    assert table.unguarded == ["POST /api/v1/fleet/open (permissions [], device auth False)"]


def test_roles_grant_the_reviewed_permissions() -> None:
    for permission, roles in ADMITTED.items():
        assert {r for r in Role if permission in ROLE_PERMISSIONS[r]} == roles, permission


# ---- every operator route, every role ---------------------------------------------------------------
@pytest.mark.parametrize("role", list(Role), ids=str)
@pytest.mark.parametrize("probe", ROUTES, ids=lambda p: p.id)
def test_each_operator_route_admits_exactly_the_roles_with_its_permission(
    access: Access, probe: Probe, role: Role
) -> None:
    r = access.call(probe, bearer(access.tokens[role]))
    if role in ADMITTED[probe.permission]:
        assert r.status_code not in (401, 403) and r.status_code < 500, r.text
        # Reached the handler: not refused by FastAPI's validation of the probe itself.
        assert "detail" not in r.json(), r.text
    else:
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
        assert "www-authenticate" not in r.headers


@pytest.mark.parametrize("probe", ROUTES, ids=lambda p: p.id)
def test_each_operator_route_asks_for_a_bearer_token_when_none_is_sent(access: Access, probe: Probe) -> None:
    r = access.call(probe)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize("credential", ["revoked", "device", "unknown", "basic", "empty"])
@pytest.mark.parametrize("probe", ROUTES, ids=lambda p: p.id)
def test_each_operator_route_refuses_a_token_that_is_not_a_live_user_token(
    access: Access, probe: Probe, credential: str
) -> None:
    headers = {
        "revoked": bearer(access.revoked),  # an admin's: the revocation alone refuses it
        "device": bearer(access.device),  # a live device token is no user token
        "unknown": bearer(USER_PREFIX + "x" * 43),
        "basic": {"Authorization": f"Basic {access.tokens[Role.ADMIN]}"},  # the admin's, wrong scheme
        "empty": {"Authorization": "Bearer "},
    }[credential]
    r = access.call(probe, headers)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthenticated"


# ---- the device routes ------------------------------------------------------------------------------
@pytest.mark.parametrize("probe", DEVICE_ROUTES, ids=lambda p: p.id)
def test_each_device_route_accepts_the_device_token(access: Access, probe: Probe) -> None:
    """The control for the refusals below: the same request with the vehicle's token gets past
    authentication (a check-in with an empty manifest is then refused for the manifest)."""
    r = access.call(probe, bearer(access.device))
    assert r.status_code not in (401, 422) and r.status_code < 500, r.text
    assert "detail" not in r.json(), r.text


@pytest.mark.parametrize("credential", [*Role, "none", "revoked", "unknown"], ids=str)
@pytest.mark.parametrize("probe", DEVICE_ROUTES, ids=lambda p: p.id)
def test_each_device_route_refuses_operator_and_dead_tokens(
    access: Access, probe: Probe, credential: Role | str
) -> None:
    if isinstance(credential, Role):
        headers = bearer(access.tokens[credential])
    else:
        headers = {
            "none": {},
            "revoked": bearer(access.revoked_device),  # replaced by re-provisioning
            "unknown": bearer(DEVICE_PREFIX + "x" * 43),
        }[credential]
    r = access.call(probe, headers)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthenticated"


def test_malformed_json_is_rejected_before_the_token_is_checked(access: Access) -> None:
    """FastAPI parses a JSON body before it solves dependencies: a body that is not JSON gets
    a 422 even without a token. Pinned so that the ordering the probes above rely on (a valid
    JSON body of any shape reaches the token check first) is visible if FastAPI changes it."""
    garbled = {"Content-Type": "application/json"}
    r = access.client.post("/api/v1/users", content=b"{not json", headers=garbled)
    assert r.status_code == 422
    r = access.client.post("/api/v1/users", json={"unexpected": True})
    assert r.status_code == 401
    r = access.client.post(
        "/api/v1/users", json={"unexpected": True}, headers=bearer(access.tokens[Role.VIEWER])
    )
    assert r.status_code == 403
