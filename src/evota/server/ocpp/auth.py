"""HTTP basic auth on the websocket handshake (OCPP security profiles 1 and 2).

The user name must be the charge point id of the URL (OCPP 2.0.1 A00.FR.205; the 1.6
security white paper says the same), so one charger's password never opens another's
session. Parsing is pure; checking the password is `services.chargers.authenticate_charger`.
"""

from __future__ import annotations

import base64
import binascii

from evota.security.errors import AuthenticationError

__all__ = ["basic_credentials"]

MAX_HEADER = 1024


def basic_credentials(header: str | None, charge_point_id: str) -> str:
    """The password in an `Authorization: Basic …` header sent by `charge_point_id`.

    Raises:
        AuthenticationError: no header, not basic, malformed, or another charger's name.
    """
    if not header:
        raise AuthenticationError("no Authorization header: chargers authenticate with basic auth")
    if len(header) > MAX_HEADER:
        raise AuthenticationError("Authorization header too long")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        raise AuthenticationError("chargers authenticate with basic auth")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationError("malformed basic auth credentials") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise AuthenticationError("malformed basic auth credentials")
    if user != charge_point_id:
        raise AuthenticationError(f"basic auth user {user!r} is not the charge point id {charge_point_id!r}")
    return password
