"""Uptane full verification for a primary ECU, and partial verification for a secondary.

Full verification (`Primary.verify`), in the standard's order:
  1. the director chain for this vehicle: root (walking N → N+1) → timestamp → snapshot →
     targets, through ngclient, judged at the vehicle's trusted time;
  2. the director's targets: no delegations, this VIN, each ECU serial at most once and
     belonging to this vehicle, with this ECU's hardware id;
  3. the image repository chain, through ngclient;
  4. the match: each director target exists in the image repository with the same length
     and every hash, is an evota image for the ECU's type and hardware, and has a release
     counter no lower than the ECU runs;
  5. releases are whole in the state after the update (each ECU: its assigned image, else
     what it runs): every release the director names, and for each image being installed at
     least one release it belongs to;
  6. every `requires` of an image being installed holds after the update, and the update
     breaks no `requires` of an image staying installed (`evota.domain.compat`).
Authenticity first, compatibility after: nothing is downloaded before 1–6 pass.

The director's metadata is verified in a staging copy of its cache and committed only when
all of 1–6 pass. Otherwise a validly signed chain that fails a later check (another
vehicle's, replayed by a man in the middle) would sit in the cache with higher versions
than this vehicle's own, and every honest update after it would look like a rollback.

Partial verification (`verify_partial`): a secondary that keeps only the director's root
checks the director targets' signatures, version, expiry and VIN, and its own entry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

from tuf.api.metadata import Metadata, Root, TargetFile, Targets
from tuf.ngclient import FetcherInterface, UpdaterConfig

from evota.clock import Clock
from evota.domain.compat import EcuImage, incomplete_releases, install_rank, update_problems
from evota.domain.release import BundleMeta, ImageMeta
from evota.security.director import director_targets_custom, ecu_serials
from evota.security.errors import (
    DirectorImageMismatchError,
    FreezeError,
    HardwareMismatchError,
    ImageRollbackError,
    IncompatibleError,
    MetadataRollbackError,
    PartialBundleError,
    VehicleMismatchError,
    VerificationError,
)
from evota.security.tuf_client import ClockedUpdater, staged_cache, tuf_errors

__all__ = [
    "Directive",
    "EcuState",
    "InstalledImage",
    "Primary",
    "RepositoryAccess",
    "VerifiedImage",
    "verify_partial",
]


@dataclasses.dataclass(frozen=True)
class InstalledImage:
    """What an ECU runs now, as the primary knows it from the ECU's signed report."""

    path: str
    version: str
    release_counter: int


@dataclasses.dataclass(frozen=True)
class EcuState:
    serial: str
    ecu_type: str
    hardware_id: str
    installed: InstalledImage | None = None
    # The one older image the director may send this ECU back to: what it ran before its
    # last committed install, still held good in its other slot, while that install's
    # rollback window (signed by the image repository in the release's policy) is open.
    # The agent decides it from its journal; None forbids every lower release counter.
    rollback_to: InstalledImage | None = None


@dataclasses.dataclass(frozen=True)
class RepositoryAccess:
    """Where one repository is served, the root the vehicle was provisioned with, and the
    folder where its verified metadata is cached between cycles."""

    metadata_url: str
    trusted_root: bytes
    cache_dir: Path
    targets_url: str | None = None


@dataclasses.dataclass(frozen=True)
class VerifiedImage:
    """One image the director assigned to one ECU, verified against both repositories."""

    ecu_serial: str
    hardware_id: str
    target: TargetFile
    meta: ImageMeta

    @property
    def path(self) -> str:
        return self.target.path


@dataclasses.dataclass(frozen=True)
class Directive:
    """The outcome of full verification: what each ECU must run, in install order."""

    vin: str
    director_version: int
    images: tuple[VerifiedImage, ...]
    releases: tuple[str, ...]
    # The verified metadata of each release named (target path -> bundle): its name and
    # the install policy the vehicle enforces.
    bundles: Mapping[str, BundleMeta] = dataclasses.field(default_factory=dict)

    def pending(self, ecus: Sequence[EcuState]) -> tuple[VerifiedImage, ...]:
        """The images not already installed on their ECU."""
        installed = {e.serial: e.installed.path if e.installed else None for e in ecus}
        return tuple(i for i in self.images if installed.get(i.ecu_serial) != i.path)


class Primary:
    """The primary ECU's side of Uptane: verify, then download verified images."""

    def __init__(
        self,
        *,
        vin: str,
        ecus: Sequence[EcuState],
        director: RepositoryAccess,
        image: RepositoryAccess,
        clock: Clock,
        fetcher: FetcherInterface | None = None,
        config: UpdaterConfig | None = None,
    ) -> None:
        self.vin = vin
        self.ecus = {e.serial: e for e in ecus}
        if len(self.ecus) != len(ecus):
            raise ValueError(f"{vin}: an ECU serial is listed twice")
        self._director = director
        self._image = image
        self._clock = clock
        self._fetcher = fetcher
        self._config = config
        self._image_updater: ClockedUpdater | None = None
        self._directive: Directive | None = None

    def _updater(self, access: RepositoryAccess, now: dt.datetime) -> ClockedUpdater:
        return ClockedUpdater(
            metadata_dir=access.cache_dir,
            metadata_url=access.metadata_url,
            targets_url=access.targets_url,
            trusted_root=access.trusted_root,
            reference_time=now,
            fetcher=self._fetcher,
            config=self._config,
        )

    def verify(self) -> Directive:
        """Full verification; raises a VerificationError subclass naming the attack."""
        self._image_updater, self._directive = None, None  # a failed verify leaves nothing to download
        now = self._clock.now()
        with staged_cache(self._director.cache_dir) as staging:
            director = self._updater(dataclasses.replace(self._director, cache_dir=staging), now)
            with tuf_errors("metadata"):
                director.refresh()
            dtargets = director.trusted_targets()
            directive, image = self._verify_directive(dtargets, now)
            # Reached only if every check passed: the staged director metadata is committed.
        self._image_updater, self._directive = image, directive
        return directive

    def _verify_directive(
        self, dtargets: Targets, now: dt.datetime
    ) -> tuple[Directive, ClockedUpdater | None]:
        assigned = self._check_director(dtargets)
        releases = _releases(dtargets)
        if not assigned:
            return Directive(self.vin, dtargets.version, (), releases), None
        image = self._updater(self._image, now)
        with tuf_errors("metadata"):
            image.refresh()
        itargets = image.trusted_targets().targets
        verified = [self._match(path, dtf, serial, itargets) for path, dtf, serial in assigned]
        rank = self._check_compatibility(verified, releases, itargets)

        def order(v: VerifiedImage) -> tuple[int, str, str]:
            return (rank.get(v.path, len(rank)), v.path, v.ecu_serial)

        bundles = {p: b for p, b in _bundle_metas(itargets).items() if p in releases}
        ordered = tuple(sorted(verified, key=order))
        return Directive(self.vin, dtargets.version, ordered, releases, bundles), image

    def _check_compatibility(
        self, verified: Sequence[VerifiedImage], releases: Sequence[str], itargets: Mapping[str, TargetFile]
    ) -> dict[str, int]:
        """Steps 5 and 6 on the state after the update; returns the install rank."""
        metas = _image_metas(itargets)
        bundles = _bundle_metas(itargets)
        new = {v.ecu_serial: v for v in verified}
        before, after = [], []
        for e in self.ecus.values():
            path = e.installed.path if e.installed else None
            before.append(EcuImage(e.serial, e.ecu_type, path, metas.get(path) if path else None))
            if e.serial in new:
                after.append(EcuImage(e.serial, e.ecu_type, new[e.serial].path, new[e.serial].meta))
            else:
                after.append(before[-1])
        installing = {v.path for v in verified}
        incomplete = incomplete_releases(after, bundles, releases, installing)
        if incomplete:
            raise PartialBundleError("; ".join(incomplete))
        broken = update_problems(before, after, installing)
        if broken:
            raise IncompatibleError("; ".join(str(u) for u in broken))
        return install_rank(after, bundles, releases)

    def download(self, image: VerifiedImage, dest: Path) -> Path:
        """Fetch an image of the last directive into `dest` (length-capped, hashes checked).

        Raises RuntimeError unless the last `verify()` passed and returned `image`.
        """
        if self._image_updater is None or self._directive is None:
            raise RuntimeError("call verify() (and let it pass) before download()")
        if image not in self._directive.images:
            raise RuntimeError(f"{image.path} is not part of the verified directive")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tuf_errors("target"):
            return Path(self._image_updater.download_target(image.target, str(dest)))

    # ---- the checks ---------------------------------------------------------------------------
    def _check_director(self, targets: Targets) -> list[tuple[str, TargetFile, str]]:
        if targets.delegations is not None:
            raise VerificationError("director targets must not delegate")
        vin = director_targets_custom(targets).get("vin")
        if vin != self.vin:
            raise VehicleMismatchError(f"director targets are for vehicle {vin!r}, not {self.vin}")
        seen: set[str] = set()
        out = []
        for path, tf in targets.targets.items():
            serials = ecu_serials(tf)
            if not serials:
                raise VerificationError(f"director target {path} names no ECU")
            for serial, hwid in serials.items():
                ecu = self.ecus.get(serial)
                if ecu is None:
                    raise VehicleMismatchError(f"director names ECU {serial}, which {self.vin} does not have")
                if serial in seen:
                    raise VehicleMismatchError(f"director names ECU {serial} more than once")
                seen.add(serial)
                if hwid != ecu.hardware_id:
                    raise HardwareMismatchError(
                        f"director says ECU {serial} is {hwid}, but it is {ecu.hardware_id}"
                    )
                out.append((path, tf, serial))
        return out

    def _match(
        self, path: str, dtf: TargetFile, serial: str, itargets: Mapping[str, TargetFile]
    ) -> VerifiedImage:
        itf = itargets.get(path)
        if itf is None:
            raise DirectorImageMismatchError(f"the image repository does not hold {path}")
        if itf.length != dtf.length:
            raise DirectorImageMismatchError(
                f"{path}: director length {dtf.length} != image repository {itf.length}"
            )
        if not dtf.hashes:
            raise DirectorImageMismatchError(f"{path}: director lists no hash")
        for algo, digest in dtf.hashes.items():
            if itf.hashes.get(algo) != digest:
                raise DirectorImageMismatchError(
                    f"{path}: {algo} differs between director and image repository"
                )
        try:
            meta = ImageMeta.from_custom(itf.custom)
        except ValueError as e:
            raise DirectorImageMismatchError(f"{path} is not an evota image: {e}") from e
        ecu = self.ecus[serial]
        if meta.ecu_type != ecu.ecu_type or ecu.hardware_id not in meta.hardware_ids:
            raise HardwareMismatchError(
                f"{path} is built for {meta.ecu_type} {'/'.join(meta.hardware_ids)}; "
                f"ECU {serial} is {ecu.ecu_type} {ecu.hardware_id}"
            )
        if (
            ecu.installed
            and meta.release_counter < ecu.installed.release_counter
            and not _is_permitted_rollback(ecu, path, meta)
        ):
            raise ImageRollbackError(
                f"{path} (release counter {meta.release_counter}) is older than what ECU {serial} "
                f"runs ({ecu.installed.path}, counter {ecu.installed.release_counter})"
            )
        return VerifiedImage(serial, ecu.hardware_id, itf, meta)


def _is_permitted_rollback(ecu: EcuState, path: str, meta: ImageMeta) -> bool:
    """A fleet rollback: exactly the image the ECU ran before its last install, inside the
    window the release's signed policy grants. A compromised director can do no more than the
    vehicle's own user could (`evota agent rollback`), and nothing at all once the window ends."""
    back = ecu.rollback_to
    return back is not None and back.path == path and back.release_counter == meta.release_counter


def _releases(targets: Targets) -> tuple[str, ...]:
    releases = director_targets_custom(targets).get("releases", [])
    if not isinstance(releases, list) or not all(isinstance(r, str) for r in releases):
        raise VerificationError("director targets: 'releases' must be a list of release names")
    return tuple(releases)


def _image_metas(itargets: Mapping[str, TargetFile]) -> dict[str, ImageMeta]:
    out = {}
    for path, tf in itargets.items():
        try:
            out[path] = ImageMeta.from_custom(tf.custom)
        except ValueError:
            continue
    return out


def _bundle_metas(itargets: Mapping[str, TargetFile]) -> dict[str, BundleMeta]:
    out = {}
    for path, tf in itargets.items():
        try:
            out[path] = BundleMeta.from_custom(tf.custom)
        except ValueError:
            continue
    return out


def verify_partial(
    *,
    director_targets: bytes,
    director_root: Root,
    vin: str,
    ecu_serial: str,
    hardware_id: str,
    now: dt.datetime,
    last_version: int = 0,
) -> TargetFile | None:
    """Partial verification on a secondary: the director targets role only.

    Returns this ECU's target (None if the director assigns it nothing). The caller checks the
    image bytes with `TargetFile.verify_length_and_hashes` (through `tuf_errors("target")`).
    """
    with tuf_errors("metadata"):
        md = Metadata[Targets].from_bytes(director_targets)
        if md.signed.type != Targets.type:
            raise VerificationError("not a targets metadata file")
        director_root.verify_delegate(Targets.type, md.signed_bytes, md.signatures)
    if md.signed.version < last_version:
        raise MetadataRollbackError(
            f"director targets v{md.signed.version} is older than v{last_version} already seen"
        )
    if md.signed.is_expired(now):
        raise FreezeError(f"director targets expired at {md.signed.expires:%Y-%m-%d %H:%M}")
    target_vin = director_targets_custom(md.signed).get("vin")
    if target_vin != vin:
        raise VehicleMismatchError(f"director targets are for vehicle {target_vin!r}, not {vin}")
    if md.signed.delegations is not None:
        raise VerificationError("director targets must not delegate")
    mine = [tf for tf in md.signed.targets.values() if ecu_serial in ecu_serials(tf)]
    if len(mine) > 1:
        raise VehicleMismatchError(f"director names ECU {ecu_serial} more than once")
    if not mine:
        return None
    claimed = ecu_serials(mine[0])[ecu_serial]
    if claimed != hardware_id:
        raise HardwareMismatchError(f"director says ECU {ecu_serial} is {claimed}, but it is {hardware_id}")
    return mine[0]
