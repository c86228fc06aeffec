"""The compatibility matrix: whole releases and version constraints, judged on the state a
vehicle would be in after an update.

Pure functions over what each ECU runs (or would run). They return problems, not errors, so
the vehicle can refuse with its own error types and the campaign server can show why a
vehicle is held ("bms/2.4.0/x requires vcms>=3.1; vcms runs 3.0.0").

`hold_reason` is the server's question before it offers a release to a vehicle of the
registry ("held: incompatible (vcms 3.0 < 3.1)").

The rules:
- Every `requires` of an image being installed must hold afterwards; an ECU whose version is
  unknown does not satisfy it.
- An update must not break a `requires` of an image that stays installed and held before.
- Every release the director names must be whole afterwards, and an image being installed
  that belongs to any release must leave at least one of its releases whole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence

from evota.domain.registry import EcuSpec
from evota.domain.release import BundleMeta, ImageMeta
from evota.domain.versions import Requirement, parse_version

__all__ = [
    "EcuImage",
    "Unmet",
    "incomplete_releases",
    "install_rank",
    "unmet_requirements",
    "update_problems",
]


@dataclasses.dataclass(frozen=True)
class EcuImage:
    """What one ECU runs, or will run: the image path and its metadata when known."""

    serial: str
    ecu_type: str
    path: str | None
    meta: ImageMeta | None

    @property
    def version(self) -> str | None:
        return self.meta.version if self.meta else None


@dataclasses.dataclass(frozen=True)
class Unmet:
    """A requirement of the image on `serial` that the other ECUs do not meet."""

    serial: str
    path: str
    requirement: Requirement
    found: str  # what the required ECU type runs, in words

    def __str__(self) -> str:
        return f"{self.path} requires {self.requirement}; {self.requirement.ecu_type} {self.found}"


def unmet_requirements(state: Sequence[EcuImage]) -> list[Unmet]:
    """Every `requires` of every known image in `state`, checked against `state` itself."""
    versions: dict[str, list[str | None]] = {}
    for ecu in state:
        versions.setdefault(ecu.ecu_type, []).append(ecu.version)
    out = []
    for ecu in state:
        if ecu.meta is None or ecu.path is None:
            continue
        for req in ecu.meta.requires:
            found = versions.get(req.ecu_type)
            if not found:
                out.append(Unmet(ecu.serial, ecu.path, req, "is not in the vehicle"))
                continue
            for version in found:
                if version is None:
                    out.append(Unmet(ecu.serial, ecu.path, req, "runs an unknown version"))
                elif not req.allows(parse_version(version)):
                    out.append(Unmet(ecu.serial, ecu.path, req, f"would run {version}"))
    return out


def incomplete_releases(
    after: Sequence[EcuImage],
    bundles: Mapping[str, BundleMeta],
    named: Sequence[str],
    installing: Collection[str],
) -> list[str]:
    """Why the state after the update would not hold whole releases (empty if it does).

    `bundles` maps release target paths to their metadata; `named` are the releases the
    director says it is installing; `installing` the image paths being installed.
    """
    present = {e.path for e in after if e.path}
    problems = []
    for name in named:
        bundle = bundles.get(name)
        if bundle is None:
            problems.append(f"release {name} is unknown to the image repository")
        elif missing := [i for i in bundle.images if i not in present]:
            problems.append(f"release {bundle.name} would be incomplete: missing {', '.join(missing)}")
    for path in sorted(set(installing)):
        containing = [b for b in bundles.values() if path in b.images]
        if containing and not any(set(b.images) <= present for b in containing):
            names = ", ".join(sorted(b.name for b in containing))
            problems.append(f"{path} must install together with the rest of release {names}")
    return problems


def install_rank(
    after: Sequence[EcuImage], bundles: Mapping[str, BundleMeta], named: Sequence[str]
) -> dict[str, int]:
    """Position of each image in the install order: the order of the releases it completes,
    the named releases first. Images in no whole release are not ranked (they go last)."""
    present = {e.path for e in after if e.path}
    whole = [b for path, b in sorted(bundles.items()) if set(b.images) <= present]
    first = [bundles[n] for n in named if n in bundles]
    rank: dict[str, int] = {}
    for bundle in [*first, *whole]:
        for i, image in enumerate(bundle.images):
            rank.setdefault(image, i)
    return rank


def update_problems(
    before: Sequence[EcuImage],
    after: Sequence[EcuImage],
    installing: Collection[str],
) -> list[Unmet]:
    """Requirements the update leaves unmet: those of images being installed, and those of
    images staying installed that held before the update (an update must not break them)."""
    unmet_before = {(u.serial, str(u.requirement)) for u in unmet_requirements(before)}
    changed = {e.serial for e in after if e.path in installing}
    return [
        u
        for u in unmet_requirements(after)
        if u.serial in changed or (u.serial, str(u.requirement)) not in unmet_before
    ]


# The clause a version fails, said the way an operator reads it: "vcms 3.0 < 3.1".
_NEGATION = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!=", "!=": "==", "~=": "not ~=", "===": "!=="}


def _failed_clause(req: Requirement, version: str) -> str:
    for clause in sorted(req.specifier, key=str):
        if not clause.contains(version, prereleases=True):
            negated = _NEGATION.get(clause.operator, f"not {clause.operator}")
            return f"{req.ecu_type} {version} {negated} {clause.version}"
    return f"{req.ecu_type} {version} not {req}"


def hold_reason(ecus: Sequence[EcuSpec], release: Sequence[tuple[str, ImageMeta]]) -> str | None:
    """Why `release` must not be offered to a vehicle with `ecus` (None: it may be).

    Each image goes to the vehicle's ECUs of its type and hardware; the others keep what they
    run. The release is held when an image fits no ECU, or when a `requires` of one of its
    images fails on the versions after the update, unless the release itself brings the
    needed version (that ECU is then updated too).
    """
    new_version: dict[str, str] = {}
    for path, meta in release:
        fits = [e for e in ecus if e.ecu_type == meta.ecu_type and e.hardware_id in meta.hardware_ids]
        if not fits:
            hardware = "/".join(meta.hardware_ids)
            return f"incompatible (no {meta.ecu_type} ECU with hardware {hardware} for {path})"
        new_version.update({e.serial: meta.version for e in fits})
    after: dict[str, list[str | None]] = {}
    for e in ecus:
        after.setdefault(e.ecu_type, []).append(new_version.get(e.serial, e.installed_version))
    for _, meta in release:
        for req in meta.requires:
            versions = after.get(req.ecu_type)
            if not versions:
                return f"incompatible (no {req.ecu_type} in the vehicle)"
            for version in versions:
                if version is None:
                    return f"incompatible ({req.ecu_type} version unknown)"
                if not req.allows(parse_version(version)):
                    return f"incompatible ({_failed_clause(req, version)})"
    return None
