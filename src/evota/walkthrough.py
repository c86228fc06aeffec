"""The secure-delivery story, end to end, as `evota demo` tells it.

An operator creates a home, publishes a BMS and a VCMS image as one release, and serves the
repositories; a vehicle, knowing only the two trusted roots, verifies the director's
instruction against the image repository (Uptane full verification), downloads the images,
reports a signed version manifest that the server checks, and refuses a tampered image.
Every step runs the same code as the CLI and the server, over real HTTP on loopback.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from securesystemslib.signer import CryptoSigner

from evota.clock import Clock, SystemClock
from evota.deployment import Deployment, init_home
from evota.domain.fleet import EcuIdentity, VehicleIdentity
from evota.errors import EvotaError
from evota.security.manifest import (
    EcuReport,
    sign_ecu_report,
    sign_vehicle_manifest,
    verify_vehicle_manifest,
)
from evota.security.uptane import EcuState, Primary, RepositoryAccess
from evota.server.app import create_app
from evota.server.runner import serve_in_thread

__all__ = ["run_walkthrough"]

VIN = "WP0ZZZ99ZTS392124"


def _firmware(folder: Path, name: str, calibration: dict[str, object], size: int) -> Path:
    """A stand-in image: a JSON calibration header, then filler to a realistic size."""
    body = json.dumps(calibration).encode() + b"\n"
    path = folder / name
    path.write_bytes(body + bytes(i % 251 for i in range(size - len(body))))
    return path


def _step(console: Console, n: int, title: str, command: str = "") -> None:
    console.print(f"\n[bold cyan]{n}. {title}[/]")
    if command:
        console.print(f"   [dim]$ {command}[/]")


def run_walkthrough(console: Console, workdir: Path | None = None, clock: Clock | None = None) -> bool:
    """Tell the story; True if every step behaved as it should."""
    clock = clock or SystemClock()
    with tempfile.TemporaryDirectory(prefix="evota-demo-") as tmp:
        base = workdir or Path(tmp)
        home_path = base / "home"
        _step(
            console,
            1,
            "Create a deployment home (2-of-3 root keys, kept offline)",
            f"evota init --home {home_path} --root-threshold 2 --root-keys 3",
        )
        dep = init_home(home_path, clock, root_threshold=2, root_keys=3)
        console.print(f"   home {dep.home.path}; offline keys in {dep.keys.offline_dir}")
        return _story(console, dep, base, clock)


def _story(console: Console, dep: Deployment, base: Path, clock: Clock) -> bool:
    fw = base / "firmware"
    fw.mkdir(exist_ok=True)
    vcms_file = _firmware(fw, "vcms-3.1.0.bin", {"ecu": "vcms", "charge_limit_default": 0.8}, 48_000)
    bms_file = _firmware(fw, "bms-2.4.0.bin", {"ecu": "bms", "soc_ocv_table": "nmc-v7"}, 96_000)

    _step(
        console,
        2,
        "Publish a VCMS and a BMS image that needs it, as one release",
        "evota release add bms-2.4.0.bin --ecu-type bms --hardware-id bms-gen2 --version 2.4.0 "
        '--requires "vcms>=3.1"',
    )
    vcms = dep.images.add_image(vcms_file, ecu_type="vcms", hardware_ids=["vcms-gen3"], version="3.1.0")
    bms = dep.images.add_image(
        bms_file,
        ecu_type="bms",
        hardware_ids=["bms-gen2"],
        version="2.4.0",
        requires=["vcms>=3.1"],
        notes="better SoC estimation in the cold",
    )
    release = dep.images.add_bundle("energy-2026-11", [vcms.path, bms.path])
    for image in (vcms, bms):
        console.print(
            f"   published {image.path} ({image.length} B, sha256 {image.hashes['sha256'][:12]}…, "
            f"counter {image.meta.release_counter})"
        )
    console.print(f"   release {release.meta.name}: {' → '.join(release.meta.images)}")

    _step(
        console,
        3,
        "A lower version is refused unless it is a recorded downgrade",
        "evota release add bms-2.3.0.bin --ecu-type bms --hardware-id bms-gen2 --version 2.3.0",
    )
    old = _firmware(fw, "bms-2.3.0.bin", {"ecu": "bms"}, 1000)
    try:
        dep.images.add_image(old, ecu_type="bms", hardware_ids=["bms-gen2"], version="2.3.0")
        console.print("   [red]accepted: this is a bug[/]")
        return False
    except EvotaError as e:
        console.print(f"   refused: {escape(str(e))}")

    _step(
        console,
        4,
        "Register a vehicle and let the director assign the release",
        f"evota director assign {VIN} --release {release.meta.name}",
    )
    signers = {s: CryptoSigner.generate_ed25519() for s in ("GW-0001", "BMS-0001", "VCMS-0001")}
    ecus = (
        ("GW-0001", "gateway", "gw-tcu4"),
        ("BMS-0001", "bms", "bms-gen2"),
        ("VCMS-0001", "vcms", "vcms-gen3"),
    )
    vehicle = VehicleIdentity(
        VIN,
        "GW-0001",
        tuple(
            EcuIdentity(s, t, h, {"keyid": signers[s].public_key.keyid, **signers[s].public_key.to_dict()})
            for s, t, h in ecus
        ),
    )
    dep.director.register_vehicle(vehicle)
    for serial, target in sorted(dep.director.assign_release(VIN, release.meta.name).items()):
        console.print(f"   {serial} → {target}")

    app = create_app(dep, refresh_interval_s=None)
    with serve_in_thread(app) as url:
        _step(console, 5, "Serve both repositories over HTTP", f"evota serve --home {dep.home.path}")
        console.print(f"   {url}/repo/image/metadata/  ·  {url}/repo/director/{VIN}/metadata/")
        ok = _vehicle(console, dep, base, clock, url, vehicle, signers)
    return ok


def _vehicle(
    console: Console,
    dep: Deployment,
    base: Path,
    clock: Clock,
    url: str,
    vehicle: VehicleIdentity,
    signers: dict[str, CryptoSigner],
) -> bool:
    _step(
        console,
        6,
        "The vehicle verifies, knowing only the two roots it was provisioned with",
        "evota repo trust-root --home … > image-root.json",
    )
    state = base / "vehicle"
    ecus = [EcuState(e.serial, e.ecu_type, e.hardware_id) for e in vehicle.ecus]
    director_access = RepositoryAccess(
        f"{url}/repo/director/{vehicle.vin}/metadata/", dep.director.trust_root(), state / "director"
    )
    image_access = RepositoryAccess(
        f"{url}/repo/image/metadata/", dep.images.trust_root(), state / "image", f"{url}/repo/image/targets/"
    )
    primary = Primary(vin=vehicle.vin, ecus=ecus, clock=clock, director=director_access, image=image_access)
    directive = primary.verify()
    console.print(
        f"   director targets v{directive.director_version} verified; matched in the image repository:"
    )
    for image in directive.images:
        path = primary.download(image, state / "staging" / image.ecu_serial)
        console.print(
            f"   [green]✓[/] {image.ecu_serial}: {image.path} v{image.meta.version} "
            f"downloaded and verified ({path.stat().st_size} B)"
        )

    _step(console, 7, "The vehicle reports a signed version manifest; the server checks it")
    now = clock.now()
    reports = {}
    for image in directive.images:
        report = EcuReport(
            image.ecu_serial, image.path, image.target.length, dict(image.target.hashes), now, 1
        )
        reports[image.ecu_serial] = sign_ecu_report(report, signers[image.ecu_serial])
    manifest = sign_vehicle_manifest(
        vin=vehicle.vin,
        primary_serial=vehicle.primary_serial,
        reports=reports,
        time=now,
        counter=1,
        signer=signers[vehicle.primary_serial],
    )
    accepted = verify_vehicle_manifest(manifest, vehicle, last=None, now=now)
    console.print(
        f"   accepted: {', '.join(f'{s} runs {r.installed_path}' for s, r in accepted.reports.items())}"
    )
    try:
        verify_vehicle_manifest(manifest, vehicle, last=accepted.counters, now=now)
        console.print("   [red]replay accepted: this is a bug[/]")
        return False
    except EvotaError as e:
        console.print(f"   the same manifest again is refused: {escape(str(e))}")

    _step(console, 8, "An attacker flips one byte of a stored image: the vehicle refuses it")
    target = directive.images[0]
    stored = dep.images.target_file(
        f"{target.path.rpartition('/')[0]}/{target.target.hashes['sha256']}.{target.path.rpartition('/')[2]}"
    )
    assert stored is not None
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    again = Primary(vin=vehicle.vin, ecus=ecus, clock=clock, director=director_access, image=image_access)
    for image in again.verify().images[:1]:
        try:
            again.download(image, state / "staging" / "tampered")
            console.print("   [red]tampered image accepted: this is a bug[/]")
            return False
        except EvotaError as e:
            console.print(f"   refused ({type(e).__name__}): {escape(str(e))}")
    console.print(
        "\n[bold green]Secure delivery works end to end.[/] Staged campaigns: see the README"
        " (evota serve, /api/v1/). Next: the vehicle agent and the fleet simulation."
    )
    return True
