"""Chargers as evota sees them: identities, OCPP versions, connector states, sessions.

Pure rules over values; the CSMS (`server/ocpp/`) and the charger registry
(`server/services/chargers.py`) call them. Nothing here knows about websockets or a database.

What a session's success means is decided here, once, because a campaign's post-update
gate compares the success rate of updated chargers with that of control chargers: a session
succeeds when it delivered energy and did not end on a fault.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Sequence

from evota.errors import InputError

__all__ = [
    "FAULT_STOP_REASONS",
    "ConnectorStatus",
    "Protocol",
    "negotiate",
    "normalise_connector_status",
    "parse_ocpp_time",
    "session_succeeded",
    "validate_charge_point_id",
    "validate_site",
]

# OCPP 2.0.1 limits the station identity to 48 characters; it is the last path segment of
# the websocket URL and the basic-auth user name, so it must be safe in both.
_CHARGE_POINT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")
_SITE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def validate_charge_point_id(value: str) -> str:
    if not isinstance(value, str) or not _CHARGE_POINT_ID.fullmatch(value):
        raise InputError(
            f"charge point id {value!r} has an unknown format "
            "(1-48 letters, digits, '.', '_' or '-', starting with a letter or digit)"
        )
    return value


def validate_site(value: str) -> str:
    if not isinstance(value, str) or not _SITE.fullmatch(value):
        raise InputError(f"site {value!r} has an unknown format (expected e.g. 'berlin-north')")
    return value


class Protocol(enum.StrEnum):
    """The OCPP versions evota speaks, by the version string the `ocpp` package uses."""

    V16 = "1.6"  # OCPP 1.6J with the security extension (white paper edition 3)
    V201 = "2.0.1"

    @property
    def subprotocol(self) -> str:
        """The websocket subprotocol name (RFC 6455 Sec-WebSocket-Protocol)."""
        return f"ocpp{self.value}"


def negotiate(offered: Sequence[str]) -> Protocol | None:
    """The version to speak with a charger that offers these subprotocols (the newest we
    share), or None if it offers none of ours. Names compare case-sensitively, as RFC 6455
    tokens do."""
    for protocol in (Protocol.V201, Protocol.V16):
        if protocol.subprotocol in offered:
            return protocol
    return None


class ConnectorStatus(enum.StrEnum):
    """A connector's state, on one scale for both versions (1.6's finer states fold into
    2.0.1's: Preparing … Finishing are Occupied)."""

    AVAILABLE = "Available"
    OCCUPIED = "Occupied"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


_V16_OCCUPIED = frozenset({"Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing"})


def normalise_connector_status(status: str) -> ConnectorStatus:
    """The common status for a 1.6 ChargePointStatus or a 2.0.1 ConnectorStatusEnumType."""
    if status in _V16_OCCUPIED:
        return ConnectorStatus.OCCUPIED
    try:
        return ConnectorStatus(status)
    except ValueError:
        raise InputError(f"unknown connector status {status!r}") from None


# Stop reasons that mean the session broke rather than ended (1.6 Reason and 2.0.1
# ReasonEnumType; a driver or the EV stopping, a limit reached, are normal ends).
FAULT_STOP_REASONS = frozenset(
    {
        "EmergencyStop",
        "GroundFault",
        "HardReset",
        "ImmediateReset",
        "OvercurrentFault",
        "PowerLoss",
        "PowerQuality",
        "Reboot",
        "SoftReset",
        "Timeout",
    }
)


def session_succeeded(energy_wh: float, stop_reason: str | None) -> bool:
    """A session succeeded if it delivered energy and did not stop on a fault."""
    return energy_wh > 0 and (stop_reason or "Local") not in FAULT_STOP_REASONS


def parse_ocpp_time(value: object) -> dt.datetime | None:
    """An OCPP dateTime (RFC 3339, UTC 'Z' or an offset) as an aware datetime; None if
    absent or unreadable (a bad timestamp is the charger's problem, not a reason to refuse
    the message: the CSMS then uses its own clock)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else None
