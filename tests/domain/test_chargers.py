"""Charger rules: identities, version negotiation, connector states, session success, times."""

from __future__ import annotations

import datetime as dt

import pytest

from evota.domain.chargers import (
    ConnectorStatus,
    Protocol,
    negotiate,
    normalise_connector_status,
    parse_ocpp_time,
    session_succeeded,
    validate_charge_point_id,
)
from evota.errors import InputError


@pytest.mark.parametrize("good", ["CP1", "DE*ABC*E123".replace("*", "-"), "a" * 48, "site.7_b"])
def test_charge_point_ids_that_are_safe_in_a_url_and_a_user_name(good: str) -> None:
    assert validate_charge_point_id(good) == good


@pytest.mark.parametrize("bad", ["", "a" * 49, "CP 1", "CP/1", "../x", "-CP", "CP:1", "CP%2F"])
def test_charge_point_ids_that_are_not(bad: str) -> None:
    with pytest.raises(InputError):
        validate_charge_point_id(bad)


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["ocpp1.6"], Protocol.V16),
        (["ocpp2.0.1"], Protocol.V201),
        (["ocpp1.6", "ocpp2.0.1"], Protocol.V201),
        (["ocpp2.0.1", "ocpp1.6"], Protocol.V201),
        (["ocpp2.0", "ocpp1.5"], None),
        (["OCPP1.6"], None),
        ([], None),
    ],
)
def test_negotiation_picks_the_newest_shared_version(offered: list[str], chosen: Protocol | None) -> None:
    assert negotiate(offered) is chosen


@pytest.mark.parametrize(
    ("reported", "common"),
    [
        ("Available", ConnectorStatus.AVAILABLE),
        ("Preparing", ConnectorStatus.OCCUPIED),
        ("Charging", ConnectorStatus.OCCUPIED),
        ("SuspendedEV", ConnectorStatus.OCCUPIED),
        ("Finishing", ConnectorStatus.OCCUPIED),
        ("Occupied", ConnectorStatus.OCCUPIED),
        ("Faulted", ConnectorStatus.FAULTED),
        ("Unavailable", ConnectorStatus.UNAVAILABLE),
    ],
)
def test_connector_states_of_both_versions_fold_onto_one_scale(
    reported: str, common: ConnectorStatus
) -> None:
    assert normalise_connector_status(reported) is common


def test_an_unknown_connector_state_is_an_input_error() -> None:
    with pytest.raises(InputError):
        normalise_connector_status("Exploded")


@pytest.mark.parametrize(
    ("energy", "reason", "succeeded"),
    [
        (7200.0, "EVDisconnected", True),
        (7200.0, None, True),
        (7200.0, "Local", True),
        (7200.0, "SOCLimitReached", True),
        (0.0, "EVDisconnected", False),
        (-5.0, None, False),
        (500.0, "PowerLoss", False),
        (500.0, "OvercurrentFault", False),
        (500.0, "EmergencyStop", False),
        (500.0, "Reboot", False),
    ],
)
def test_a_session_succeeds_when_it_delivered_energy_and_did_not_end_on_a_fault(
    energy: float, reason: str | None, succeeded: bool
) -> None:
    assert session_succeeded(energy, reason) is succeeded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T08:00:00Z", dt.datetime(2026, 11, 22, 8, tzinfo=dt.UTC)),
        ("2026-11-22T09:00:00.250+01:00", dt.datetime(2026, 11, 22, 8, 0, 0, 250000, tzinfo=dt.UTC)),
        ("2026-11-22T08:00:00", None),  # no zone: not guessed
        ("yesterday", None),
        (12, None),
        (None, None),
    ],
)
def test_ocpp_times_are_read_as_utc_or_not_at_all(text: object, expected: dt.datetime | None) -> None:
    assert parse_ocpp_time(text) == expected
