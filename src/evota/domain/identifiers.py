"""Identifiers evota accepts, and their formats.

They end up in URLs (`/repo/director/<VIN>/…`), file names and signed metadata, so each is
checked strictly at the edge: a value that passes here is safe in all three places.
"""

from __future__ import annotations

import re

from evota.errors import InputError

__all__ = [
    "validate_ecu_serial",
    "validate_ecu_type",
    "validate_hardware_id",
    "validate_name",
    "validate_vin",
]

# ISO 3779: 17 characters, digits and capitals without I, O and Q.
_VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
# An ECU type is a short lower-case word: bms, vcms, tms, obc, gateway, dcdc.
_ECU_TYPE = re.compile(r"^[a-z][a-z0-9]{1,15}$")
# A hardware id names a board family and revision: bms-gen2, vcms-b1, obc-11kw.rev3.
_HARDWARE_ID = re.compile(r"^[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*$")
# An ECU serial is what the ECU reports; generous, but safe in a path and a URL.
_ECU_SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Release (bundle) names.
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def _check(pattern: re.Pattern[str], value: str, what: str, example: str, max_len: int = 64) -> str:
    if not isinstance(value, str) or len(value) > max_len or not pattern.fullmatch(value):
        raise InputError(f"{what} {value!r} has an unknown format (expected e.g. {example!r})")
    return value


def validate_vin(value: str) -> str:
    return _check(_VIN, value, "VIN", "WVWZZZ1JZ3W386752", 17)


def validate_ecu_type(value: str) -> str:
    return _check(_ECU_TYPE, value, "ECU type", "bms", 16)


def validate_hardware_id(value: str) -> str:
    return _check(_HARDWARE_ID, value, "hardware id", "bms-gen2")


def validate_ecu_serial(value: str) -> str:
    return _check(_ECU_SERIAL, value, "ECU serial", "BMS-000123")


def validate_name(value: str) -> str:
    return _check(_NAME, value, "release name", "spring-2026-energy")
