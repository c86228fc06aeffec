"""Images, release bundles, and the rules for publishing them.

An *image* is one file for one ECU type and a set of hardware ids. A *release* (bundle)
names images that must install together, in order. Both are published as TUF targets in
the image repository; the metadata here is what evota signs into each target's `custom`
field under the key "evota", so a vehicle can check it after full verification.

The release counter is Uptane's defence against rollback by a compromised director: every
image published for an ECU type gets a counter above those of all images sharing one of its
hardware ids, and a vehicle never accepts a lower counter than it runs. A deliberate
downgrade is therefore published as a *new* image (old version, higher counter) with its
reason signed in.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from evota.domain.identifiers import validate_ecu_type, validate_hardware_id, validate_name
from evota.domain.policy import InstallPolicy
from evota.domain.versions import Requirement, parse_requirement, parse_version
from evota.errors import InputError, ReleaseRejectedError

__all__ = [
    "CUSTOM_KEY",
    "BundleMeta",
    "Downgrade",
    "ImageKind",
    "ImageMeta",
    "bundle_target_path",
    "check_bundle",
    "image_target_path",
    "next_release_counter",
]

CUSTOM_KEY = "evota"
_FILENAME = re.compile(r"^[A-Za-z0-9._+-]{1,128}$")
BUNDLE_DIR = "releases"


class ImageKind(enum.StrEnum):
    FULL = "full"  # a complete firmware image for a slot
    PARAMS = "params"  # a calibration / parameter set for the parameter partition
    DELTA = "delta"  # a binary delta against `delta_base`


@dataclasses.dataclass(frozen=True)
class Downgrade:
    """Why an image older than the newest was published anyway, and what it replaced."""

    reason: str
    newest_version: str


@dataclasses.dataclass(frozen=True)
class ImageMeta:
    """The signed description of one image (the target's custom metadata)."""

    ecu_type: str
    hardware_ids: tuple[str, ...]
    version: str
    release_counter: int
    kind: ImageKind = ImageKind.FULL
    requires: tuple[Requirement, ...] = ()
    notes: str = ""
    downgrade: Downgrade | None = None
    delta_base: str | None = None
    # An algorithm change after which the ECU's state machine must be reset and re-checked
    # (a BMS's SoC/SoH estimator; seed incident CS-15).
    requires_state_reset: bool = False

    def __post_init__(self) -> None:
        validate_ecu_type(self.ecu_type)
        if not self.hardware_ids:
            raise InputError("an image needs at least one hardware id")
        for hw in self.hardware_ids:
            validate_hardware_id(hw)
        parse_version(self.version)
        if self.release_counter < 1:
            raise ValueError("release_counter starts at 1")
        if (self.kind is ImageKind.DELTA) != (self.delta_base is not None):
            raise InputError("a delta image needs a base image, and only a delta has one")

    def to_custom(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "image",
            "ecu_type": self.ecu_type,
            "hardware_ids": list(self.hardware_ids),
            "version": self.version,
            "release_counter": self.release_counter,
            "kind": self.kind.value,
            "requires": [str(r) for r in self.requires],
        }
        if self.notes:
            body["notes"] = self.notes
        if self.downgrade:
            body["downgrade"] = dataclasses.asdict(self.downgrade)
        if self.delta_base:
            body["delta_base"] = self.delta_base
        if self.requires_state_reset:
            body["requires_state_reset"] = True
        return {CUSTOM_KEY: body}

    @classmethod
    def from_custom(cls, custom: Mapping[str, Any]) -> ImageMeta:
        """Parse a target's custom field; raises ValueError if it is not an evota image."""
        body = custom.get(CUSTOM_KEY) if isinstance(custom, Mapping) else None
        if not isinstance(body, Mapping) or body.get("type") != "image":
            raise ValueError("target carries no evota image metadata")
        try:
            downgrade = body.get("downgrade")
            return cls(
                ecu_type=str(body["ecu_type"]),
                hardware_ids=tuple(str(h) for h in body["hardware_ids"]),
                version=str(body["version"]),
                release_counter=int(body["release_counter"]),
                kind=ImageKind(body.get("kind", "full")),
                requires=tuple(parse_requirement(str(r)) for r in body.get("requires", [])),
                notes=str(body.get("notes", "")),
                downgrade=Downgrade(**downgrade) if downgrade else None,
                delta_base=body.get("delta_base"),
                requires_state_reset=bool(body.get("requires_state_reset", False)),
            )
        except (KeyError, TypeError, InputError) as e:
            raise ValueError(f"malformed evota image metadata: {e}") from e

    def shares_hardware(self, other: ImageMeta) -> bool:
        return self.ecu_type == other.ecu_type and bool(set(self.hardware_ids) & set(other.hardware_ids))


@dataclasses.dataclass(frozen=True)
class BundleMeta:
    """A release: images (target paths) that must install together, in this order."""

    name: str
    images: tuple[str, ...]
    notes: str = ""
    policy: InstallPolicy | None = None  # None: the defaults (evota.domain.policy)

    def __post_init__(self) -> None:
        validate_name(self.name)
        if not self.images:
            raise InputError("a release bundle needs at least one image")
        if len(set(self.images)) != len(self.images):
            raise InputError("a release bundle names the same image twice")

    def to_custom(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "bundle", "name": self.name, "images": list(self.images)}
        if self.notes:
            body["notes"] = self.notes
        if self.policy is not None:
            body["install"] = self.policy.to_dict()
        return {CUSTOM_KEY: body}

    @property
    def install_policy(self) -> InstallPolicy:
        return self.policy or InstallPolicy()

    @classmethod
    def from_custom(cls, custom: Mapping[str, Any]) -> BundleMeta:
        body = custom.get(CUSTOM_KEY) if isinstance(custom, Mapping) else None
        if not isinstance(body, Mapping) or body.get("type") != "bundle":
            raise ValueError("target carries no evota bundle metadata")
        try:
            policy = InstallPolicy.from_dict(body["install"]) if "install" in body else None
            return cls(
                str(body["name"]), tuple(str(i) for i in body["images"]), str(body.get("notes", "")), policy
            )
        except (KeyError, TypeError, InputError) as e:
            raise ValueError(f"malformed evota bundle metadata: {e}") from e


def image_target_path(ecu_type: str, version: str, filename: str) -> str:
    """Where an image lives in the image repository: `<ecu_type>/<version>/<filename>`."""
    # TUF clients put target names into URLs without encoding them, so only characters that
    # mean the same in a URL path are allowed.
    if not _FILENAME.fullmatch(filename or "") or filename.startswith("."):
        raise InputError(
            f"image file name {filename!r} cannot be published (use letters, digits and . _ + -)"
        )
    return f"{ecu_type}/{version}/{filename}"


def bundle_target_path(name: str) -> str:
    return f"{BUNDLE_DIR}/{validate_name(name)}.json"


def next_release_counter(
    *,
    ecu_type: str,
    hardware_ids: Sequence[str],
    version: str,
    existing: Iterable[ImageMeta],
    downgrade_reason: str | None,
) -> tuple[int, Downgrade | None]:
    """Decide whether a new image may be published, and with which release counter.

    Refused (ReleaseRejectedError): a version that already exists for the same ECU type and
    a shared hardware id; a version lower than the newest there, unless a downgrade reason is
    given (the reason is then signed into the image); a downgrade reason for a version that is
    not lower (a reason that would be silently dropped). To roll back to an exact old build,
    publish it under a local version ("2.4.0+r1"), which sorts between 2.4.0 and 2.4.1.
    """
    new_version = parse_version(version)
    peers = [m for m in existing if m.ecu_type == ecu_type and set(m.hardware_ids) & set(hardware_ids)]
    newest = max(peers, key=lambda m: parse_version(m.version), default=None)
    for m in peers:
        if parse_version(m.version) == new_version:
            shared = ", ".join(sorted(set(m.hardware_ids) & set(hardware_ids)))
            hint = ""
            if newest is not None and new_version < parse_version(newest.version):
                hint = (
                    f"; to roll back to that build, publish it again as {new_version.public}+r1 "
                    "with --allow-downgrade --reason TEXT"
                )
            raise ReleaseRejectedError(f"{ecu_type} {version} already exists for {shared}{hint}")
    downgrade = None
    if newest is not None and new_version < parse_version(newest.version):
        if not downgrade_reason or not downgrade_reason.strip():
            raise ReleaseRejectedError(
                f"{ecu_type} {version} is lower than the newest {newest.version}; "
                "publish it only with --allow-downgrade --reason TEXT"
            )
        downgrade = Downgrade(downgrade_reason.strip(), newest.version)
    elif downgrade_reason is not None:
        raise ReleaseRejectedError(
            f"{ecu_type} {version} is not lower than the newest "
            f"({newest.version if newest else 'none yet'}); drop --allow-downgrade"
        )
    counter = max((m.release_counter for m in peers), default=0) + 1
    return counter, downgrade


def check_bundle(images: Sequence[tuple[str, ImageMeta]]) -> None:
    """Refuse a bundle that could never install on one vehicle, or contradicts itself.

    `images` are (target path, metadata) in install order. Rules: at most one image per ECU
    type (so each ECU of a vehicle gets exactly one); a requirement on an ECU type that the
    bundle itself carries must be met by the bundled image, and that image must come first.
    """
    seen: dict[str, tuple[int, ImageMeta]] = {}
    for index, (path, meta) in enumerate(images):
        if meta.ecu_type in seen:
            raise ReleaseRejectedError(f"bundle has two {meta.ecu_type} images ({path})")
        seen[meta.ecu_type] = (index, meta)
    for index, (path, meta) in enumerate(images):
        for req in meta.requires:
            if req.ecu_type not in seen:
                continue
            dep_index, dep = seen[req.ecu_type]
            if not req.allows(dep.version):
                raise ReleaseRejectedError(
                    f"{path} requires {req} but the bundle carries {dep.ecu_type} {dep.version}"
                )
            if dep_index > index:
                raise ReleaseRejectedError(
                    f"{dep.ecu_type} must come before {meta.ecu_type} in the bundle ({path} requires {req})"
                )
