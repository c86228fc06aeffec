"""The Uptane image repository: a standard TUF repository of signed firmware images.

Root and targets keys are offline; snapshot and timestamp keys online. Every image is a
TUF target with evota's metadata in `custom` (see `evota.domain.release`), stored under
each of its hash-prefixed names (consistent snapshots), so python-tuf's ngclient, or any
other TUF client, can fetch and verify it given only the root.

What this module does not do: decide which vehicle gets what (the director does), or serve
HTTP (evota.server does, reading the files this module writes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from securesystemslib.formats import encode_canonical
from tuf.api.metadata import Metadata, Root, TargetFile, Targets

from evota.clock import Clock
from evota.config import ExpiryPolicy, Home
from evota.domain.identifiers import validate_ecu_type, validate_hardware_id
from evota.domain.policy import InstallPolicy
from evota.domain.release import (
    BundleMeta,
    ImageKind,
    ImageMeta,
    bundle_target_path,
    check_bundle,
    image_target_path,
    next_release_counter,
)
from evota.domain.versions import parse_requirement, parse_version
from evota.errors import InputError, ReleaseRejectedError
from evota.fsutil import exclusive_lock
from evota.security.keys import KeyStore, sign_as
from evota.security.tuf_repo import METADATA_NAME, ChainExpiry, RootHistory, SignedChain, expiry_from

__all__ = ["HASH_ALGORITHMS", "ImageRepository", "PublishedBundle", "PublishedImage"]

# Every target carries both; a vehicle checks every hash the director and image repo list.
HASH_ALGORITHMS = ("sha256", "sha512")


@dataclasses.dataclass(frozen=True)
class PublishedImage:
    path: str
    length: int
    hashes: dict[str, str]
    meta: ImageMeta

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.path,
            "sha256": self.hashes["sha256"],
            "length": self.length,
            "ecu_type": self.meta.ecu_type,
            "hardware_ids": list(self.meta.hardware_ids),
            "version": self.meta.version,
            "release_counter": self.meta.release_counter,
            "kind": self.meta.kind.value,
            "requires": [str(r) for r in self.meta.requires],
        }


@dataclasses.dataclass(frozen=True)
class PublishedBundle:
    path: str
    length: int
    hashes: dict[str, str]
    meta: BundleMeta

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.path,
            "sha256": self.hashes["sha256"],
            "length": self.length,
            "name": self.meta.name,
            "images": list(self.meta.images),
        }


class ImageRepository:
    """Files of the image repository in a home, and the operations that change them."""

    def __init__(self, home: Home, store: KeyStore, clock: Clock, expiry: ExpiryPolicy) -> None:
        self.home = home
        self.metadata_dir = home.image_repo / "metadata"
        self.targets_dir = home.image_repo / "targets"
        self.roots = RootHistory(self.metadata_dir)
        self.store = store
        self.clock = clock
        self.expiry = expiry
        self._cached: tuple[int, tuple[PublishedImage, ...], tuple[PublishedBundle, ...]] | None = None
        self.chain = SignedChain(
            self.metadata_dir,
            lambda: self.roots.current().signed,
            store,
            ChainExpiry(expiry.image_targets, expiry.image_snapshot, expiry.image_timestamp),
            "image repository",
            targets_online=False,
        )

    # ---- creation --------------------------------------------------------------------------
    def create(self, *, root_threshold: int, root_keys: int) -> None:
        """Generate keys and write version 1 of every role."""
        now = self.clock.now()
        root = Root(expires=expiry_from(now, self.expiry.image_root), consistent_snapshot=True)
        for i in range(root_keys):
            root.add_key(self.store.generate(f"image-root-{i + 1}", offline=True), Root.type)
        root.roles[Root.type].threshold = root_threshold
        root.add_key(self.store.generate("image-targets", offline=True), Targets.type)
        root.add_key(self.store.generate("image-snapshot", offline=False), "snapshot")
        root.add_key(self.store.generate("image-timestamp", offline=False), "timestamp")
        md = Metadata(root)
        sign_as(md, Root.type, root, self.store, what="image repository root")
        self.roots.write(md)
        self.chain.create(now)

    # ---- reading -----------------------------------------------------------------------------
    def trust_root(self) -> bytes:
        """The current root.json, as vehicles are provisioned with it."""
        return self.roots.current_bytes()

    def targets(self) -> Targets:
        return self.chain.targets().signed

    def images(self) -> list[PublishedImage]:
        return list(self._catalog()[0])

    def bundles(self) -> list[PublishedBundle]:
        return list(self._catalog()[1])

    def _catalog(self) -> tuple[tuple[PublishedImage, ...], tuple[PublishedBundle, ...]]:
        """Images and releases of the current targets version, parsed once per version.

        Every check-in and controller tick asks; a targets file of a given version never
        changes (consistent snapshots), so only the small timestamp and snapshot are read to
        learn which version is current.
        """
        version = self.chain.snapshot().signed.meta["targets.json"].version
        if self._cached is not None and self._cached[0] == version:
            return self._cached[1], self._cached[2]
        images, bundles = [], []
        for path, tf in self._targets_at(version).items():
            with contextlib.suppress(ValueError):
                images.append(
                    PublishedImage(path, tf.length, dict(tf.hashes), ImageMeta.from_custom(tf.custom))
                )
            with contextlib.suppress(ValueError):
                bundles.append(
                    PublishedBundle(path, tf.length, dict(tf.hashes), BundleMeta.from_custom(tf.custom))
                )
        self._cached = (version, tuple(images), tuple(bundles))
        return self._cached[1], self._cached[2]

    def _targets_at(self, version: int) -> dict[str, TargetFile]:
        md = Metadata[Targets].from_file(str(self.metadata_dir / f"{version}.targets.json"))
        return md.signed.targets

    def metadata_file(self, name: str) -> Path | None:
        """The file behind a metadata URL name, or None (names are checked, never joined raw)."""
        if not METADATA_NAME.fullmatch(name):
            return None
        if name == "root.json":  # unversioned: the current root, for clients that bootstrap so
            name = f"{self.roots.versions()[-1]}.root.json"
        path = self.metadata_dir / name
        return path if path.is_file() else None

    def target_file(self, url_path: str) -> Path | None:
        """The stored file behind a hash-prefixed target URL path, or None."""
        parts = url_path.split("/")
        if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            return None
        path = self.targets_dir.joinpath(*parts)
        return path if path.is_file() else None

    # ---- publishing --------------------------------------------------------------------------
    def add_image(
        self,
        source: Path,
        *,
        ecu_type: str,
        hardware_ids: Sequence[str],
        version: str,
        requires: Sequence[str] = (),
        notes: str = "",
        kind: ImageKind = ImageKind.FULL,
        delta_base: str | None = None,
        downgrade_reason: str | None = None,
        requires_state_reset: bool = False,
    ) -> PublishedImage:
        """Store `source` and sign it into the repository; refused with nothing written if
        the file, the identifiers, the version or a constraint is not acceptable."""
        _check_source(source)
        validate_ecu_type(ecu_type)
        for hw in hardware_ids:
            validate_hardware_id(hw)
        if not hardware_ids:
            raise InputError("give at least one --hardware-id")
        parse_version(version)
        reqs = tuple(parse_requirement(r) for r in requires)
        path = image_target_path(ecu_type, version, source.name)
        with exclusive_lock(self.home.lock_file):
            md = self.chain.targets()
            if path in md.signed.targets:
                raise ReleaseRejectedError(f"target {path} already exists")
            published = {i.path: i.meta for i in self.images()}
            if delta_base is not None:
                _check_delta_base(delta_base, published, ecu_type, hardware_ids)
            existing = list(published.values())
            counter, downgrade = next_release_counter(
                ecu_type=ecu_type,
                hardware_ids=hardware_ids,
                version=version,
                existing=existing,
                downgrade_reason=downgrade_reason,
            )
            meta = ImageMeta(
                ecu_type=ecu_type,
                hardware_ids=tuple(hardware_ids),
                version=version,
                release_counter=counter,
                kind=kind,
                requires=reqs,
                notes=notes,
                downgrade=downgrade,
                delta_base=delta_base,
                requires_state_reset=requires_state_reset,
            )
            tf = self._publish(md, path, source, meta.to_custom())
        return PublishedImage(path, tf.length, dict(tf.hashes), meta)

    def add_bundle(
        self, name: str, images: Sequence[str], notes: str = "", policy: InstallPolicy | None = None
    ) -> PublishedBundle:
        """Sign a release: images that must install together, in the given order, with the
        install policy a vehicle enforces (preconditions, rollback window)."""
        meta = BundleMeta(name, tuple(images), notes, policy)
        path = bundle_target_path(name)
        with exclusive_lock(self.home.lock_file):
            md = self.chain.targets()
            if path in md.signed.targets:
                raise ReleaseRejectedError(f"release {name} already exists")
            known = {i.path: i.meta for i in self.images()}
            missing = [i for i in images if i not in known]
            if missing:
                raise InputError(f"not in the image repository: {', '.join(missing)}")
            check_bundle([(i, known[i]) for i in images])
            body = encode_canonical(meta.to_custom())
            assert isinstance(body, str)
            with tempfile.TemporaryDirectory() as tmp:
                source = Path(tmp) / f"{name}.json"
                source.write_text(body, encoding="utf-8")
                tf = self._publish(md, path, source, meta.to_custom())
        return PublishedBundle(path, tf.length, dict(tf.hashes), meta)

    def refresh(self) -> bool:
        """Re-sign the online roles (snapshot, timestamp) when half their life is spent."""
        with exclusive_lock(self.home.lock_file):
            return self.chain.refresh(self.clock.now())

    def refresh_if_due(self) -> bool:
        """`refresh`, but only taking the write lock when something is due."""
        return self.chain.refresh_due(self.clock.now()) and self.refresh()

    def _publish(self, md: Metadata[Targets], path: str, source: Path, custom: dict[str, Any]) -> TargetFile:
        tf = TargetFile.from_file(path, str(source), list(HASH_ALGORITHMS))
        tf.unrecognized_fields["custom"] = custom
        self.chain.check_keys()
        stored = self._store_target(path, source, tf)
        md.signed.targets[path] = tf
        try:
            self.chain.commit_targets(md, self.clock.now())
        except BaseException:
            for name in stored:
                name.unlink(missing_ok=True)
            raise
        return tf

    def _store_target(self, path: str, source: Path, tf: TargetFile) -> list[Path]:
        """Copy the image in under every hash-prefixed name (one copy, hard links)."""
        folder, _, base = path.rpartition("/")
        dest_dir = self.targets_dir / folder
        dest_dir.mkdir(parents=True, exist_ok=True)
        names = [dest_dir / f"{digest}.{base}" for digest in tf.hashes.values()]
        fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=".incoming.")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out)
                out.flush()
                os.fsync(out.fileno())
            for name in names:
                if name.exists():
                    name.unlink()
                os.link(tmp, name)
        finally:
            os.unlink(tmp)
        return names


def _check_delta_base(
    base: str, published: dict[str, ImageMeta], ecu_type: str, hardware_ids: Sequence[str]
) -> None:
    meta = published.get(base)
    if meta is None:
        raise InputError(f"delta base {base} is not an image in the image repository")
    if meta.ecu_type != ecu_type or not set(meta.hardware_ids) & set(hardware_ids):
        raise InputError(
            f"delta base {base} is a {meta.ecu_type} image for {'/'.join(meta.hardware_ids)}, "
            f"not {ecu_type} for {'/'.join(hardware_ids)}"
        )


def _check_source(source: Path) -> None:
    if not source.is_file():
        raise InputError(f"image file {source} does not exist")
    if source.stat().st_size == 0:
        raise InputError(f"image file {source} is empty")
