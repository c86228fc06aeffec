"""The Uptane director repository: per-vehicle targets naming the image each ECU must run.

One root (offline keys, k of n) serves every vehicle; each vehicle has its own targets →
snapshot → timestamp chain, signed by the online director key with a short expiry, served at
`/repo/director/<VIN>/metadata/`. A vehicle's targets name its VIN (so they cannot be
replayed to another car) and, per image, the ECU serials that must run it, with the
image's length and hashes copied from the image repository (the vehicle checks they match).

What this module does not do: choose assignments (the campaign engine does), or judge a
vehicle's state (it signs what it is told, after checking the assignment is well-formed).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuf.api.metadata import Metadata, Root, TargetFile, Targets

from evota.clock import Clock
from evota.config import ExpiryPolicy, Home
from evota.domain.fleet import VehicleIdentity
from evota.domain.identifiers import validate_vin
from evota.domain.release import CUSTOM_KEY, bundle_target_path
from evota.errors import InputError
from evota.fsutil import atomic_write, exclusive_lock
from evota.security.image_repo import ImageRepository, PublishedImage
from evota.security.keys import KeyStore, sign_as
from evota.security.tuf_repo import METADATA_NAME, ChainExpiry, RootHistory, SignedChain, expiry_from

__all__ = ["DIRECTOR_ONLINE_ROLES", "Director", "director_targets_custom", "ecu_serials"]

DIRECTOR_ONLINE_ROLES = ("targets", "snapshot", "timestamp")


def director_targets_custom(targets: Targets) -> Mapping[str, Any]:
    """The evota part of a director targets' top-level custom field (VIN, releases)."""
    custom = targets.unrecognized_fields.get("custom", {})
    body = custom.get(CUSTOM_KEY, {}) if isinstance(custom, Mapping) else {}
    return body if isinstance(body, Mapping) else {}


def ecu_serials(tf: TargetFile) -> dict[str, str]:
    """ECU serial → hardware id named by a director target (empty if malformed or absent)."""
    body = tf.custom.get(CUSTOM_KEY) if isinstance(tf.custom, Mapping) else None
    serials = body.get("ecu_serials") if isinstance(body, Mapping) else None
    if not isinstance(serials, Mapping):
        return {}
    return {str(k): str(v) for k, v in serials.items()}


class Director:
    """The director repository's files in a home, and the operations that change them."""

    def __init__(
        self,
        home: Home,
        store: KeyStore,
        clock: Clock,
        expiry: ExpiryPolicy,
        images: ImageRepository,
    ) -> None:
        self.home = home
        self.store = store
        self.clock = clock
        self.expiry = expiry
        self.images = images
        self.roots = RootHistory(home.director_repo / "metadata")
        self._chain_expiry = ChainExpiry(
            expiry.director_online, expiry.director_online, expiry.director_online
        )

    # ---- creation and registry -----------------------------------------------------------------
    def create(self, *, root_threshold: int, root_keys: int) -> None:
        root = Root(
            expires=expiry_from(self.clock.now(), self.expiry.director_root), consistent_snapshot=True
        )
        for i in range(root_keys):
            root.add_key(self.store.generate(f"director-root-{i + 1}", offline=True), Root.type)
        root.roles[Root.type].threshold = root_threshold
        online = self.store.generate("director", offline=False)
        for role in DIRECTOR_ONLINE_ROLES:
            root.add_key(online, role)
        md = Metadata(root)
        sign_as(md, Root.type, root, self.store, what="director root")
        self.roots.write(md)

    def trust_root(self) -> bytes:
        return self.roots.current_bytes()

    def _vehicle_dir(self, vin: str) -> Path:
        return self.home.director_repo / "vehicles" / validate_vin(vin)

    def chain(self, vin: str) -> SignedChain:
        return SignedChain(
            self._vehicle_dir(vin) / "metadata",
            lambda: self.roots.current().signed,
            self.store,
            self._chain_expiry,
            f"director ({vin})",
            targets_online=True,
        )

    def register_vehicle(self, vehicle: VehicleIdentity) -> None:
        """Record a vehicle's ECUs and keys, and sign its first (empty) targets."""
        folder = self._vehicle_dir(vehicle.vin)
        with exclusive_lock(self.home.lock_file):
            if (folder / "vehicle.json").exists():
                raise InputError(f"vehicle {vehicle.vin} is already registered")
            chain = self.chain(vehicle.vin)
            chain.check_keys()
            atomic_write(folder / "vehicle.json", json.dumps(vehicle.to_dict(), indent=2).encode())
            chain.create(self.clock.now(), _targets_for(vehicle, {}, (), {}))

    def add_keys(self, vehicle: VehicleIdentity) -> None:
        """Give a vehicle registered without keys (`evota director register`) its ECU keys.

        Refused unless the registration names exactly these ECUs and holds no key yet:
        replacing a key is a rotation, which this is not. Assignments are kept.
        """
        with exclusive_lock(self.home.lock_file):
            current = self.vehicle(vehicle.vin)
            unkeyed = dataclasses.replace(
                vehicle, ecus=tuple(dataclasses.replace(e, public_key=None) for e in vehicle.ecus)
            )
            if any(e.public_key is not None for e in current.ecus) or current != unkeyed:
                raise InputError(
                    f"vehicle {vehicle.vin} is registered with the director under other ECUs or keys"
                )
            path = self._vehicle_dir(vehicle.vin) / "vehicle.json"
            atomic_write(path, json.dumps(vehicle.to_dict(), indent=2).encode())

    def vehicle(self, vin: str) -> VehicleIdentity:
        path = self._vehicle_dir(vin) / "vehicle.json"
        if not path.is_file():
            raise InputError(f"vehicle {vin} is not registered with the director")
        return VehicleIdentity.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def vehicles(self) -> list[str]:
        folder = self.home.director_repo / "vehicles"
        return sorted(p.parent.name for p in folder.glob("*/vehicle.json")) if folder.is_dir() else []

    # ---- assignments -----------------------------------------------------------------------------
    def assignments(self, vin: str) -> dict[str, str]:
        """ECU serial → target path, as currently signed for `vin`."""
        return _assignments(self.chain(vin).targets().signed)

    def assign(
        self,
        vin: str,
        ecu_targets: Mapping[str, str],
        *,
        release: str | None = None,
    ) -> dict[str, str]:
        """Sign new targets for `vin`: each given ECU serial must run the given image.

        Other ECUs keep their current assignment. Refused (InputError) when the vehicle or an
        ECU is unknown, an image is not in the image repository or not built for that ECU's
        type and hardware, or `release` names a bundle whose images are not all assigned.
        Idempotent: an assignment already signed signs nothing new (the rollout controller
        relies on this to finish an interrupted offer without repeating it). Returns the full
        assignment now signed.
        """
        published = {i.path: i for i in self.images.images()}
        return self._assign(self.vehicle(vin), ecu_targets, release, published)

    def assign_release(self, vin: str, release: str) -> dict[str, str]:
        """Assign every image of a release to the vehicle's ECU of matching type and hardware."""
        vehicle = self.vehicle(vin)
        published = {i.path: i for i in self.images.images()}
        mapping: dict[str, str] = {}
        for path in self._bundle(release):
            meta = published[path].meta
            ecus = [
                e.serial
                for e in vehicle.ecus
                if e.ecu_type == meta.ecu_type and e.hardware_id in meta.hardware_ids
            ]
            if not ecus:
                raise InputError(
                    f"{vin} has no {meta.ecu_type} ECU with hardware "
                    f"{'/'.join(meta.hardware_ids)} for {path} of release {release}"
                )
            mapping.update({serial: path for serial in ecus})
        return self._assign(vehicle, mapping, release, published)

    def _assign(
        self,
        vehicle: VehicleIdentity,
        ecu_targets: Mapping[str, str],
        release: str | None,
        published: Mapping[str, PublishedImage],
    ) -> dict[str, str]:
        for serial, path in ecu_targets.items():
            _check_assignment(vehicle, serial, path, published)
        with exclusive_lock(self.home.lock_file):
            chain = self.chain(vehicle.vin)
            md = chain.targets()
            current = _assignments(md.signed)
            named = list(director_targets_custom(md.signed).get("releases", []))
            merged = {**current, **ecu_targets}
            # Releases signed earlier stay named while all their images stay assigned, so a
            # later assignment (another ECU) does not lose the install order they give.
            releases = [r for r in named if self._release_whole(r, merged)]
            if release is not None:
                path = self._check_release(release, merged)
                releases = [*(r for r in releases if r != path), path]
            if merged == current and releases == named:
                return merged  # already signed: repeating an assignment changes nothing
            md.signed = _targets_for(vehicle, merged, tuple(releases), published)
            chain.commit_targets(md, self.clock.now())
        return merged

    def clear(self, vin: str) -> None:
        """Remove every assignment of `vin` (its ECUs keep what they run)."""
        with exclusive_lock(self.home.lock_file):
            chain = self.chain(vin)
            md = chain.targets()
            md.signed = _targets_for(self.vehicle(vin), {}, (), {})
            chain.commit_targets(md, self.clock.now())

    # ---- serving ---------------------------------------------------------------------------------
    def metadata_file(self, vin: str, name: str) -> Path | None:
        """The file behind `/repo/director/<VIN>/metadata/<name>`, refreshing online roles first."""
        if not METADATA_NAME.fullmatch(name):
            return None
        try:
            validate_vin(vin)
        except InputError:
            return None
        if name == "root.json":  # unversioned: the current root
            name = f"{self.roots.versions()[-1]}.root.json"
        if name.endswith(".root.json") and name[0].isdigit():
            path = self.roots.folder / name
        else:
            chain = self.chain(vin)
            if not chain.exists():
                return None
            if name == "timestamp.json":
                self.refresh(vin)
            path = chain.folder / name
        return path if path.is_file() else None

    def refresh(self, vin: str) -> bool:
        """Re-sign the vehicle's chain when half its short life is spent."""
        chain = self.chain(vin)
        if not chain.refresh_due(self.clock.now()):
            return False  # the common case needs no lock
        with exclusive_lock(self.home.lock_file):
            return chain.refresh(self.clock.now())

    # ---- helpers -----------------------------------------------------------------------------------
    def _bundle(self, release: str) -> tuple[str, ...]:
        path = bundle_target_path(release)
        for b in self.images.bundles():
            if b.path == path:
                return b.meta.images
        raise InputError(f"release {release} is not in the image repository")

    def _release_whole(self, release_path: str, merged: Mapping[str, str]) -> bool:
        bundle = next((b for b in self.images.bundles() if b.path == release_path), None)
        return bundle is not None and set(bundle.meta.images) <= set(merged.values())

    def _check_release(self, release: str, merged: Mapping[str, str]) -> str:
        missing = [p for p in self._bundle(release) if p not in merged.values()]
        if missing:
            raise InputError(f"release {release} must install together; not assigned: {', '.join(missing)}")
        return bundle_target_path(release)


def _assignments(targets: Targets) -> dict[str, str]:
    """ECU serial → target path, from a director targets role."""
    return {serial: path for path, tf in targets.targets.items() for serial in ecu_serials(tf)}


def _targets_for(
    vehicle: VehicleIdentity,
    assignment: Mapping[str, str],
    releases: tuple[str, ...],
    published: Mapping[str, PublishedImage],
) -> Targets:
    """The director targets for `vehicle`: its VIN, releases, and each image's ECU serials."""
    by_path: dict[str, dict[str, str]] = {}
    for serial, path in sorted(assignment.items()):
        ecu = vehicle.ecu(serial)
        assert ecu is not None  # checked by _check_assignment
        by_path.setdefault(path, {})[serial] = ecu.hardware_id
    targets = Targets(version=1)
    for path, serials in by_path.items():
        image = published[path]
        targets.targets[path] = TargetFile(
            image.length, dict(image.hashes), path, {"custom": {CUSTOM_KEY: {"ecu_serials": serials}}}
        )
    targets.unrecognized_fields["custom"] = {CUSTOM_KEY: {"vin": vehicle.vin, "releases": list(releases)}}
    return targets


def _check_assignment(
    vehicle: VehicleIdentity, serial: str, path: str, published: Mapping[str, PublishedImage]
) -> None:
    ecu = vehicle.ecu(serial)
    if ecu is None:
        raise InputError(f"{vehicle.vin} has no ECU {serial}")
    image = published.get(path)
    if image is None:
        raise InputError(f"{path} is not an image in the image repository")
    if image.meta.ecu_type != ecu.ecu_type or ecu.hardware_id not in image.meta.hardware_ids:
        raise InputError(
            f"{path} is for {image.meta.ecu_type} {'/'.join(image.meta.hardware_ids)}, "
            f"but ECU {serial} is {ecu.ecu_type} {ecu.hardware_id}"
        )
