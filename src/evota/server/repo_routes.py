"""Serving the Uptane repositories over HTTP, in the TUF layout any TUF client expects.

    GET /repo/image/metadata/{N.root|timestamp|N.snapshot|N.targets}.json
    GET /repo/image/targets/{dir}/{hash}.{name}           (HTTP Range supported)
    GET /repo/director/{VIN}/metadata/{…}.json

Names are matched against a fixed pattern before any file is touched; anything else is a
404, which is also what tells a TUF client that no newer root exists.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from evota.deployment import Deployment

__all__ = ["repo_router"]

_JSON = "application/json"


def _metadata_response(path: Path | None, name: str) -> FileResponse:
    if path is None:
        raise HTTPException(status_code=404, detail=f"no metadata {name}")
    # Versioned files never change; timestamp.json and the unversioned root.json do.
    cache = "no-store" if name in ("timestamp.json", "root.json") else "public, max-age=31536000, immutable"
    return FileResponse(path, media_type=_JSON, headers={"Cache-Control": cache})


def repo_router(dep: Deployment) -> APIRouter:
    router = APIRouter(prefix="/repo", tags=["repositories"])

    @router.get("/image/metadata/{name}")
    def image_metadata(name: str) -> FileResponse:
        if name == "timestamp.json":
            dep.images.refresh_if_due()
        return _metadata_response(dep.images.metadata_file(name), name)

    @router.get("/image/targets/{path:path}")
    def image_target(path: str) -> FileResponse:
        found = dep.images.target_file(path)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no target {path}")
        return FileResponse(found, media_type="application/octet-stream")

    @router.get("/director/{vin}/metadata/{name}")
    def director_metadata(vin: str, name: str) -> FileResponse:
        return _metadata_response(dep.director.metadata_file(vin, name), name)

    return router
