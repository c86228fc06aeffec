"""Identifier formats: what passes is safe in a URL, a file name and signed metadata."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from evota.domain.identifiers import (
    validate_ecu_serial,
    validate_ecu_type,
    validate_hardware_id,
    validate_name,
    validate_vin,
)
from evota.errors import InputError

Validator = Callable[[str], str]


def _ok(validator: Validator, value: str) -> None:
    assert validator(value) == value


def _refused(validator: Validator, value: str) -> None:
    with pytest.raises(InputError, match="unknown format") as info:
        validator(value)
    # The message names the offending value so an operator can find it.
    assert repr(value) in str(info.value)


# ---- VIN (ISO 3779) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vin",
    [
        pytest.param("WVWZZZ1JZ3W386752", id="vw"),
        pytest.param("1HGCM82633A004352", id="honda"),
        pytest.param("5YJ3E1EA7KF317000", id="tesla"),
        pytest.param("00000000000000000", id="all-digits"),
        pytest.param("ABCDEFGHJKLMNPRST", id="all-allowed-letters"),
    ],
)
def test_vin_accepted(vin: str) -> None:
    _ok(validate_vin, vin)


@pytest.mark.parametrize(
    "vin",
    [
        pytest.param("", id="empty"),
        pytest.param("WVWZZZ1JZ3W38675", id="16-chars"),
        pytest.param("WVWZZZ1JZ3W3867520", id="18-chars"),
        pytest.param("wvwzzz1jz3w386752", id="lower-case"),
        pytest.param("WVWZZZ1JZ3W38675I", id="letter-I"),
        pytest.param("WVWZZZ1JZ3W38675O", id="letter-O"),
        pytest.param("WVWZZZ1JZ3W38675Q", id="letter-Q"),
        pytest.param("WVWZZZ1JZ3 386752", id="space"),
        pytest.param("WVWZZZ1JZ3-386752", id="dash"),
        pytest.param("WVWZZZ1JZ3W386752\n", id="trailing-newline"),
        pytest.param("../../etc/passwd1", id="path-traversal-17-chars"),
    ],
)
def test_vin_refused(vin: str) -> None:
    _refused(validate_vin, vin)


# ---- ECU type ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ecu_type",
    [
        pytest.param("bms", id="bms"),
        pytest.param("vcms", id="vcms"),
        pytest.param("gateway", id="gateway"),
        pytest.param("dcdc", id="dcdc"),
        pytest.param("obc2", id="with-digit"),
        pytest.param("ab", id="two-chars-min"),
        pytest.param("a" * 16, id="16-chars-max"),
    ],
)
def test_ecu_type_accepted(ecu_type: str) -> None:
    _ok(validate_ecu_type, ecu_type)


@pytest.mark.parametrize(
    "ecu_type",
    [
        pytest.param("", id="empty"),
        pytest.param("b", id="one-char"),
        pytest.param("a" * 17, id="17-chars"),
        pytest.param("BMS", id="upper-case"),
        pytest.param("2bms", id="leading-digit"),
        pytest.param("bms-x", id="dash"),
        pytest.param("bms_x", id="underscore"),
        pytest.param("bms x", id="space"),
        pytest.param("bms\n", id="trailing-newline"),
    ],
)
def test_ecu_type_refused(ecu_type: str) -> None:
    _refused(validate_ecu_type, ecu_type)


# ---- hardware id ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hardware_id",
    [
        pytest.param("bms-gen2", id="bms-gen2"),
        pytest.param("vcms-b1", id="vcms-b1"),
        pytest.param("obc-11kw.rev3", id="dot-separator"),
        pytest.param("gw_tcu4", id="underscore-separator"),
        pytest.param("a", id="one-char"),
        pytest.param("a" * 64, id="64-chars-max"),
    ],
)
def test_hardware_id_accepted(hardware_id: str) -> None:
    _ok(validate_hardware_id, hardware_id)


@pytest.mark.parametrize(
    "hardware_id",
    [
        pytest.param("BMS Gen2", id="upper-case-and-space"),
        pytest.param("", id="empty"),
        pytest.param("-x", id="leading-dash"),
        pytest.param("bms/gen2", id="slash"),
        pytest.param("a" * 65, id="65-chars"),
        pytest.param("bms-", id="trailing-dash"),
        pytest.param("bms--gen2", id="double-separator"),
        pytest.param("2bms", id="leading-digit"),
        pytest.param("bms-gen2\n", id="trailing-newline"),
        pytest.param("..", id="dot-dot"),
    ],
)
def test_hardware_id_refused(hardware_id: str) -> None:
    _refused(validate_hardware_id, hardware_id)


# ---- ECU serial -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "serial",
    [
        pytest.param("BMS-000123", id="typical"),
        pytest.param("GW-1", id="short"),
        pytest.param("7", id="one-char"),
        pytest.param("A.b_c-1", id="mixed"),
        pytest.param("S" * 64, id="64-chars-max"),
    ],
)
def test_ecu_serial_accepted(serial: str) -> None:
    _ok(validate_ecu_serial, serial)


@pytest.mark.parametrize(
    "serial",
    [
        pytest.param("", id="empty"),
        pytest.param("-BMS", id="leading-dash"),
        pytest.param(".hidden", id="leading-dot"),
        pytest.param("BMS 1", id="space"),
        pytest.param("BMS/1", id="slash"),
        pytest.param("BMS:1", id="colon"),
        pytest.param("BMS=1", id="equals"),
        pytest.param("S" * 65, id="65-chars"),
    ],
)
def test_ecu_serial_refused(serial: str) -> None:
    _refused(validate_ecu_serial, serial)


# ---- release name -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("spring-2026-energy", id="typical"),
        pytest.param("energy-2026-11", id="dated"),
        pytest.param("r1", id="short"),
        pytest.param("2026.03_hotfix", id="leading-digit-dot-underscore"),
        pytest.param("n" * 64, id="64-chars-max"),
    ],
)
def test_release_name_accepted(name: str) -> None:
    _ok(validate_name, name)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("Spring", id="upper-case"),
        pytest.param("-x", id="leading-dash"),
        pytest.param(".x", id="leading-dot"),
        pytest.param("a/b", id="slash"),
        pytest.param("a b", id="space"),
        pytest.param("n" * 65, id="65-chars"),
    ],
)
def test_release_name_refused(name: str) -> None:
    _refused(validate_name, name)
