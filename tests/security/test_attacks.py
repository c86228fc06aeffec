"""Uptane attacks, one named test each, against a real server on loopback.

Each test plays the attacker by changing what the server serves (the repository files), or
by signing with a key the attacker holds, and asserts the vehicle's primary refuses with the
evota error type named after the attack. The threat model in docs/security.md points here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from securesystemslib.signer import Signer
from tuf.api.metadata import Delegations, Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp

from evota.clock import SimClock
from evota.deployment import Deployment
from evota.domain.release import CUSTOM_KEY, ImageKind
from evota.security.errors import (
    DirectorImageMismatchError,
    EndlessDataError,
    FreezeError,
    HardwareMismatchError,
    ImageRollbackError,
    IncompatibleError,
    MetadataRollbackError,
    MixAndMatchError,
    PartialBundleError,
    RepositoryUnavailableError,
    SignatureError,
    TamperedImageError,
    VehicleMismatchError,
    VerificationError,
)
from evota.security.image_repo import PublishedImage
from evota.security.rotation import RotatableRole, rotate
from evota.security.tuf_repo import SignedChain
from evota.security.uptane import EcuState, InstalledImage, Primary
from tests.conftest import Published, Vehicle, make_vehicle

MakePrimary = Callable[..., Primary]


def stored_image(dep: Deployment, path: str) -> Path:
    """Every stored copy (hash-prefixed names) of a published image, as the server serves it."""
    folder, _, name = path.rpartition("/")
    return next((dep.images.targets_dir / folder).glob(f"*.{name}"))


def tamper(dep: Deployment, path: str, change: Callable[[bytes], bytes]) -> None:
    folder, _, name = path.rpartition("/")
    for f in (dep.images.targets_dir / folder).glob(f"*.{name}"):
        data = change(f.read_bytes())
        f.unlink()  # break the hard link so each name gets the attacker's bytes
        f.write_bytes(data)


def director_targets(
    dep: Deployment,
    vin: str,
    entries: dict[str, tuple[TargetFile, dict[str, str]]],
    releases: list[str] | None = None,
    target_vin: str | None = None,
) -> Targets:
    """Targets as an attacker holding the director's online key would write them."""
    targets = Targets(version=1)
    for path, (tf, serials) in entries.items():
        targets.targets[path] = TargetFile(
            tf.length, dict(tf.hashes), path, {"custom": {CUSTOM_KEY: {"ecu_serials": serials}}}
        )
    targets.unrecognized_fields["custom"] = {
        CUSTOM_KEY: {"vin": target_vin or vin, "releases": releases or []}
    }
    return targets


def sign_director(dep: Deployment, vin: str, targets: Targets) -> None:
    """Sign and publish `targets` for `vin` with the director's online key (a compromise)."""
    chain = dep.director.chain(vin)
    chain.commit_targets(Metadata(targets), dep.clock.now())


def running(bms: InstalledImage | None = None, vcms: InstalledImage | None = None) -> list[EcuState]:
    """The fixture vehicle's ECUs, with what its BMS and VCMS run (None: nothing known)."""
    return [
        EcuState("GW-1", "gateway", "gw-tcu4"),
        EcuState("BMS-1", "bms", "bms-gen2", bms),
        EcuState("VCMS-1", "vcms", "vcms-gen3", vcms),
    ]


def installed(image: PublishedImage) -> InstalledImage:
    return InstalledImage(image.path, image.meta.version, image.meta.release_counter)


def image_tf(p: Published, name: str) -> TargetFile:
    image = {"bms": p.bms, "vcms": p.vcms}[name]
    return TargetFile(image.length, dict(image.hashes), image.path)


# ---- arbitrary software ------------------------------------------------------------------------


def test_arbitrary_software_tampered_image_is_refused(
    dep: Deployment, published: Published, vehicle: Vehicle, make_primary: MakePrimary, tmp_path: Path
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    tamper(dep, published.bms.path, lambda b: b[:100] + bytes([b[100] ^ 0xFF]) + b[101:])
    primary = make_primary(vehicle)
    directive = primary.verify()
    bms = next(i for i in directive.images if i.ecu_serial == "BMS-1")
    with pytest.raises(TamperedImageError):
        primary.download(bms, tmp_path / "bms.bin")
    assert not (tmp_path / "bms.bin").exists(), "nothing of a refused image may reach the staging path"


def test_endless_data_more_bytes_than_signed_length_is_refused(
    dep: Deployment, published: Published, vehicle: Vehicle, make_primary: MakePrimary, tmp_path: Path
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    tamper(dep, published.vcms.path, lambda b: b + b"\0" * 1_000_000)
    primary = make_primary(vehicle)
    vcms = next(i for i in primary.verify().images if i.ecu_serial == "VCMS-1")
    with pytest.raises(EndlessDataError):
        primary.download(vcms, tmp_path / "vcms.bin")


# ---- rollback ----------------------------------------------------------------------------------


@pytest.mark.parametrize("repo", ["image", "director"])
def test_rollback_of_metadata_to_an_older_timestamp_is_refused(
    repo: str,
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
    firmware: Callable[[str, int], Path],
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    folder = dep.images.metadata_dir if repo == "image" else dep.director.chain(vehicle.vin).folder
    old_timestamp = (folder / "timestamp.json").read_bytes()
    # The repository moves on, and the vehicle sees the new state.
    if repo == "image":
        dep.images.add_image(
            firmware("tms-1.0.0.bin", 100), ecu_type="tms", hardware_ids=["tms-a"], version="1.0.0"
        )
    else:
        dep.director.clear(vehicle.vin)
    make_primary(vehicle).verify()
    # The attacker replays the older, validly signed timestamp.
    (folder / "timestamp.json").write_bytes(old_timestamp)
    with pytest.raises(MetadataRollbackError):
        make_primary(vehicle).verify()


def test_rollback_to_an_older_image_version_is_refused(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
    firmware: Callable[[str, int], Path],
) -> None:
    newer = dep.images.add_image(
        firmware("bms-2.5.0.bin", 5000),
        ecu_type="bms",
        hardware_ids=["bms-gen2"],
        version="2.5.0",
        requires=["vcms>=3.1"],
    )
    # The BMS runs 2.5.0; the director (honest API, compromised intent) sends it back to 2.4.0.
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    ecus = running(bms=installed(newer))
    with pytest.raises(ImageRollbackError):
        make_primary(vehicle, ecus).verify()


def test_fleet_rollback_is_limited_to_the_image_the_ecu_ran_before(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
    firmware: Callable[[str, int], Path],
) -> None:
    """The one permitted way down: the agent names the image its ECU ran before its last
    install (inside the signed rollback window); any other older image is still refused."""
    dep.images.add_image(
        firmware("bms-2.4.5.bin", 5000),
        ecu_type="bms",
        hardware_ids=["bms-gen2"],
        version="2.4.5",
        requires=["vcms>=3.1"],
    )
    newer = dep.images.add_image(
        firmware("bms-2.5.0.bin", 5000),
        ecu_type="bms",
        hardware_ids=["bms-gen2"],
        version="2.5.0",
        requires=["vcms>=3.1"],
    )
    middle = next(i for i in dep.images.images() if i.meta.version == "2.4.5")
    dep.director.assign_release(vehicle.vin, published.release.meta.name)  # BMS 2.4.0
    vcms = installed(published.vcms)

    def ecus(back: InstalledImage | None) -> list[EcuState]:
        return [
            EcuState("GW-1", "gateway", "gw-tcu4"),
            EcuState("BMS-1", "bms", "bms-gen2", installed(newer), rollback_to=back),
            EcuState("VCMS-1", "vcms", "vcms-gen3", vcms),
        ]

    # It ran 2.4.5 before 2.5.0: the director cannot send it further back, to 2.4.0.
    with pytest.raises(ImageRollbackError):
        make_primary(vehicle, ecus(installed(middle))).verify()
    # A record claiming the same path with another counter is not the image it ran either.
    forged = dataclasses.replace(
        installed(published.bms), release_counter=published.bms.meta.release_counter + 9
    )
    with pytest.raises(ImageRollbackError):
        make_primary(vehicle, ecus(forged)).verify()
    # It ran 2.4.0 before: going back to exactly that image is the permitted fleet rollback.
    directive = make_primary(vehicle, ecus(installed(published.bms))).verify()
    assert {i.path for i in directive.images} >= {published.bms.path}


def test_a_recorded_downgrade_has_a_higher_counter_and_is_accepted(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
    firmware: Callable[[str, int], Path],
) -> None:
    """The legitimate way back: re-publish the old version with a reason (Uptane's
    exceptional operation), which the vehicle accepts because its counter is higher."""
    newer = dep.images.add_image(
        firmware("bms-2.5.0.bin", 5000),
        ecu_type="bms",
        hardware_ids=["bms-gen2"],
        version="2.5.0",
        requires=["vcms>=3.1"],
    )
    back = dep.images.add_image(
        firmware("bms-2.4.1.bin", 5000),
        ecu_type="bms",
        hardware_ids=["bms-gen2"],
        version="2.4.1",
        requires=["vcms>=3.1"],
        downgrade_reason="cold-weather regression",
    )
    assert back.meta.release_counter > newer.meta.release_counter
    dep.director.assign(vehicle.vin, {"BMS-1": back.path})
    ecus = running(bms=installed(newer), vcms=installed(published.vcms))
    directive = make_primary(vehicle, ecus).verify()
    assert [i.path for i in directive.images] == [back.path]


# ---- freeze ------------------------------------------------------------------------------------


@pytest.mark.parametrize("days_later", [2, 10])
def test_freeze_expired_metadata_is_refused_at_the_vehicles_trusted_time(
    days_later: int,
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
    clock: SimClock,
) -> None:
    """The server's clock (and so its metadata) is frozen; the vehicle's trusted time moves
    on. Expiry is judged by the vehicle's injected clock, not the host's: whatever the host's
    date, a vehicle whose time is inside the metadata's life verifies and one past it does not
    (the first half alone would pass on a host clock past the expiry, the second on one before)."""
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    fresh = SimClock(clock.now() + dt.timedelta(hours=20))
    assert make_primary(vehicle, state="fresh", vehicle_clock=fresh).verify().images
    vehicle_clock = SimClock(clock.now() + dt.timedelta(days=days_later))
    with pytest.raises(FreezeError):
        make_primary(vehicle, vehicle_clock=vehicle_clock).verify()


def test_freeze_is_not_raised_while_metadata_is_fresh(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
    clock: SimClock,
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    vehicle_clock = SimClock(clock.now() + dt.timedelta(hours=20))
    assert len(make_primary(vehicle, vehicle_clock=vehicle_clock).verify().images) == 2


def test_server_refreshes_online_metadata_so_an_honest_repository_never_freezes(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
    clock: SimClock,
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    for _ in range(5):  # five days, one request a day
        clock.advance(dt.timedelta(days=1))
        assert len(make_primary(vehicle).verify().images) == 2


# ---- mix and match -----------------------------------------------------------------------------


def test_mix_and_match_targets_not_named_by_the_snapshot_is_refused(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    folder = dep.images.metadata_dir
    current = dep.images.chain.snapshot().signed.meta["targets.json"].version
    # Serve an older (validly signed) targets file under the name the snapshot asks for.
    shutil.copy(folder / f"{current - 1}.targets.json", folder / f"{current}.targets.json")
    with pytest.raises(MixAndMatchError):
        make_primary(vehicle).verify()


def test_mix_and_match_snapshot_not_named_by_the_timestamp_is_refused(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    folder = dep.director.chain(vehicle.vin).folder
    current = dep.director.chain(vehicle.vin).snapshot().signed.version
    shutil.copy(folder / f"{current - 1}.snapshot.json", folder / f"{current}.snapshot.json")
    with pytest.raises(MixAndMatchError):
        make_primary(vehicle).verify()


# ---- wrong hardware ----------------------------------------------------------------------------


def test_wrong_hardware_director_claims_other_hardware_for_the_ecu(
    dep: Deployment,
    published: Published,
    make_primary: MakePrimary,
    firmware: Callable[[str, int], Path],
) -> None:
    """The image fits both BMS generations, so only the director's claim about the ECU is
    wrong: the vehicle must still refuse (Uptane: the director's hardware id must be the ECU's)."""
    both = dep.images.add_image(
        firmware("bms-cal-7.bin", 800),
        ecu_type="bms",
        hardware_ids=["bms-gen1", "bms-gen2"],
        version="7.0.0",
        kind=ImageKind.PARAMS,
    )
    gen1 = _register_gen1_vehicle(dep)
    tf = TargetFile(both.length, dict(both.hashes), both.path)
    sign_director(dep, gen1.vin, director_targets(dep, gen1.vin, {both.path: (tf, {"BMS-1": "bms-gen2"})}))
    with pytest.raises(HardwareMismatchError):
        make_primary(gen1, gen1.ecu_states()).verify()


def _register_gen1_vehicle(dep: Deployment) -> Vehicle:
    """A vehicle whose BMS is a gen1 board."""
    from evota.domain.fleet import EcuIdentity, VehicleIdentity

    ecus = (
        EcuIdentity("GW-1", "gateway", "gw-tcu4"),
        EcuIdentity("BMS-1", "bms", "bms-gen1"),
        EcuIdentity("VCMS-1", "vcms", "vcms-gen3"),
    )
    identity = VehicleIdentity("5YJ3E1EA7KF317000", "GW-1", ecus)
    dep.director.register_vehicle(identity)
    return Vehicle(identity, {})


def test_wrong_hardware_image_built_for_other_hardware(
    dep: Deployment,
    published: Published,
    make_primary: MakePrimary,
) -> None:
    gen1 = _register_gen1_vehicle(dep)
    # The director (compromised) names the BMS with its true hardware, but sends a gen2 image.
    sign_director(
        dep,
        gen1.vin,
        director_targets(
            dep,
            gen1.vin,
            {
                published.vcms.path: (image_tf(published, "vcms"), {"VCMS-1": "vcms-gen3"}),
                published.bms.path: (image_tf(published, "bms"), {"BMS-1": "bms-gen1"}),
            },
        ),
    )
    with pytest.raises(HardwareMismatchError):
        make_primary(gen1, gen1.ecu_states()).verify()


# ---- director-only compromise ------------------------------------------------------------------


def test_director_only_compromise_image_not_in_the_image_repository(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
    tmp_path: Path,
) -> None:
    evil = tmp_path / "evil.bin"
    evil.write_bytes(b"\x90" * 4096)
    tf = TargetFile.from_file("bms/6.6.6/evil.bin", str(evil), ["sha256", "sha512"])
    sign_director(
        dep, vehicle.vin, director_targets(dep, vehicle.vin, {tf.path: (tf, {"BMS-1": "bms-gen2"})})
    )
    with pytest.raises(DirectorImageMismatchError):
        make_primary(vehicle).verify()


def test_director_only_compromise_other_bytes_under_a_published_name(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
    tmp_path: Path,
) -> None:
    evil = tmp_path / "bms-2.4.0.bin"
    evil.write_bytes(b"\x90" * published.bms.length)
    tf = TargetFile.from_file(published.bms.path, str(evil), ["sha256", "sha512"])
    sign_director(
        dep,
        vehicle.vin,
        director_targets(
            dep,
            vehicle.vin,
            {
                published.vcms.path: (image_tf(published, "vcms"), {"VCMS-1": "vcms-gen3"}),
                published.bms.path: (tf, {"BMS-1": "bms-gen2"}),
            },
        ),
    )
    with pytest.raises(DirectorImageMismatchError):
        make_primary(vehicle).verify()


# ---- partial bundle ----------------------------------------------------------------------------


@pytest.mark.parametrize("names_release", [False, True], ids=["release-unnamed", "release-named"])
def test_partial_bundle_director_omits_one_ecu_of_a_release(
    names_release: bool,
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
) -> None:
    releases = [published.release.path] if names_release else []
    sign_director(
        dep,
        vehicle.vin,
        director_targets(
            dep,
            vehicle.vin,
            {
                published.bms.path: (image_tf(published, "bms"), {"BMS-1": "bms-gen2"}),
            },
            releases,
        ),
    )
    with pytest.raises(PartialBundleError):
        make_primary(vehicle).verify()


def test_a_release_partly_installed_already_needs_only_the_rest(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
) -> None:
    dep.director.assign(vehicle.vin, {"BMS-1": published.bms.path})
    ecus = running(vcms=installed(published.vcms))
    assert [i.path for i in make_primary(vehicle, ecus).verify().images] == [published.bms.path]


# ---- vehicle binding ---------------------------------------------------------------------------


def test_director_metadata_for_another_vehicle_is_refused(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
    server: str,
) -> None:
    other = make_vehicle("1HGCM82633A004352")
    dep.director.register_vehicle(other.identity)
    dep.director.assign_release(other.vin, published.release.meta.name)
    # Same director keys, other car's instruction served at this car's URL.
    with pytest.raises(VehicleMismatchError):
        make_primary(vehicle, director_url=f"{server}/repo/director/{other.vin}/metadata/").verify()


# ---- key revocation ----------------------------------------------------------------------------


def _old_signer(dep: Deployment, root: Root, role: str) -> Signer:
    key = root.keys[root.roles[role].keyids[0]]
    found = next(dep.keys.online_dir.parent.rglob(f"retired/*.{key.keyid}.pem"))
    return Signer.from_priv_key_uri(f"file2:{found}", key)


def _publish_chain_with(
    chain: SignedChain,
    dep: Deployment,
    root: Root,
    md: Metadata[Targets],
    targets_signer: Signer,
    online: dict[str, Signer],
) -> None:
    """Write targets → snapshot → timestamp as an attacker holding these keys would."""
    now = dep.clock.now()
    md.signed.version = chain.targets().signed.version + 1
    md.signed.expires = now + dt.timedelta(days=1)
    md.signatures.clear()
    md.sign(targets_signer)
    (chain.folder / f"{md.signed.version}.targets.json").write_bytes(md.to_bytes())
    snap = Metadata(
        Snapshot(
            version=chain.snapshot().signed.version + 1,
            expires=now + dt.timedelta(days=1),
            meta={"targets.json": MetaFile(md.signed.version)},
        )
    )
    snap.sign(online["snapshot"])
    (chain.folder / f"{snap.signed.version}.snapshot.json").write_bytes(snap.to_bytes())
    ts = Metadata(
        Timestamp(
            version=chain.timestamp().signed.version + 1,
            expires=now + dt.timedelta(days=1),
            snapshot_meta=MetaFile(snap.signed.version),
        )
    )
    ts.sign(online["timestamp"])
    (chain.folder / "timestamp.json").write_bytes(ts.to_bytes())


def test_revoked_image_targets_key_signatures_are_refused(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    root_v1 = dep.images.roots.current().signed
    make_primary(vehicle).verify()  # the vehicle trusts root v1
    rotate(dep, RotatableRole.TARGETS)
    assert len(make_primary(vehicle).verify().images) == 2  # walked to root v2, new targets key
    # The attacker stole the old targets key and signs new targets with it.
    stolen = _old_signer(dep, root_v1, "targets")
    root_v2 = dep.images.roots.current().signed
    online = {r: dep.keys.signer(root_v2.keys[root_v2.roles[r].keyids[0]]) for r in ("snapshot", "timestamp")}
    assert all(online.values())
    _publish_chain_with(
        dep.images.chain,
        dep,
        root_v2,
        dep.images.chain.targets(),
        stolen,
        {k: v for k, v in online.items() if v is not None},
    )
    with pytest.raises(SignatureError):
        make_primary(vehicle).verify()


def test_revoked_director_key_signatures_are_refused(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    root_v1 = dep.director.roots.current().signed
    make_primary(vehicle).verify()
    rotate(dep, RotatableRole.DIRECTOR)
    assert len(make_primary(vehicle).verify().images) == 2
    stolen = _old_signer(dep, root_v1, "targets")
    chain = dep.director.chain(vehicle.vin)
    _publish_chain_with(
        chain, dep, root_v1, chain.targets(), stolen, {"snapshot": stolen, "timestamp": stolen}
    )
    with pytest.raises(SignatureError):
        make_primary(vehicle).verify()


# ---- verification order and scope --------------------------------------------------------------


@pytest.mark.parametrize("vcms_version", ["3.0.0", None], ids=["too-old", "unknown"])
def test_an_assignment_that_breaks_a_requirement_is_refused(
    vcms_version: str | None,
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
    firmware: Callable[[str, int], Path],
) -> None:
    """bms 2.5.0 (in no release) requires vcms>=3.1; the VCMS runs 3.0.0, or nothing known."""
    bms = dep.images.add_image(
        firmware("bms-2.5.0.bin", 700),
        ecu_type="bms",
        hardware_ids=["bms-gen2"],
        version="2.5.0",
        requires=["vcms>=3.1"],
    )
    dep.director.assign(vehicle.vin, {"BMS-1": bms.path})
    old_vcms = InstalledImage("vcms/3.0.0/vcms-3.0.0.bin", vcms_version, 1) if vcms_version else None
    ecus = running(vcms=old_vcms)
    with pytest.raises(IncompatibleError, match=r"requires vcms>=3\.1"):
        make_primary(vehicle, ecus).verify()


def test_nothing_can_be_downloaded_after_a_failed_verification(
    dep: Deployment, published: Published, vehicle: Vehicle, make_primary: MakePrimary, tmp_path: Path
) -> None:
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    primary = make_primary(vehicle)
    image = primary.verify().images[0]
    # The director now sends something the vehicle refuses; the earlier directive is void.
    sign_director(
        dep,
        vehicle.vin,
        director_targets(
            dep,
            vehicle.vin,
            {
                published.bms.path: (image_tf(published, "bms"), {"BMS-1": "bms-gen2"}),
            },
        ),
    )
    with pytest.raises(PartialBundleError):
        primary.verify()
    with pytest.raises(RuntimeError):
        primary.download(image, tmp_path / "x.bin")


@pytest.mark.parametrize("case", ["unknown-ecu", "ecu-named-twice", "delegations"])
def test_malformed_director_targets_are_refused(
    case: str, dep: Deployment, published: Published, vehicle: Vehicle, make_primary: MakePrimary
) -> None:
    entries = {
        published.vcms.path: (image_tf(published, "vcms"), {"VCMS-1": "vcms-gen3"}),
        published.bms.path: (image_tf(published, "bms"), {"BMS-1": "bms-gen2"}),
    }
    if case == "unknown-ecu":
        entries[published.bms.path] = (image_tf(published, "bms"), {"BMS-9": "bms-gen2"})
    elif case == "ecu-named-twice":
        entries[published.bms.path] = (image_tf(published, "bms"), {"VCMS-1": "vcms-gen3"})
    targets = director_targets(dep, vehicle.vin, entries)
    if case == "delegations":
        targets.delegations = Delegations(keys={}, roles={})
    sign_director(dep, vehicle.vin, targets)
    expected: dict[str, tuple[type[VerificationError], str]] = {
        "unknown-ecu": (VehicleMismatchError, "names ECU BMS-9, which"),
        "ecu-named-twice": (VehicleMismatchError, "names ECU VCMS-1 more than once"),
        "delegations": (VerificationError, "must not delegate"),
    }
    error, message = expected[case]
    with pytest.raises(error, match=message):
        make_primary(vehicle).verify()


def test_an_unreachable_repository_is_weather_not_an_attack(
    dep: Deployment, vehicle: Vehicle, make_primary: MakePrimary
) -> None:
    import socket

    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/repo/director/{vehicle.vin}/metadata/"
    with pytest.raises(RepositoryUnavailableError):
        make_primary(vehicle, director_url=dead).verify()


# ---- found in review: the cache, whole releases and constraints after the update ---------------


def test_another_vehicles_director_metadata_does_not_lock_the_vehicle_out(
    dep: Deployment, published: Published, vehicle: Vehicle, make_primary: MakePrimary, server: str
) -> None:
    """A man in the middle serves another car's (validly signed, higher-versioned) chain once.
    It is refused, and must leave nothing behind: the next honest cycle verifies."""
    other = make_vehicle("1HGCM82633A004352")
    dep.director.register_vehicle(other.identity)
    for _ in range(4):  # the other car's chain has the higher versions
        dep.director.assign_release(other.vin, published.release.meta.name)
        dep.director.clear(other.vin)
    dep.director.assign_release(other.vin, published.release.meta.name)
    dep.director.assign_release(vehicle.vin, published.release.meta.name)
    with pytest.raises(VehicleMismatchError):
        make_primary(vehicle, director_url=f"{server}/repo/director/{other.vin}/metadata/").verify()
    for _ in range(2):
        assert len(make_primary(vehicle).verify().images) == 2


def test_partial_bundle_an_image_the_update_replaces_does_not_complete_a_release(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
    firmware: Callable[[str, int], Path],
) -> None:
    """The VCMS runs the release's image, but the same update replaces it: not whole."""
    vcms_32 = dep.images.add_image(
        firmware("vcms-3.2.0.bin", 900), ecu_type="vcms", hardware_ids=["vcms-gen3"], version="3.2.0"
    )
    sign_director(
        dep,
        vehicle.vin,
        director_targets(
            dep,
            vehicle.vin,
            {
                published.bms.path: (image_tf(published, "bms"), {"BMS-1": "bms-gen2"}),
                vcms_32.path: (
                    TargetFile(vcms_32.length, dict(vcms_32.hashes), vcms_32.path),
                    {"VCMS-1": "vcms-gen3"},
                ),
            },
            [published.release.path],
        ),
    )
    with pytest.raises(PartialBundleError, match="would be incomplete"):
        make_primary(vehicle, running(vcms=installed(published.vcms))).verify()


def test_an_update_must_not_break_a_requirement_of_an_installed_image(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
    firmware: Callable[[str, int], Path],
) -> None:
    """bms 2.4.0 (installed) requires vcms>=3.1; a recorded VCMS downgrade alone would break it."""
    vcms_30 = dep.images.add_image(
        firmware("vcms-3.0.0.bin", 900),
        ecu_type="vcms",
        hardware_ids=["vcms-gen3"],
        version="3.0.0",
        downgrade_reason="field test",
    )
    dep.director.assign(vehicle.vin, {"VCMS-1": vcms_30.path})
    ecus = running(bms=installed(published.bms), vcms=installed(published.vcms))
    with pytest.raises(
        IncompatibleError, match=r"bms-2\.4\.0\.bin requires vcms>=3\.1; vcms would run 3\.0\.0"
    ):
        make_primary(vehicle, ecus).verify()


def test_a_requirement_unmet_before_the_update_does_not_block_an_unrelated_update(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
) -> None:
    """The BMS runs 2.4.0 while the VCMS version is unknown (a factory image): updating the
    VCMS to the release's 3.1.0 is allowed, and fixes the constraint."""
    dep.director.assign(vehicle.vin, {"VCMS-1": published.vcms.path})
    directive = make_primary(vehicle, running(bms=installed(published.bms))).verify()
    assert [i.path for i in directive.images] == [published.vcms.path]


def test_director_targets_with_malformed_releases_are_refused_with_a_verification_error(
    dep: Deployment,
    published: Published,
    vehicle: Vehicle,
    make_primary: MakePrimary,
) -> None:
    targets = director_targets(
        dep,
        vehicle.vin,
        {
            published.bms.path: (image_tf(published, "bms"), {"BMS-1": "bms-gen2"}),
        },
    )
    targets.unrecognized_fields["custom"][CUSTOM_KEY]["releases"] = None
    sign_director(dep, vehicle.vin, targets)
    with pytest.raises(VerificationError, match="'releases' must be a list"):
        make_primary(vehicle).verify()


def test_a_primary_with_an_ecu_serial_listed_twice_is_a_bug(
    dep: Deployment, vehicle: Vehicle, make_primary: MakePrimary
) -> None:
    with pytest.raises(ValueError, match="listed twice"):
        make_primary(vehicle, [*vehicle.ecu_states(), EcuState("BMS-1", "bms", "bms-gen2")])
