"""`evota init`, `evota release …`, `evota repo …`, `evota keys …`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from evota.cli.common import (
    DEFAULT_HOME,
    HomeOpt,
    JsonOpt,
    console,
    done,
    open_deployment,
    print_json,
    reports_errors,
)
from evota.clock import SystemClock
from evota.deployment import init_home
from evota.domain.gates import Preconditions, Rule
from evota.domain.policy import InstallPolicy
from evota.domain.release import ImageKind
from evota.errors import InputError
from evota.security.rotation import RotatableRole, rotate

release_app = typer.Typer(
    help="Publish firmware images and releases into the image repository.", no_args_is_help=True
)
repo_app = typer.Typer(help="Inspect and maintain the Uptane repositories.", no_args_is_help=True)
keys_app = typer.Typer(help="Rotate and revoke repository keys.", no_args_is_help=True)


@reports_errors
def init(
    home: HomeOpt = DEFAULT_HOME,
    root_threshold: Annotated[int, typer.Option(help="Root signatures required (k of n).")] = 1,
    root_keys: Annotated[int, typer.Option(help="Root keys to create (n).")] = 1,
) -> None:
    """Create a deployment home: config, keys, image and director repositories."""
    dep = init_home(home, SystemClock(), root_threshold=root_threshold, root_keys=root_keys)
    done("created", f"evota home at {dep.home.path}")
    console.print(f"  image repository   {dep.images.metadata_dir.parent}")
    console.print(f"  director           {dep.home.director_repo}")
    console.print(f"  online keys        {dep.keys.online_dir}  (snapshot, timestamp, director)")
    console.print(
        f"  offline keys       {dep.keys.offline_dir}  (roots {root_threshold}-of-{root_keys}, "
        "image targets): move to an air-gapped machine or HSM"
    )
    console.print(f"  database           {dep.home.database_url()}")


@release_app.command("add")
@reports_errors
def release_add(
    file: Annotated[Path, typer.Argument(help="The image file to publish.")],
    ecu_type: Annotated[str, typer.Option(help="ECU type, e.g. bms, vcms, tms, obc.")],
    hardware_id: Annotated[list[str], typer.Option(help="Hardware id the image is built for (repeatable).")],
    version: Annotated[str, typer.Option(help="Firmware version, e.g. 2.4.0.")],
    requires: Annotated[
        list[str] | None, typer.Option(help='Constraint on another ECU, e.g. "vcms>=3.1" (repeatable).')
    ] = None,
    notes: Annotated[str, typer.Option(help="Release notes.")] = "",
    kind: Annotated[
        ImageKind, typer.Option(help="full image, params (calibration) or delta.")
    ] = ImageKind.FULL,
    base: Annotated[str | None, typer.Option(help="Base target of a delta image.")] = None,
    allow_downgrade: Annotated[
        bool, typer.Option("--allow-downgrade", help="Publish a version lower than the newest.")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why the downgrade (recorded, signed).")] = None,
    requires_state_reset: Annotated[
        bool,
        typer.Option(
            "--requires-state-reset",
            help="An algorithm change: the ECU's state machine is reset and re-checked after the switch.",
        ),
    ] = False,
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """Store an image and sign it into the image repository."""
    if allow_downgrade and not (reason and reason.strip()):
        raise InputError("--allow-downgrade needs --reason TEXT (it is recorded)")
    if reason and not allow_downgrade:
        raise InputError("--reason is only for --allow-downgrade")
    dep = open_deployment(home)
    image = dep.images.add_image(
        file,
        ecu_type=ecu_type,
        hardware_ids=hardware_id,
        version=version,
        requires=requires or [],
        notes=notes,
        kind=kind,
        delta_base=base,
        downgrade_reason=reason if allow_downgrade else None,
        requires_state_reset=requires_state_reset,
    )
    if as_json:
        print_json(image.to_json())
        return
    done(
        "published",
        f"{image.path}  {image.length} bytes  sha256 {image.hashes['sha256'][:16]}…  "
        f"release counter {image.meta.release_counter}",
    )
    if image.meta.downgrade:
        console.print(
            f"  downgrade from {image.meta.downgrade.newest_version}: {image.meta.downgrade.reason}"
        )


@release_app.command("bundle")
@reports_errors
def release_bundle(
    name: Annotated[str, typer.Argument(help="Release name, e.g. energy-2026-03.")],
    image: Annotated[list[str], typer.Option(help="Target path of an image, in install order (repeatable).")],
    notes: Annotated[str, typer.Option(help="Release notes.")] = "",
    min_soc: Annotated[float, typer.Option(help="Vehicle-side: minimum SoC, %, to switch ECUs.")] = 60.0,
    park: Annotated[bool, typer.Option("--park/--any-gear", help="Vehicle-side: gear in P required.")] = True,
    plugged_in: Annotated[
        Rule, typer.Option(help="Vehicle-side: plugged in required, forbidden or any.")
    ] = Rule.ANY,
    charging: Annotated[Rule, typer.Option(help="Vehicle-side: charging required, forbidden or any.")] = (
        Rule.FORBIDDEN
    ),
    ambient: Annotated[
        str, typer.Option(help="Vehicle-side ambient range MIN:MAX in °C (empty side: no bound).")
    ] = "-20:45",
    consent: Annotated[
        bool, typer.Option("--consent", help="Energy-related: the user's consent is required.")
    ] = False,
    hv_off: Annotated[
        bool, typer.Option("--hv-off", help="Vehicle-side: switch only with the HV system off.")
    ] = False,
    rollback_window_hours: Annotated[
        float, typer.Option(help="How long after commit the user may roll back (hours).")
    ] = 72.0,
    home: HomeOpt = DEFAULT_HOME,
    as_json: JsonOpt = False,
) -> None:
    """Define a release: images that must install together, in order, and the preconditions
    every vehicle re-checks on itself before it switches an ECU."""
    low, _, high = ambient.partition(":")
    try:
        pre = Preconditions(
            min_soc_pct=min_soc,
            park_required=park,
            plugged_in=plugged_in,
            charging=charging,
            ambient_min_c=float(low) if low.strip() else None,
            ambient_max_c=float(high) if high.strip() else None,
            consent_required=consent,
            hv_off_required=hv_off,
        )
    except ValueError:
        raise InputError(f"--ambient {ambient!r}: expected MIN:MAX in °C, e.g. -20:45") from None
    policy = InstallPolicy(pre, dt.timedelta(hours=rollback_window_hours))
    bundle = open_deployment(home).images.add_bundle(name, image, notes, policy)
    if as_json:
        print_json(bundle.to_json())
        return
    done("released", f"{bundle.meta.name}: " + " → ".join(bundle.meta.images))


@release_app.command("list")
@reports_errors
def release_list(home: HomeOpt = DEFAULT_HOME, as_json: JsonOpt = False) -> None:
    """List published images and releases."""
    dep = open_deployment(home)
    images, bundles = dep.images.images(), dep.images.bundles()
    if as_json:
        print_json({"images": [i.to_json() for i in images], "releases": [b.to_json() for b in bundles]})
        return
    table = Table("ecu", "hardware", "version", "counter", "kind", "requires")
    # Target paths are what operators copy into other commands: fold, never truncate.
    table.add_column("target", overflow="fold")
    for i in sorted(images, key=lambda i: (i.meta.ecu_type, i.meta.release_counter)):
        table.add_row(
            i.meta.ecu_type,
            ", ".join(i.meta.hardware_ids),
            i.meta.version,
            str(i.meta.release_counter),
            i.meta.kind.value,
            ", ".join(str(r) for r in i.meta.requires),
            i.path,
        )
    console.print(table)
    for b in bundles:
        console.print(f"release {b.meta.name}: " + " → ".join(b.meta.images))


@repo_app.command("trust-root")
@reports_errors
def trust_root(
    home: HomeOpt = DEFAULT_HOME,
    repo: Annotated[str, typer.Option(help="image or director.")] = "image",
) -> None:
    """Print the current root.json, to provision vehicles with."""
    dep = open_deployment(home)
    if repo not in ("image", "director"):
        raise InputError("--repo is image or director")
    data = dep.images.trust_root() if repo == "image" else dep.director.trust_root()
    typer.echo(data.decode("utf-8"))


@repo_app.command("refresh")
@reports_errors
def repo_refresh(home: HomeOpt = DEFAULT_HOME) -> None:
    """Re-sign online metadata that has used half its lifetime (serve does this itself)."""
    dep = open_deployment(home)
    changed = dep.images.refresh()
    changed_vins = [vin for vin in dep.director.vehicles() if dep.director.refresh(vin)]
    console.print(
        f"image repository {'re-signed' if changed else 'fresh'}; "
        f"director re-signed for {len(changed_vins)} vehicle(s)"
    )


@keys_app.command("rotate")
@reports_errors
def keys_rotate(
    role: Annotated[RotatableRole, typer.Option(help="Role whose keys to replace.")],
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Replace a role's keys: new root version signed by old and new root keys."""
    result = rotate(open_deployment(home), role)
    done(
        "rotated",
        f"{result.repository} {'/'.join(result.roles)}: root v{result.root_version}; "
        f"revoked {', '.join(k[:12] for k in result.old_keyids)}; "
        f"new {', '.join(k[:12] for k in result.new_keyids)}",
    )
