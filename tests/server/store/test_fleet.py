"""Importing and listing the fleet registry, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from evota.domain.registry import RowsRejectedError, parse_vehicle_csv
from evota.server.services.fleet import import_vehicles, list_vehicles
from evota.server.store.db import Database
from evota.server.store.models import EcuRow, VehicleRow, VehicleTagRow

NOW = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)
HEADER = "vin,model,depot,region,climate_zone,time_zone,tags,ecus\n"
ECUS = "gateway:GW-1:gw-tcu4:1.0.0|bms:BMS-1:bms-gen2:2.4.0|vcms:VCMS-1:vcms-gen3:3.0.0"


def row(vin: str, depot: str = "berlin-north", tags: str = "pilot", climate: str = "cold") -> str:
    return f"{vin},eVan-3,{depot},eu-central,{climate},Europe/Berlin,{tags},{ECUS}\n"


FLEET = (
    HEADER
    + row("WVWZZZ1JZ3W386752")
    + row("WVWZZZ1JZ3W386753", "madrid-sur", "", "hot-dry")
    + row("WVWZZZ1JZ3W386754", tags="pilot;night")
)


def count(db: Database, table: type[VehicleRow] | type[EcuRow] | type[VehicleTagRow]) -> int:
    with db.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def test_import_and_list(db: Database) -> None:
    assert import_vehicles(db, parse_vehicle_csv(FLEET), NOW) == 3
    assert (count(db, VehicleRow), count(db, EcuRow), count(db, VehicleTagRow)) == (3, 9, 3)
    berlin = list_vehicles(db, depot="berlin-north")
    assert [v.vin for v in berlin] == ["WVWZZZ1JZ3W386752", "WVWZZZ1JZ3W386754"]
    assert berlin[0].primary_serial == "GW-1"
    assert {e["serial"]: e["installed_version"] for e in berlin[0].ecus}["VCMS-1"] == "3.0.0"
    assert [v.vin for v in list_vehicles(db, tag="night")] == ["WVWZZZ1JZ3W386754"]
    assert [v.vin for v in list_vehicles(db, climate_zone="hot-dry")] == ["WVWZZZ1JZ3W386753"]


def test_an_already_registered_vin_refuses_the_whole_file_by_line(db: Database) -> None:
    import_vehicles(db, parse_vehicle_csv(HEADER + row("WVWZZZ1JZ3W386753")), NOW)
    with pytest.raises(RowsRejectedError) as refused:
        import_vehicles(db, parse_vehicle_csv(FLEET), NOW)
    assert [(e.line, e.message) for e in refused.value.errors] == [
        (3, "VIN WVWZZZ1JZ3W386753 is already registered")
    ]
    assert count(db, VehicleRow) == 1, "nothing of the refused file may be imported"
    assert count(db, EcuRow) == 3


def test_a_large_import_is_one_transaction(db: Database) -> None:
    vins = [f"WVWZZZ1JZ{n:08d}" for n in range(6000)]  # more than one IN (...) chunk
    text = HEADER + "".join(row(v) for v in vins)
    assert import_vehicles(db, parse_vehicle_csv(text), NOW) == 6000
    with pytest.raises(RowsRejectedError) as refused:
        import_vehicles(db, parse_vehicle_csv(HEADER + row("WVWZZZ1JZ99999999") + row(vins[5999])), NOW)
    assert [e.line for e in refused.value.errors] == [3]
    assert count(db, VehicleRow) == 6000
