"""The agent's port to the server, and its HTTP adapter.

The agent needs five things of the server: check in (signed manifest, energy state,
consents), report a step, send telemetry, read both repositories' metadata (through
python-tuf's fetcher port), and read a target's bytes from an offset (HTTP Range, so a cut
transfer resumes). `ServerPort` is that interface; `HttpServer` speaks it over HTTP with
httpx. The fleet simulator gives the agent an in-process adapter of the same port.

Every request has a timeout and every body a size cap: a vehicle on a bad link must not hang
or fill its disk on what a server (or a man in the middle) sends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import httpx
from tuf.ngclient import FetcherInterface

from evota.agent.errors import DownloadError, ProvisioningError, ServerError

__all__ = ["HttpServer", "ServerPort", "target_url_path"]

MAX_RESPONSE_BYTES = 1 << 20
CHUNK = 64 * 1024


def target_url_path(path: str, sha256: str) -> str:
    """A target's consistent-snapshot name under the targets URL: `<dir>/<sha256>.<name>`."""
    folder, _, name = path.rpartition("/")
    return f"{folder}/{sha256}.{name}" if folder else f"{sha256}.{name}"


class ServerPort(Protocol):
    @property
    def director_metadata_url(self) -> str: ...

    @property
    def image_metadata_url(self) -> str: ...

    @property
    def image_targets_url(self) -> str: ...

    def fetcher(self) -> FetcherInterface | None:
        """The python-tuf fetcher to read metadata with (None: ngclient's own, over HTTP)."""
        ...

    def check_in(self, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def report_step(self, body: Mapping[str, Any]) -> None: ...

    def send_telemetry(self, body: Mapping[str, Any]) -> None: ...

    def fetch_target(self, path: str, sha256: str, start: int) -> Iterator[bytes]:
        """The target's bytes from offset `start` (DownloadError on any transport failure)."""
        ...


class HttpServer:
    """`ServerPort` over HTTP: `base_url` is the server's root (http://host:port)."""

    def __init__(self, base_url: str, *, vin: str, token: str, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.vin = vin
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout_s),
        )

    @property
    def director_metadata_url(self) -> str:
        return f"{self.base_url}/repo/director/{self.vin}/metadata/"

    @property
    def image_metadata_url(self) -> str:
        return f"{self.base_url}/repo/image/metadata/"

    @property
    def image_targets_url(self) -> str:
        return f"{self.base_url}/repo/image/targets/"

    def fetcher(self) -> FetcherInterface | None:
        return None

    def close(self) -> None:
        self._client.close()

    def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.post(path, json=dict(body))
        except httpx.HTTPError as e:
            raise ServerError(f"{self.base_url}{path}: {e}") from e
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise ServerError(f"{path}: response larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            payload = response.json() if response.content else {}
        except ValueError:
            payload = {}
        if response.status_code == 401:
            raise ProvisioningError(f"the server refused this vehicle's token: {payload.get('message', '')}")
        if response.status_code >= 400:
            message = payload.get("message") or payload.get("detail") or response.text[:200]
            raise ServerError(f"{path}: {response.status_code} {message}", status=response.status_code)
        return payload if isinstance(payload, dict) else {}

    def check_in(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._post("/api/v1/device/checkin", body)

    def report_step(self, body: Mapping[str, Any]) -> None:
        self._post("/api/v1/device/steps", body)

    def send_telemetry(self, body: Mapping[str, Any]) -> None:
        self._post("/api/v1/device/telemetry", body)

    def fetch_target(self, path: str, sha256: str, start: int) -> Iterator[bytes]:
        url = self.image_targets_url + target_url_path(path, sha256)
        headers = {"Range": f"bytes={start}-"} if start else {}
        with _transport_errors(url), self._client.stream("GET", url, headers=headers) as response:
            if response.status_code == 416:
                return  # nothing past `start`: the caller's length check decides
            if response.status_code not in (200, 206):
                raise DownloadError(f"{url}: HTTP {response.status_code}")
            if start and response.status_code == 200:
                raise DownloadError(f"{url}: the server ignored the Range request", bad_data=True)
            yield from response.iter_bytes(CHUNK)


@contextlib.contextmanager
def _transport_errors(url: str) -> Iterator[None]:
    try:
        yield
    except httpx.HTTPError as e:
        raise DownloadError(f"{url}: {e}") from e
