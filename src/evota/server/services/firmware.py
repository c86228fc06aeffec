"""Charger firmware images: publish (sign and store), list, find, and check before a campaign.

An image is stored once under `HOME/charger-firmware/images/<sha256>.<name>` and served to
chargers by `evota serve` at `/charger-firmware/<sha256>/<name>` (the location sent in
UpdateFirmware); its row holds the Base64 signature over the whole file and the certificate
it was signed under. Publishing needs the offline signing key, as releases need the offline
targets key; nothing else here does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evota.errors import InputError, NotFoundError
from evota.fsutil import atomic_write
from evota.security.firmware_signing import FirmwarePki, check_certificate, verify_firmware
from evota.server.services.audit import record
from evota.server.store.charger_models import ChargerFirmwareRow
from evota.server.store.db import Database

__all__ = [
    "MAX_IMAGE",
    "FirmwareView",
    "add_firmware",
    "check_image",
    "firmware_file",
    "images_folder",
    "list_firmware",
    "load_firmware",
    "validate_label",
]

MAX_IMAGE = 512 * 1024 * 1024
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+:~-]{0,49}$")  # vendor, model, version as chargers say them
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class FirmwareView:
    id: int
    vendor: str
    model: str
    version: str
    file_name: str
    sha256: str
    size: int
    certificate_serial: str
    published_by: str
    published_at: dt.datetime

    @property
    def path(self) -> str:
        """The URL path chargers download it from."""
        return f"/charger-firmware/{self.sha256}/{self.file_name}"

    def to_json(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["published_at"] = self.published_at.isoformat()
        out["path"] = self.path
        return out


def _view(row: ChargerFirmwareRow) -> FirmwareView:
    return FirmwareView(
        row.id,
        row.vendor,
        row.model,
        row.version,
        row.file_name,
        row.sha256,
        row.size,
        row.certificate_serial,
        row.published_by,
        row.published_at,
    )


def validate_label(value: str, what: str) -> str:
    """A vendor, model or firmware version as a charger reports it (OCPP: at most 50 characters)."""
    if not isinstance(value, str) or not _LABEL.fullmatch(value):
        raise InputError(
            f"{what} {value!r}: 1-50 letters, digits, spaces or ._+:~- (starting with a letter or digit)"
        )
    return value


def images_folder(home: Path) -> Path:
    return home / "charger-firmware" / "images"


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._-")[:128]
    return cleaned or "firmware.bin"


def add_firmware(
    db: Database,
    pki: FirmwarePki,
    home: Path,
    *,
    path: Path,
    vendor: str,
    model: str,
    version: str,
    actor: str,
    now: dt.datetime,
) -> FirmwareView:
    """Sign an image with the home's firmware signing key, store it, and register it.

    Raises:
        InputError: a bad label, an empty or oversized file, or that image/version exists.
        KeyUnavailableError: the offline signing key is not mounted.
    """
    for value, what in ((vendor, "vendor"), (model, "model"), (version, "version")):
        validate_label(value, what)
    if not path.is_file():
        raise InputError(f"{path} is not a file")
    size = path.stat().st_size
    if not 0 < size <= MAX_IMAGE:
        raise InputError(f"{path}: an image has 1 byte to {MAX_IMAGE // 2**20} MiB ({size} bytes)")
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    name = _safe_name(path.name)
    with db.sessions() as session:
        if session.scalars(select(ChargerFirmwareRow.id).where(ChargerFirmwareRow.sha256 == sha256)).first():
            raise InputError(f"{path.name} is registered already (same SHA-256)")
    signed = pki.sign(data)  # the key is used before anything is written
    atomic_write(images_folder(home) / f"{sha256}.{name}", data)
    with db.sessions.begin() as session:
        row = ChargerFirmwareRow(
            vendor=vendor,
            model=model,
            version=version,
            file_name=name,
            sha256=sha256,
            size=size,
            signature=signed.signature,
            certificate_pem=signed.certificate_pem,
            certificate_serial=signed.certificate_serial,
            published_by=actor,
            published_at=now,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            raise InputError(f"{vendor} {model} firmware {version} is registered already") from None
        record(
            session,
            actor=actor,
            action="charger.firmware.add",
            subject=f"charger-firmware:{vendor}/{model}/{version}",
            details={"sha256": sha256, "size": size, "file": name, "certificate": signed.certificate_serial},
            now=now,
        )
        return _view(row)


def list_firmware(db: Database, *, model: str | None = None) -> list[FirmwareView]:
    query = select(ChargerFirmwareRow).order_by(
        ChargerFirmwareRow.vendor, ChargerFirmwareRow.model, ChargerFirmwareRow.id
    )
    if model:
        query = query.where(ChargerFirmwareRow.model == model)
    with db.sessions() as session:
        return [_view(r) for r in session.scalars(query)]


def load_firmware(session: Session, *, vendor: str | None, model: str, version: str) -> ChargerFirmwareRow:
    """The image of `version` for this model (NotFoundError if none; InputError if the vendor is
    left out and two vendors have one)."""
    query = select(ChargerFirmwareRow).where(
        ChargerFirmwareRow.model == model, ChargerFirmwareRow.version == version
    )
    if vendor:
        query = query.where(ChargerFirmwareRow.vendor == vendor)
    rows = session.scalars(query).all()
    if not rows:
        raise NotFoundError(
            f"no firmware {version} for {vendor + ' ' if vendor else ''}{model} is registered"
        )
    if len(rows) > 1:
        raise InputError(f"firmware {version} for {model} exists for several vendors: name the vendor")
    return rows[0]


def firmware_file(home: Path, sha256: str, name: str) -> Path | None:
    """The stored file behind a download path, or None (never a path outside the folder)."""
    if not _SHA256.fullmatch(sha256) or not _FILE.fullmatch(name):
        return None
    path = images_folder(home) / f"{sha256}.{name}"
    return path if path.is_file() else None


def check_image(
    home: Path, row: ChargerFirmwareRow, root_pem: bytes, *, now: dt.datetime, until: dt.datetime
) -> None:
    """The pre-flight a station would do, done before a charger is asked: the stored bytes
    hash as registered, the certificate is issued by the root and valid until `until` (a
    campaign's end), and the signature verifies over the whole file.

    Raises:
        InputError: the stored file is missing or changed.
        FirmwareCertificateError, FirmwareSignatureError: see `security.firmware_signing`.
    """
    path = firmware_file(home, row.sha256, row.file_name)
    if path is None:
        raise InputError(f"the image of {row.model} {row.version} is missing from {images_folder(home)}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != row.sha256:
        raise InputError(f"the stored image of {row.model} {row.version} has changed since it was registered")
    check_certificate(row.certificate_pem, root_pem, now=now, valid_until=until)
    verify_firmware(data, row.signature, row.certificate_pem, root_pem, now=now)
