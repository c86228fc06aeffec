"""The vehicle CSV: every bad row reported by its line, and nothing returned if any is bad."""

from __future__ import annotations

import pytest

from evota.domain.registry import RowsRejectedError, parse_vehicle_csv

HEADER = "vin,model,depot,region,climate_zone,time_zone,tags,ecus,primary_ecu\n"
ECUS = "gateway:GW-1:gw-tcu4|bms:BMS-1:bms-gen2:2.4.0"
GOOD = f"WVWZZZ1JZ3W386752,eVan-3,berlin-north,eu-central,cold,Europe/Berlin,pilot;night,{ECUS},\n"


def test_a_good_file() -> None:
    [(line, spec)] = parse_vehicle_csv(HEADER + GOOD)
    assert line == 2
    assert spec.tags == ("night", "pilot")
    assert spec.primary_serial == "GW-1"
    assert [(e.ecu_type, e.installed_version) for e in spec.ecus] == [("gateway", None), ("bms", "2.4.0")]


def test_columns_may_come_in_any_order_and_primary_may_be_named() -> None:
    text = "ecus,vin,model,depot,region,climate_zone,time_zone,primary_ecu\n"
    text += "bms:BMS-1:bms-gen2|vcms:VCMS-1:vcms-gen3,WVWZZZ1JZ3W386752,eVan-3,d1,r1,warm,UTC,VCMS-1\n"
    [(_, spec)] = parse_vehicle_csv(text)
    assert spec.primary_serial == "VCMS-1" and spec.tags == ()


BAD = {
    "bad-vin": (
        "WVWZZZ1JZ3W38675I,eVan-3,d1,r1,cold,UTC,,{e},",
        "VIN 'WVWZZZ1JZ3W38675I' has an unknown format",
    ),
    "empty-model": ("WVWZZZ1JZ3W386752,,d1,r1,cold,UTC,,{e},", "model is empty"),
    "climate": ("WVWZZZ1JZ3W386752,m,d1,r1,tropical,UTC,,{e},", "climate zone 'tropical' is unknown"),
    "time-zone": ("WVWZZZ1JZ3W386752,m,d1,r1,cold,Mars/Olympus,,{e},", "time zone 'Mars/Olympus' is unknown"),
    "depot-format": (
        "WVWZZZ1JZ3W386752,m,Berlin North,r1,cold,UTC,,{e},",
        "depot 'Berlin North' has an unknown",
    ),
    "tag-format": ("WVWZZZ1JZ3W386752,m,d1,r1,cold,UTC,Pilot!,{e},", "tag 'Pilot!' has an unknown format"),
    "ecu-shape": ("WVWZZZ1JZ3W386752,m,d1,r1,cold,UTC,,bms:BMS-1,", "expected type:serial:hardware_id"),
    "ecu-version": ("WVWZZZ1JZ3W386752,m,d1,r1,cold,UTC,,gateway:GW-1:gw-a:latest,", "version 'latest'"),
    "ecu-twice": ("WVWZZZ1JZ3W386752,m,d1,r1,cold,UTC,,gateway:GW-1:gw-a|bms:GW-1:bms-a,", "listed twice"),
    "no-primary": ("WVWZZZ1JZ3W386752,m,d1,r1,cold,UTC,,bms:BMS-1:bms-a,", "name the primary in primary_ecu"),
    "unknown-primary": ("WVWZZZ1JZ3W386752,m,d1,r1,cold,UTC,,{e},TMS-9", "primary_ecu 'TMS-9' is not among"),
    "extra-field": ("WVWZZZ1JZ3W386752,m,d1,r1,cold,UTC,,{e},GW-1,surplus", "more fields than columns"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_row_is_reported_by_its_line(case: str) -> None:
    bad, message = BAD[case]
    with pytest.raises(RowsRejectedError) as refused:
        parse_vehicle_csv(HEADER + GOOD.replace("386752", "386750") + bad.format(e=ECUS) + "\n")
    [error] = refused.value.errors
    assert error.line == 3
    assert message in error.message


def test_every_bad_row_is_reported_not_just_the_first() -> None:
    rows = [GOOD, GOOD, GOOD.replace("cold", "tropical"), GOOD.replace("386752", "386753")]
    with pytest.raises(RowsRejectedError) as refused:
        parse_vehicle_csv(HEADER + "".join(rows))
    assert [(e.line, e.message.split(" ")[0]) for e in refused.value.errors] == [(3, "VIN"), (4, "climate")]
    assert "already on line 2" in refused.value.errors[0].message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("vin,model\nWVWZZZ1JZ3W386752,m\n", "missing column(s): depot, region"),
        (HEADER, "no vehicles in the file"),
        ("", "missing column(s)"),
    ],
    ids=["missing-columns", "header-only", "empty"],
)
def test_files_that_are_not_a_fleet(text: str, message: str) -> None:
    with pytest.raises(RowsRejectedError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_vehicle_csv(text)
