"""The fleet registry's values, and the vehicle CSV an operator imports.

A vehicle here is what the campaign engine selects on (model, depot, region, climate zone,
time zone, tags) and what its ECUs run; the security layer's `VehicleIdentity` is its keys.
`parse_vehicle_csv` is pure: text in, specs out, or every bad row reported with its line.

CSV columns (header required, order free):

    vin,model,depot,region,climate_zone,time_zone,tags,ecus[,primary_ecu]
    WVWZZZ1JZ3W386752,eVan-3,berlin-north,eu-central,cold,Europe/Berlin,pilot;night,
        gateway:GW-1:gw-tcu4:1.0.0|bms:BMS-1:bms-gen2:2.4.0|vcms:VCMS-1:vcms-gen3:3.1.0

`tags` are separated by ';', `ecus` by '|', each `type:serial:hardware_id[:installed_version]`.
`primary_ecu` names the primary's serial; without it, the one `gateway` ECU is the primary.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import zoneinfo

from evota.domain.identifiers import (
    validate_ecu_serial,
    validate_ecu_type,
    validate_hardware_id,
    validate_vin,
)
from evota.domain.versions import parse_version
from evota.errors import InputError

__all__ = [
    "CLIMATE_ZONES",
    "EcuSpec",
    "RowError",
    "RowsRejectedError",
    "VehicleSpec",
    "parse_vehicle_csv",
]

# Coarse climate classes: what a battery's thermal behaviour and a rollout's stratification
# care about (Köppen groups, folded for EV fleets).
CLIMATE_ZONES = ("polar", "cold", "temperate", "warm", "hot-dry", "hot-humid")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
REQUIRED_COLUMNS = ("vin", "model", "depot", "region", "climate_zone", "time_zone", "ecus")
MAX_ROWS = 1_000_000


@dataclasses.dataclass(frozen=True)
class EcuSpec:
    serial: str
    ecu_type: str
    hardware_id: str
    installed_version: str | None = None


@dataclasses.dataclass(frozen=True)
class VehicleSpec:
    vin: str
    model: str
    depot: str
    region: str
    climate_zone: str
    time_zone: str
    tags: tuple[str, ...]
    ecus: tuple[EcuSpec, ...]
    primary_serial: str


@dataclasses.dataclass(frozen=True)
class RowError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class RowsRejectedError(InputError):
    """Some rows are bad; nothing was imported. `errors` lists every one, by line."""

    code = "rows_rejected"

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[:20])
        more = f"; and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} bad row(s), nothing imported: {shown}{more}")


def _slug(value: str, what: str) -> str:
    if not _SLUG.fullmatch(value):
        raise InputError(f"{what} {value!r} has an unknown format (lower-case letters, digits, . _ -)")
    return value


def _ecu(text: str) -> EcuSpec:
    parts = text.strip().split(":")
    if len(parts) not in (3, 4):
        raise InputError(f"ECU {text!r}: expected type:serial:hardware_id[:installed_version]")
    version = parts[3] if len(parts) == 4 and parts[3] else None
    if version is not None:
        parse_version(version)
    return EcuSpec(
        validate_ecu_serial(parts[1]), validate_ecu_type(parts[0]), validate_hardware_id(parts[2]), version
    )


def _time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InputError(f"time zone {value!r} is unknown (expected e.g. 'Europe/Berlin')") from None
    return value


def _row(row: dict[str, str]) -> VehicleSpec:
    get = {k: (v or "").strip() for k, v in row.items() if k is not None}
    for column in REQUIRED_COLUMNS:
        if not get.get(column):
            raise InputError(f"{column} is empty")
    climate = get["climate_zone"]
    if climate not in CLIMATE_ZONES:
        raise InputError(f"climate zone {climate!r} is unknown (one of {', '.join(CLIMATE_ZONES)})")
    ecus = tuple(_ecu(e) for e in get["ecus"].split("|") if e.strip())
    serials = [e.serial for e in ecus]
    if len(set(serials)) != len(serials):
        raise InputError("an ECU serial is listed twice")
    primary = get.get("primary_ecu", "")
    if not primary:
        gateways = [e.serial for e in ecus if e.ecu_type == "gateway"]
        if len(gateways) != 1:
            raise InputError("name the primary in primary_ecu (there is not exactly one gateway ECU)")
        primary = gateways[0]
    elif primary not in serials:
        raise InputError(f"primary_ecu {primary!r} is not among the ECUs")
    tags = tuple(sorted({_slug(t.strip(), "tag") for t in get.get("tags", "").split(";") if t.strip()}))
    return VehicleSpec(
        vin=validate_vin(get["vin"]),
        model=get["model"][:64],
        depot=_slug(get["depot"], "depot"),
        region=_slug(get["region"], "region"),
        climate_zone=climate,
        time_zone=_time_zone(get["time_zone"]),
        tags=tags,
        ecus=ecus,
        primary_serial=primary,
    )


def parse_vehicle_csv(text: str) -> list[tuple[int, VehicleSpec]]:
    """(line, spec) for every row; RowsRejectedError listing every bad row if any is bad."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise RowsRejectedError([RowError(1, f"missing column(s): {', '.join(missing)}")])
    out: list[tuple[int, VehicleSpec]] = []
    errors: list[RowError] = []
    first_line: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if len(out) + len(errors) >= MAX_ROWS:
            errors.append(RowError(line, f"more than {MAX_ROWS} rows; split the file"))
            break
        if None in row:
            errors.append(RowError(line, "more fields than columns"))
            continue
        try:
            spec = _row(row)
        except InputError as e:
            errors.append(RowError(line, e.message))
            continue
        if spec.vin in first_line:
            errors.append(RowError(line, f"VIN {spec.vin} already on line {first_line[spec.vin]}"))
            continue
        first_line[spec.vin] = line
        out.append((line, spec))
    if errors:
        raise RowsRejectedError(errors)
    if not out:
        raise RowsRejectedError([RowError(1, "no vehicles in the file")])
    return out
