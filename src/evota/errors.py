"""The root of evota's error tree.

    EvotaError                      every failure evota reports to an operator
     ├── InputError                 bad input from the user: a file, a flag, a body
     │    ├── NotFoundError         what the input names does not exist (a campaign, a VIN)
     │    └── ReleaseRejectedError  a release that must not be published (version, format)
     ├── ConfigError                a home that is missing, incomplete or inconsistent
     ├── KeyUnavailableError        a signing key that is needed is not at hand (offline)
     └── evota.security.errors.SecurityError   (see there: verification and attacks)

Each error has a stable `code` (safe to put on a wire or in a log query) and a message
written for a fleet operator. Misuse of an API by evota's own code raises the builtin
`RuntimeError`/`ValueError` instead: that is a bug, not an operator's problem.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EvotaError",
    "InputError",
    "KeyUnavailableError",
    "NotFoundError",
    "ReleaseRejectedError",
]


class EvotaError(Exception):
    """Base of every error evota reports; carries a stable machine-readable `code`."""

    code = "evota_error"
    default_message = "evota failed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self)


class InputError(EvotaError):
    code = "input_error"
    default_message = "invalid input"


class NotFoundError(InputError):
    code = "not_found"
    default_message = "not found"


class ReleaseRejectedError(InputError):
    code = "release_rejected"
    default_message = "release rejected"


class ConfigError(EvotaError):
    code = "config_error"
    default_message = "the evota home is not usable"


class KeyUnavailableError(EvotaError):
    code = "key_unavailable"
    default_message = "a signing key is not available"
