"""`GET /charger-firmware/<sha256>/<name>`: the images chargers download.

Public, as the Uptane repositories are: an image is useless without its signature and
certificate, which only reach chargers inside an authenticated OCPP session, and a station
verifies the signature over the whole file before installing it. HTTP Range is served (a
station may resume a download), by Starlette's file response.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from evota.deployment import Deployment
from evota.server.services.firmware import firmware_file

__all__ = ["firmware_router"]


def firmware_router(dep: Deployment) -> APIRouter:
    router = APIRouter(tags=["chargers"])

    @router.get("/charger-firmware/{sha256}/{name}", response_class=FileResponse)
    def download(sha256: str, name: str) -> FileResponse:
        path = firmware_file(dep.home.path, sha256, name)
        if path is None:
            raise HTTPException(status_code=404, detail="no such charger firmware")
        return FileResponse(path, media_type="application/octet-stream", filename=name)

    return router
