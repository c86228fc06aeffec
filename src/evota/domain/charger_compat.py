"""Vehicle–charger compatibility: which charger firmware is certified for what, and whether a
vehicle's depot chargers are.

A certification says that a charger model, over a range of firmware versions, is certified
for a capability (ISO 15118-20 bidirectional power transfer, say): `Certification("iso15118-20-
bidirectional", "Acme", "AC22", ">=2.1,<3")`. A vehicle release that activates V2X needs the
chargers it will meet to be certified, or a discharge session may end on a charger that does
not implement the protocol correctly. Vehicles have a `depot`; chargers a `site`; a vehicle's
depot chargers are the chargers whose site is that depot.

`depot_hold_reason` is the question a vehicle campaign asks before it offers a release that
requires a capability: None if every charger at the vehicle's depot is certified (a vehicle
may plug into any of them), else the reason in words. Pure: values in, an answer out.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from evota.errors import InputError

__all__ = [
    "ISO15118_20_BIDIRECTIONAL",
    "Certification",
    "ChargerFacts",
    "charger_hold_reason",
    "depot_hold_reason",
    "validate_capability",
]

ISO15118_20_BIDIRECTIONAL = "iso15118-20-bidirectional"
_CAPABILITY = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


def validate_capability(value: str) -> str:
    if not isinstance(value, str) or not _CAPABILITY.fullmatch(value):
        raise InputError(f"capability {value!r}: 2-64 lower-case letters, digits, '.', '_' or '-'")
    return value


@dataclasses.dataclass(frozen=True)
class Certification:
    capability: str
    vendor: str
    model: str
    versions: str  # a version range, e.g. ">=2.1,<3"

    def __post_init__(self) -> None:
        validate_capability(self.capability)
        try:
            SpecifierSet(self.versions)
        except InvalidSpecifier:
            raise InputError(f"versions {self.versions!r} is not a version range (e.g. '>=2.1,<3')") from None

    def covers(self, vendor: str | None, model: str | None, firmware_version: str | None) -> bool:
        if vendor != self.vendor or model != self.model or not firmware_version:
            return False
        try:
            return SpecifierSet(self.versions).contains(Version(firmware_version), prereleases=True)
        except InvalidVersion:
            return False  # a version that cannot be ordered is in no range


@dataclasses.dataclass(frozen=True)
class ChargerFacts:
    charge_point_id: str
    vendor: str | None
    model: str | None
    firmware_version: str | None

    def __str__(self) -> str:
        runs = f"{self.vendor or '?'} {self.model or '?'} {self.firmware_version or '?'}"
        return f"{self.charge_point_id} ({runs})"


def charger_hold_reason(
    charger: ChargerFacts, capability: str, certifications: Sequence[Certification]
) -> str | None:
    """None if some certification for `capability` covers what the charger runs now."""
    for cert in certifications:
        if cert.capability == capability and cert.covers(
            charger.vendor, charger.model, charger.firmware_version
        ):
            return None
    return f"{charger} is not certified for {capability}"


def depot_hold_reason(
    capability: str, depot: str, chargers: Sequence[ChargerFacts], certifications: Sequence[Certification]
) -> str | None:
    """Why a vehicle of `depot` must not get a release that needs `capability` (None: it may).

    `chargers` are the chargers at that depot (site == depot). None of them, or any one not
    certified for what it runs now, holds the vehicle.
    """
    if not chargers:
        return f"charger: no charger registered at depot {depot} to check for {capability}"
    missing = [
        r
        for c in sorted(chargers, key=lambda c: c.charge_point_id)
        if (r := charger_hold_reason(c, capability, certifications))
    ]
    if not missing:
        return None
    more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
    return f"charger: at depot {depot}, {missing[0]}{more}"
