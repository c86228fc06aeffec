"""The HTTP surface of the repositories: layout, caching, ranges, and refusals."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from evota.clock import SimClock
from evota.deployment import Deployment
from tests.conftest import Published, Vehicle


def test_metadata_and_targets_are_served_in_the_tuf_layout(
    dep: Deployment, published: Published, server: str
) -> None:
    with httpx.Client(base_url=server) as http:
        assert http.get("/repo/image/metadata/1.root.json").status_code == 200
        ts = http.get("/repo/image/metadata/timestamp.json")
        assert ts.status_code == 200 and ts.headers["cache-control"] == "no-store"
        assert http.get("/repo/image/metadata/2.root.json").status_code == 404  # end of the root chain
        name = published.bms.path.rpartition("/")
        url = f"/repo/image/targets/{name[0]}/{published.bms.hashes['sha256']}.{name[2]}"
        body = http.get(url)
        assert body.status_code == 200 and len(body.content) == published.bms.length
        sha512_url = f"/repo/image/targets/{name[0]}/{published.bms.hashes['sha512']}.{name[2]}"
        assert http.get(sha512_url).content == body.content


def test_unversioned_root_json_is_the_current_root(dep: Deployment, vehicle: Vehicle, server: str) -> None:
    from evota.security.rotation import RotatableRole, rotate

    rotate(dep, RotatableRole.TIMESTAMP)
    rotate(dep, RotatableRole.DIRECTOR)
    with httpx.Client(base_url=server) as http:
        image = http.get("/repo/image/metadata/root.json")
        director = http.get(f"/repo/director/{vehicle.vin}/metadata/root.json")
    assert image.json()["signed"]["version"] == 2 and image.content == dep.images.trust_root()
    assert image.headers["cache-control"] == "no-store"  # it changes at every rotation
    assert director.json()["signed"]["version"] == 2 and director.content == dep.director.trust_root()


def test_targets_support_http_range_for_resumable_downloads(
    dep: Deployment, published: Published, server: str
) -> None:
    name = published.vcms.path.rpartition("/")
    url = f"{server}/repo/image/targets/{name[0]}/{published.vcms.hashes['sha256']}.{name[2]}"
    whole = httpx.get(url).content
    part = httpx.get(url, headers={"Range": "bytes=1000-"})
    assert part.status_code == 206
    assert part.content == whole[1000:]


@pytest.mark.parametrize(
    "path",
    [
        "/repo/image/metadata/../../evota.toml",
        "/repo/image/metadata/evota.toml",
        "/repo/image/metadata/root.json.bak",
        "/repo/image/targets/../../../evota.toml",
        "/repo/image/targets/%2e%2e/%2e%2e/evota.toml",
        "/repo/image/targets/.incoming",
        "/repo/director/WVWZZZ1JZ3W386752/metadata/../vehicle.json",
        "/repo/director/..%2F..%2Fkeys/metadata/timestamp.json",
        "/repo/director/NOT-A-VIN/metadata/timestamp.json",
    ],
)
def test_nothing_outside_the_repositories_is_served(
    dep: Deployment, published: Published, vehicle: Vehicle, server: str, path: str
) -> None:
    response = httpx.get(server + path)
    assert response.status_code == 404
    assert b"PRIVATE KEY" not in response.content


def test_director_timestamp_is_re_signed_when_half_its_life_is_spent(
    dep: Deployment, vehicle: Vehicle, server: str, clock: SimClock
) -> None:
    url = f"{server}/repo/director/{vehicle.vin}/metadata/timestamp.json"
    first = httpx.get(url).json()["signed"]
    clock.advance(dt.timedelta(hours=13))
    second = httpx.get(url).json()["signed"]
    assert second["version"] > first["version"]
    assert second["expires"] > first["expires"]
