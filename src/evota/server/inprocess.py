"""The agent's `ServerPort` served in-process: the fleet simulator's adapter.

The simulator runs thousands of real agents against the real server services on one
simulated clock; going through HTTP would spend most of its time in sockets and make the
clock's steps race the server thread. This adapter is the same server, minus the socket:

- every body is serialised to JSON and validated by the device API's own Pydantic models
  (`model_validate_json`), so the strictness of the wire (no coercion, no NaN) holds here too;
- the token is authenticated on every call, as `DeviceAuth` does, and the VIN comes from it;
- the handlers are the routes' own (`device_api.handle_*`), and errors are mapped to the
  statuses the HTTP error handler gives (`app.error_status`), so the agent's reactions to a
  refused report (drop it) or an unknown token (provisioning error) are exercised unchanged;
- metadata and targets are read from the files `repo_routes` would serve, through a python-tuf
  fetcher, so the agent's Uptane verification is the production one, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from tuf.api import exceptions as tuf_exceptions
from tuf.ngclient import FetcherInterface

from evota.agent.errors import DownloadError, ProvisioningError, ServerError
from evota.agent.transport import CHUNK, target_url_path
from evota.deployment import Deployment
from evota.errors import EvotaError
from evota.security.errors import AuthenticationError
from evota.server.app import error_status
from evota.server.device_api import (
    CheckInBody,
    StepBody,
    TelemetryBody,
    handle_check_in,
    handle_step,
    handle_telemetry,
)
from evota.server.services.devices import authenticate_device
from evota.server.store.db import Database

__all__ = ["InProcessFetcher", "InProcessServer"]

_SCHEME = "inproc://"
_Body = TypeVar("_Body", bound=BaseModel)


class InProcessFetcher(FetcherInterface):
    """python-tuf's fetcher over the repositories' files (`inproc://image/metadata/NAME`,
    `inproc://director/VIN/metadata/NAME`); a missing file is a 404, as over HTTP."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep

    def _fetch(self, url: str) -> Iterator[bytes]:
        parts = url.removeprefix(_SCHEME).split("/")
        path = None
        if parts[:2] == ["image", "metadata"] and len(parts) == 3:
            if parts[2] == "timestamp.json":
                self.dep.images.refresh_if_due()
            path = self.dep.images.metadata_file(parts[2])
        elif parts[0] == "director" and len(parts) == 4 and parts[2] == "metadata":
            path = self.dep.director.metadata_file(parts[1], parts[3])
        if path is None:
            raise tuf_exceptions.DownloadHTTPError(f"no metadata {url}", 404)
        return iter([path.read_bytes()])


class InProcessServer:
    """`ServerPort` for one vehicle, calling the device API's handlers directly."""

    def __init__(self, dep: Deployment, db: Database, *, vin: str, token: str) -> None:
        self.dep = dep
        self.db = db
        self.vin = vin
        self._token = token
        self._fetcher = InProcessFetcher(dep)

    @property
    def director_metadata_url(self) -> str:
        return f"{_SCHEME}director/{self.vin}/metadata/"

    @property
    def image_metadata_url(self) -> str:
        return f"{_SCHEME}image/metadata/"

    @property
    def image_targets_url(self) -> str:
        return f"{_SCHEME}image/targets/"

    def fetcher(self) -> FetcherInterface | None:
        return self._fetcher

    def close(self) -> None:
        pass

    def _call(
        self,
        path: str,
        model: type[_Body],
        body: Mapping[str, Any],
        handler: Callable[[Deployment, Database, str, _Body], dict[str, object]],
    ) -> dict[str, Any]:
        try:
            vin = authenticate_device(self.db, self._token)
        except AuthenticationError as e:
            raise ProvisioningError(f"the server refused this vehicle's token: {e}") from e
        try:
            parsed = model.model_validate_json(json.dumps(dict(body)))
        except (ValidationError, ValueError) as e:
            raise ServerError(f"{path}: 422 {e}", status=422) from e
        try:
            result = handler(self.dep, self.db, vin, parsed)
        except EvotaError as e:
            status = error_status(e)
            raise ServerError(f"{path}: {status} {e}", status=status) from e
        # What the agent gets back is what JSON would carry.
        payload = json.loads(json.dumps(result))
        return payload if isinstance(payload, dict) else {}

    def check_in(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("/api/v1/device/checkin", CheckInBody, body, handle_check_in)

    def report_step(self, body: Mapping[str, Any]) -> None:
        self._call("/api/v1/device/steps", StepBody, body, handle_step)

    def send_telemetry(self, body: Mapping[str, Any]) -> None:
        self._call("/api/v1/device/telemetry", TelemetryBody, body, handle_telemetry)

    def fetch_target(self, path: str, sha256: str, start: int) -> Iterator[bytes]:
        name = target_url_path(path, sha256)
        found = self.dep.images.target_file(name)
        if found is None:
            raise DownloadError(f"{self.image_targets_url}{name}: HTTP 404")
        with found.open("rb") as f:
            f.seek(start)
            while chunk := f.read(CHUNK):
                yield chunk
