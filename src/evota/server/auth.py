"""Bearer-token authentication for the two APIs, as FastAPI dependencies.

Operator routes declare the permission they need (`requires(Permission.…)`); the route table
is then the access-control table, and a test walks it. Device routes take a device token
and act as that vehicle only: the VIN comes from the token, never from the request body.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from evota.clock import Clock
from evota.domain.access import Permission, allows
from evota.security.errors import AuthenticationError, PermissionDeniedError
from evota.server.services.devices import authenticate_device
from evota.server.services.users import Principal, authenticate_user
from evota.server.store.db import Database

__all__ = ["DeviceAuth", "OperatorAuth"]

_bearer = HTTPBearer(auto_error=False, description="An operator token (evu_…) from `evota user add`.")
_device_bearer = HTTPBearer(
    scheme_name="DeviceToken", auto_error=False, description="A vehicle token (evd_…) issued at provisioning."
)

Credentials = HTTPAuthorizationCredentials | None


def _token(credentials: Credentials) -> str:
    if credentials is None or not credentials.credentials:
        raise AuthenticationError("send 'Authorization: Bearer <token>'")
    return credentials.credentials


class OperatorAuth:
    """Builds the permission dependencies of the operator routes for one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def requires(self, permission: Permission) -> Callable[..., Principal]:
        def dependency(credentials: Annotated[Credentials, Depends(_bearer)]) -> Principal:
            principal = authenticate_user(self.db, _token(credentials))
            if not allows(principal.role, permission):
                raise PermissionDeniedError(
                    f"{principal.name} ({principal.role.value}) lacks the {permission.value} permission"
                )
            return principal

        dependency.required_permission = permission  # type: ignore[attr-defined]  # read by the access test
        return dependency


class DeviceAuth:
    """The device-token dependency: the VIN the token was issued to."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def vin(self, credentials: Annotated[Credentials, Depends(_device_bearer)]) -> str:
        return authenticate_device(self.db, _token(credentials))

    def now(self) -> dt.datetime:
        return self.clock.now()
