"""Provisioning a vehicle: its state folder, keys, trusted roots and factory images.

Done on the line (end of line programming) from the deployment's home: the vehicle must be
in the fleet registry; each ECU gets its own key (a simulated ECU keeps it in its folder and
signs its own reports, as a real one would), the primary gets its key, both repositories'
current roots are written as the trust anchors, and every ECU partition starts with a
factory image in slot A, marked good. A factory image is the published image of the
version the registry says the ECU runs, when there is one; otherwise a small image named
`factory/...` (release counter 0, so every published image is newer). The server then
registers the keys with the director and issues the device token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from evota.agent.errors import ProvisioningError
from evota.agent.images import ImageStore
from evota.agent.secondary import ImageRef, Partition
from evota.agent.simulated import create_simulated_ecu
from evota.agent.state import EcuConfig, StateDir, VehicleConfig
from evota.deployment import Deployment
from evota.domain.fleet import EcuIdentity, VehicleIdentity
from evota.domain.release import ImageKind
from evota.errors import InputError, NotFoundError
from evota.fsutil import atomic_write
from evota.security.image_repo import PublishedImage
from evota.server.services import devices
from evota.server.store.db import Database
from evota.server.store.models import VehicleRow

__all__ = ["DEFAULT_USER_SETTINGS", "EcuArg", "default_params_image", "provision_vehicle"]

DEFAULT_USER_SETTINGS = {"charge_limit_pct": 80, "departure_time": "07:00"}
EcuArg = tuple[str, str, str]  # (ecu_type, serial, hardware_id)


def default_params_image() -> bytes:
    """The factory parameter set: an empty calibration and the first user-settings schema."""
    body = {
        "evota_params": 1,
        "calibration": {},
        "user_settings": {
            "schema": 1,
            "fields": {
                "charge_limit_pct": {"type": "number", "min": 50, "max": 100, "default": 80},
                "departure_time": {"type": "time", "default": "07:00"},
            },
        },
    }
    return json.dumps(body, sort_keys=True).encode()


def _ref(path: str, data: bytes, version: str) -> ImageRef:
    return ImageRef(path, len(data), hashlib.sha256(data).hexdigest(), version)


def _factory_firmware(
    dep: Deployment, published: Sequence[PublishedImage], ecu_type: str, hwid: str, version: str | None
) -> tuple[ImageRef, bytes, int]:
    for image in published:
        m = image.meta
        if (m.ecu_type, m.version, m.kind) == (ecu_type, version, ImageKind.FULL) and hwid in m.hardware_ids:
            folder, _, name = image.path.rpartition("/")
            stored = dep.images.target_file(f"{folder}/{image.hashes['sha256']}.{name}")
            if stored is not None:
                data = stored.read_bytes()
                return _ref(image.path, data, m.version), data, m.release_counter
    version = version or "0"
    data = f"evota factory image {ecu_type} {hwid} {version}\n".encode() * 64
    return _ref(f"factory/{ecu_type}/{version}/{hwid}.bin", data, version), data, 0


def provision_vehicle(
    dep: Deployment,
    db: Database,
    *,
    vin: str,
    state_dir: Path,
    server_url: str,
    ecus: Sequence[EcuArg] = (),
    uds: Mapping[str, Mapping[str, Any]] | None = None,
    now: dt.datetime,
) -> VehicleConfig:
    """Create `state_dir` for `vin` and register its keys; returns the vehicle's config.

    A provisioning that fails removes the folder it made, so it can simply be run again.
    """
    if state_dir.exists() and any(state_dir.iterdir()):
        raise ProvisioningError(f"{state_dir} is not empty: a vehicle is provisioned once per state folder")
    try:
        return _provision(
            dep, db, vin=vin, state_dir=state_dir, server_url=server_url, ecus=ecus, uds=uds, now=now
        )
    except BaseException:
        shutil.rmtree(state_dir, ignore_errors=True)
        raise


def _provision(
    dep: Deployment,
    db: Database,
    *,
    vin: str,
    state_dir: Path,
    server_url: str,
    ecus: Sequence[EcuArg],
    uds: Mapping[str, Mapping[str, Any]] | None,
    now: dt.datetime,
) -> VehicleConfig:
    with db.sessions() as session:
        row = session.scalars(
            select(VehicleRow).where(VehicleRow.vin == vin).options(selectinload(VehicleRow.ecus))
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"{vin} is not in the fleet registry (add it with `evota fleet import`)")
        registry = {e.serial: (e.ecu_type, e.hardware_id, e.installed_version) for e in row.ecus}
        primary_serial = row.primary_serial
    secondaries = {s: v for s, v in registry.items() if s != primary_serial}
    if ecus:
        given = {serial: (t, hw) for t, serial, hw in ecus}
        expected = {s: (t, hw) for s, (t, hw, _) in secondaries.items()}
        if given != expected:
            raise InputError(
                f"{vin}: the ECUs given {sorted(given.items())} differ from the registry's secondaries "
                f"{sorted(expected.items())}"
            )
    uds = uds or {}
    if unknown := set(uds) - set(secondaries):
        raise InputError(f"--uds names ECUs that are not secondaries of {vin}: {', '.join(sorted(unknown))}")

    state = StateDir(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    store = ImageStore(state / "images")
    published = dep.images.images()
    known: dict[str, dict[str, Any]] = {}
    identities = []
    configs = []
    for serial, (ecu_type, hwid, version) in secondaries.items():
        if serial in uds:  # a real (or separately simulated) ECU: it has its own flash and key
            options = dict(uds[serial])
            key = options.pop("public_key", None)
            if not isinstance(key, dict):
                raise InputError(f"ECU {serial}: the UDS options carry no public_key (the ECU's key)")
            identities.append(EcuIdentity(serial, ecu_type, hwid, key))
            configs.append(EcuConfig(serial, ecu_type, hwid, "uds", options))
            continue
        firmware, data, counter = _factory_firmware(dep, published, ecu_type, hwid, version)
        params = default_params_image()
        params_ref = _ref(f"factory/{ecu_type}/params/{hwid}.json", params, "0")
        store.put(firmware, data)
        store.put(params_ref, params)
        known[firmware.path] = {"version": firmware.version, "release_counter": counter}
        known[params_ref.path] = {"version": "0", "release_counter": 0}
        key = create_simulated_ecu(
            state.ecu_folder(serial),
            serial=serial,
            ecu_type=ecu_type,
            hardware_id=hwid,
            factory={Partition.FIRMWARE: (firmware, data), Partition.PARAMS: (params_ref, params)},
            settings=DEFAULT_USER_SETTINGS,
        )
        identities.append(EcuIdentity(serial, ecu_type, hwid, key))
        configs.append(EcuConfig(serial, ecu_type, hwid, "simulated", {"folder": f"ecus/{serial}"}))

    p_type, p_hwid, p_version = registry[primary_serial]
    gateway, _, _ = _factory_firmware(dep, published, p_type, p_hwid, p_version)
    signer = CryptoSigner.generate_ed25519()
    (state_dir / "keys").mkdir(mode=0o700, exist_ok=True)
    atomic_write(state / "keys" / "primary.pem", signer.private_bytes, mode=0o600)
    public = {"keyid": signer.public_key.keyid, **signer.public_key.to_dict()}
    identity = VehicleIdentity(
        vin, primary_serial, (EcuIdentity(primary_serial, p_type, p_hwid, public), *identities)
    )

    atomic_write(state / "trust" / "image-root.json", dep.images.trust_root())
    atomic_write(state / "trust" / "director-root.json", dep.director.trust_root())
    state.write_json("known.json", known)
    config = VehicleConfig(
        vin=vin,
        primary_serial=primary_serial,
        primary_type=p_type,
        primary_hardware_id=p_hwid,
        primary_image={**gateway.to_dict()},
        server_url=server_url,
        ecus=tuple(configs),
    )
    token = devices.provision(db, dep.director, identity, actor=f"provisioning:{vin}", now=now)
    atomic_write(state / "token", token.encode(), mode=0o600)
    # Written last: a folder without vehicle.json is a provisioning that did not finish.
    state.write_json("vehicle.json", config.to_dict())
    return config
