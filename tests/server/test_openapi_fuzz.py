"""schemathesis against the server's own OpenAPI document, in process: the issue's "schemathesis
runs against the OpenAPI in the test suite and finds no server error".

Every operation gets schemathesis's phases (the document's examples, the coverage phase's
boundary and schema-violating values, then random fuzzing, positive and negative), as the
admin for operator routes and as a provisioned vehicle for device routes, and every response
goes through all of schemathesis's checks: no 5xx, status codes and bodies as documented (the
error shape included: `app.API_ERRORS`), content types and `Allow` headers as documented,
schema-violating requests refused, credentials enforced. One check is tuned, not dropped:
`positive_data_acceptance` also accepts a 422, because evota refuses schema-valid requests
that break its own rules (a release that is not published, a VIN of the wrong format, a
campaign moved out of order); those answers still have to match the documented error body.

The app, its home and SQLite database are built when this module is imported, the way
schemathesis's pytest integration is documented: it reads the schema at import, and its
coverage phase builds cases (credentials included) while pytest collects. (Its lazy
`from_fixture` loader cannot help: it reads `Node._nodeid`, which pytest 9 removed.) SQLite
only: the fuzzing looks for handlers that turn bad input into a 500 and for answers that
contradict the document, which is backend-independent code; backend-specific findings get
a regression test below on both backends (see `test_non_finite_numbers_are_refused_...`).

Deterministic: a fixed seed, derandomized Hypothesis, no example database, a bounded number
of examples per operation. The findings the fuzzing made are pinned by the regression tests at
the end, so they stay fixed even if a later schemathesis release generates other inputs.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi.testclient import TestClient

from evota.clock import SimClock
from evota.deployment import Deployment, init_home
from evota.domain.registry import parse_vehicle_csv
from evota.errors import NotFoundError
from evota.security.errors import AuthenticationError
from evota.server.app import create_app
from evota.server.operator_api import MAX_SEQ
from evota.server.services import devices, fleet, users
from evota.server.services.campaigns import campaign_summary
from evota.server.store.db import Database, open_database

from ..conftest import START, Published, make_vehicle
from .test_access import api_routes

EXAMPLES = 40  # per operation and phase: the fuzzing takes about 25 s
HEADER = "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n"
ECUS = "gateway:GW-1:gw-tcu4:1.0.0|bms:BMS-1:bms-gen2:2.3.0|vcms:VCMS-1:vcms-gen3:3.0.0"
VINS = ("WVWZZZ1JZ3W000001", "WVWZZZ1JZ3W000002")  # the first one is provisioned
ADMIN = "fuzz-admin"
RELEASE = "energy-2026-11"


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


def _import(db: Database, now: Any) -> None:
    rows = "".join(f"{vin},eVan-3,berlin,eu,cold,Europe/Berlin,pilot,{ECUS}\n" for vin in VINS)
    fleet.import_vehicles(db, parse_vehicle_csv(HEADER + rows), now, actor="test")


def _chargers(dep: Deployment, db: Database, folder: Path, now: Any) -> None:
    """A signing key, an image and a booted charger, so charger campaign bodies can succeed."""
    from evota.security.firmware_signing import FirmwarePki
    from evota.server.services import chargers, csms
    from evota.server.services.firmware import add_firmware

    pki = FirmwarePki(dep.home.path, dep.keys)
    pki.init(now=now)
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


# ---- the app under test, built at import (see the module docstring) --------------------------------
_FOLDER = tempfile.TemporaryDirectory(prefix="evota-fuzz-")
_CLOCK = SimClock(START)
_DEP = init_home(Path(_FOLDER.name) / "home", _CLOCK)
_publish(_DEP, Path(_FOLDER.name) / "firmware")
_DB = open_database(f"sqlite:///{Path(_FOLDER.name) / 'evota.db'}")
_import(_DB, _CLOCK.now())
ADMIN_TOKEN = users.add_user(_DB, ADMIN, "admin", actor="test", now=_CLOCK.now())
DEVICE_TOKEN = devices.provision(
    _DB, _DEP.director, make_vehicle(VINS[0]).identity, actor="test", now=_CLOCK.now()
)
_chargers(_DEP, _DB, Path(_FOLDER.name), _CLOCK.now())
APP = create_app(_DEP, _DB, refresh_interval_s=None, tick_interval_s=None, charger_interval_s=None)

schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    APP,
    config=schemathesis.Config.from_dict(
        {
            "seed": 20261122,
            "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
            # One token per security scheme the document declares: the operator routes'
            # bearer and the device routes' (`auth.py`).
            "auth": {
                "openapi": {"HTTPBearer": {"bearer": ADMIN_TOKEN}, "DeviceToken": {"bearer": DEVICE_TOKEN}}
            },
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
                }
            },
        }
    ),
)


@schema.hook
def filter_path_parameters(_: schemathesis.HookContext, path_parameters: dict[str, Any] | None) -> bool:
    """Never name the acting admin in a path: `DELETE /users/fuzz-admin/tokens` (its name is in
    every `GET /users`, which the fuzzer reuses) would revoke the token the run acts with and
    turn the rest of it into 401s. `test_api` checks that the tokens stay live."""
    return not path_parameters or path_parameters.get("name") != ADMIN


@schema.hook
def map_case(_: schemathesis.HookContext, case: schemathesis.Case[Any]) -> schemathesis.Case[Any]:
    """Name the published release in valid campaign bodies: a random name stops at "not in the
    image repository", and the selector, waves and policy rules behind it would go untested."""
    meta = case.meta
    if (
        case.operation.path == "/api/v1/campaigns"
        and case.method.upper() == "POST"
        and meta is not None
        and meta.generation.mode.is_positive
        and isinstance(case.body, dict)
    ):
        case.body["release"] = RELEASE
    if (
        case.operation.path == "/api/v1/charger-campaigns"
        and case.method.upper() == "POST"
        and meta is not None
        and meta.generation.mode.is_positive
        and isinstance(case.body, dict)
    ):
        case.body.update(model="AC22", version="2.0.0", vendor="Acme")
    return case


@pytest.fixture(scope="module", autouse=True)
def _home() -> Iterator[None]:
    """Close the database and remove the home once the module's tests are done."""
    yield
    _DB.dispose()
    _FOLDER.cleanup()


def _assert_tokens_live() -> None:
    try:
        users.authenticate_user(_DB, ADMIN_TOKEN)
        devices.authenticate_device(_DB, DEVICE_TOKEN)
    except AuthenticationError as e:  # the rest of the run would only test the 401 path
        pytest.fail(f"the fuzzing revoked its own credentials: {e}")


@schema.parametrize()
@hypothesis.settings(deadline=None, derandomize=True, database=None)
def test_api(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate()
    _assert_tokens_live()


def test_the_fuzzing_covers_every_api_route() -> None:
    """Every route the app serves under /api/v1 is in the document the fuzzing reads: a route
    left out of it (`include_in_schema=False`) would silently escape the fuzzing."""
    documented = {(m.upper(), p) for p, ops in APP.openapi()["paths"].items() for m in ops}
    served = {(m, p) for m, p, _ in api_routes(APP) if p.startswith("/api/v1/")}
    assert served and served <= documented


# ---- regression tests for what the fuzzing found ------------------------------------------------------
@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(APP) as c:
        yield c


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def device() -> dict[str, str]:
    return {"Authorization": f"Bearer {DEVICE_TOKEN}"}


def test_an_audit_page_after_a_sequence_number_beyond_any_column_is_a_422(client: TestClient) -> None:
    """Found: `?after=9223372036854775808` reached SQLite, which cannot bind the number (500)."""
    r = client.get(f"/api/v1/audit?after={MAX_SEQ + 1}&limit=1", headers=admin())
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "after"]
    r = client.get(f"/api/v1/audit?after={MAX_SEQ}&limit=1", headers=admin())
    assert r.status_code == 200 and r.json() == []


@pytest.mark.parametrize("at", [0, 1_700_000_000, 1.5, "1700000000", "2026-11-22", "not a time", True])
def test_a_timestamp_must_be_rfc3339_text(client: TestClient, at: object) -> None:
    """Found: `{"samples": [{"at": 0, …}]}` was stored as 1970-01-01 (Pydantic reads numbers as
    Unix time, seconds or milliseconds by size); a date without a time or offset is no instant."""
    for path, body in (
        ("/api/v1/device/telemetry", {"samples": [{"at": at, "kpis": {"soc_error_pct": 1.0}}]}),
        ("/api/v1/device/steps", {"release": RELEASE, "step": "downloading", "at": at}),
    ):
        r = client.post(path, json=body, headers=device())
        assert r.status_code == 422, (path, r.text)
        assert "detail" in r.json()  # refused by the schema, before any handler ran


def test_a_timestamp_with_an_offset_is_accepted(client: TestClient) -> None:
    """The control for the refusals above."""
    for at in ("2026-11-22T08:00:00Z", "2026-11-22T09:00:00+01:00", "2026-11-22T08:00:00.123456+00:00"):
        body = {"samples": [{"at": at, "kpis": {"soc_error_pct": 1.0}}]}
        r = client.post("/api/v1/device/telemetry", json=body, headers=device())
        assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "energy",
    [
        {"soc_pct": "80"},  # text where a number belongs
        {"charging": "false"},  # text where a boolean belongs: "false" would have read as False…
        {"plugged_in": 1},  # …and 1 as True
        {"ambient_c": True},
    ],
    ids=str,
)
def test_device_scalars_are_not_coerced(client: TestClient, energy: dict[str, Any]) -> None:
    """Same class as the timestamps: an agent's wrong type is refused, not guessed at."""
    body = {
        "manifest": {},
        "energy": {
            "soc_pct": 80.0,
            "charging": False,
            "plugged_in": True,
            "gear": "P",
            "ambient_c": 12,  # a JSON integer is a number: still accepted
            "at": START.isoformat(),
            **energy,
        },
    }
    r = client.post("/api/v1/device/checkin", json=body, headers=device())
    assert r.status_code == 422 and "detail" in r.json(), r.text
    r = client.post(
        "/api/v1/device/telemetry",
        json={"samples": [{"at": START.isoformat(), "kpis": {"x": "1.5"}}]},
        headers=device(),
    )
    assert r.status_code == 422 and "detail" in r.json(), r.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/api/v1/device/checkin",
            '{"manifest": {}, "energy": {"soc_pct": NaN, "charging": false, "plugged_in": true, '
            f'"gear": "P", "ambient_c": 12, "at": "{START.isoformat()}"}}}}',
        ),
        (
            "/api/v1/device/telemetry",
            f'{{"samples": [{{"at": "{START.isoformat()}", "kpis": {{"x": Infinity}}}}]}}',
        ),
    ],
)
def test_a_non_finite_number_in_a_device_body_is_a_422(client: TestClient, path: str, body: str) -> None:
    """Found while fixing the policy's NaN: FastAPI's own 422 echoes the refused input, and
    rendering NaN as JSON raised, so `"soc_pct": NaN` was a 500 before any evota code ran."""
    r = client.post(path, content=body, headers={**device(), "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["input"] in ("nan", "inf")


def test_a_wrong_method_lists_every_method_of_the_path_in_allow(client: TestClient) -> None:
    """Found: `OPTIONS /api/v1/campaigns` answered `Allow: GET`, though POST is served too
    (Starlette names only the first route on the path)."""
    for method, path, allowed in (
        ("OPTIONS", "/api/v1/campaigns", "GET, POST"),
        ("PUT", "/api/v1/users", "GET, POST"),
        ("PATCH", "/api/v1/users/dora/tokens", "DELETE, POST"),
        ("GET", "/api/v1/device/checkin", "POST"),
        ("DELETE", "/healthz", "GET"),
    ):
        r = client.request(method, path, headers=admin())
        assert r.status_code == 405, (method, path)
        assert r.headers["allow"] == allowed, (method, path)


def test_every_api_route_documents_the_error_answers() -> None:
    """Found: 401, 403, 404 and evota's own 422 body were missing from the document, so a
    client generated from it knew none of the error answers."""
    paths = APP.openapi()["paths"]
    for path, operations in paths.items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            assert {"400", "401", "403", "404", "422", "503"} <= set(operation["responses"]), (method, path)
            schema_422 = operation["responses"]["422"]["content"]["application/json"]["schema"]
            assert {s["$ref"].rsplit("/", 1)[1] for s in schema_422["anyOf"]} == {
                "ErrorBody",
                "ValidationErrorBody",
            }


# ---- on both backends: the 500 was PostgreSQL's ----------------------------------------------------------
@pytest.fixture
def backend_client(
    dep: Deployment, db: Database, published: Published, clock: SimClock
) -> Iterator[TestClient]:
    _import(db, clock.now())
    with TestClient(create_app(dep, db, refresh_interval_s=None, tick_interval_s=None)) as c:
        c.headers["Authorization"] = (
            f"Bearer {users.add_user(db, ADMIN, 'admin', actor='test', now=clock.now())}"
        )
        yield c


@pytest.mark.parametrize(
    ("where", "literal"),
    [
        ("preconditions.ambient_min_c", "NaN"),
        ("preconditions.ambient_max_c", "Infinity"),
        ("preconditions.min_soc_pct", "NaN"),
        ("dwell_s", "-Infinity"),
    ],
)
def test_non_finite_numbers_are_refused_before_they_reach_the_database(
    backend_client: TestClient, db: Database, where: str, literal: str
) -> None:
    """Python's JSON parser takes NaN and Infinity. In a campaign policy NaN slipped past the
    domain's checks written as comparisons (the ambient range is empty if `min > max`, false
    for NaN) and PostgreSQL then refused the stored policy: a 500 there, and on SQLite an
    ambient gate that could never hold a vehicle. Now the schema refuses every non-finite
    number, including those the domain did catch, before any handler runs."""
    policy: dict[str, Any] = {"preconditions": {}}
    *parents, leaf = where.split(".")
    target = policy
    for key in parents:
        target = target[key]
    target[leaf] = "__HERE__"
    body = json.dumps({"name": "nan-probe", "release": RELEASE, "policy": policy}).replace(
        '"__HERE__"', literal
    )
    r = backend_client.post("/api/v1/campaigns", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert "detail" in r.json()  # refused by the schema: nothing reached the domain or the database
    with pytest.raises(NotFoundError):
        campaign_summary(db, "nan-probe")
