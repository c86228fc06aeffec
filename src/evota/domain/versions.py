"""Firmware versions and the constraints releases place on each other ("vcms>=3.1,<4").

Versions follow PEP 440 ordering through `packaging`, which also accepts the semver forms
ECU suppliers ship ("2.4.0", "2.4.0-rc1", "3.1"). A constraint names an ECU type and a
specifier set; it is what the compatibility matrix evaluates.
"""

from __future__ import annotations

import dataclasses
import re

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from evota.errors import InputError

__all__ = ["Requirement", "parse_requirement", "parse_version"]

_REQUIREMENT = re.compile(r"^\s*([a-z][a-z0-9]{1,15})\s*((?:[<>=!~]=?|===).+)$")


def parse_version(text: str) -> Version:
    """Parse a firmware version, with an operator-readable error."""
    try:
        return Version(text)
    except InvalidVersion:
        raise InputError(f"version {text!r} is not a valid version (expected e.g. '2.4.0')") from None


@dataclasses.dataclass(frozen=True)
class Requirement:
    """`ecu_type` must run a version inside `specifier` for the image to be installable."""

    ecu_type: str
    specifier: SpecifierSet

    def allows(self, version: str | Version) -> bool:
        v = version if isinstance(version, Version) else parse_version(version)
        return self.specifier.contains(v, prereleases=True)

    def __str__(self) -> str:
        # Sorted clauses so the same constraint always prints (and signs) the same way.
        return self.ecu_type + ",".join(sorted(str(s) for s in self.specifier))


def parse_requirement(text: str) -> Requirement:
    """Parse "vcms>=3.1" or "vcms>=3.1,<4"; a malformed constraint is an InputError."""
    match = _REQUIREMENT.match(text or "")
    if not match:
        raise InputError(
            f"constraint {text!r} is malformed (expected an ECU type and versions, e.g. 'vcms>=3.1,<4')"
        )
    ecu_type, spec = match.groups()
    try:
        specifier = SpecifierSet(spec.replace(" ", ""))
    except InvalidSpecifier:
        raise InputError(f"constraint {text!r} is malformed (expected e.g. 'vcms>=3.1,<4')") from None
    if not len(specifier):
        raise InputError(f"constraint {text!r} names no version")
    return Requirement(ecu_type, specifier)
