"""Parameter images and the migration of the user's settings (seed incident CS-12)."""

from __future__ import annotations

import json

import pytest

from evota.domain.params import SettingsField, SettingsSchema, migrate, parse_params

V2 = SettingsSchema(
    2,
    {
        "max_charge_pct": SettingsField("number", 85, 55, 95),
        "departure_time": SettingsField("time", "07:00"),
        "preconditioning": SettingsField("bool", True),
    },
    {"charge_limit_pct": "max_charge_pct"},
)

CASES = [
    (
        "kept",
        {"max_charge_pct": 70, "departure_time": "06:15", "preconditioning": False},
        {"max_charge_pct": 70, "departure_time": "06:15", "preconditioning": False},
        0,
    ),
    (
        "renamed",
        {"charge_limit_pct": 70, "departure_time": "06:15", "preconditioning": False},
        {"max_charge_pct": 70, "departure_time": "06:15", "preconditioning": False},
        1,
    ),
    (
        "clamped high",
        {"max_charge_pct": 100, "departure_time": "06:15", "preconditioning": True},
        {"max_charge_pct": 95, "departure_time": "06:15", "preconditioning": True},
        1,
    ),
    (
        "clamped low",
        {"max_charge_pct": 20, "departure_time": "06:15", "preconditioning": True},
        {"max_charge_pct": 55, "departure_time": "06:15", "preconditioning": True},
        1,
    ),
    (
        "unusable value takes the default",
        {"max_charge_pct": "80", "departure_time": "25:00"},
        {"max_charge_pct": 85, "departure_time": "07:00", "preconditioning": True},
        3,
    ),
    (
        "unknown keys stay",
        {"eco_mode": "on"},
        {"eco_mode": "on", "max_charge_pct": 85, "departure_time": "07:00", "preconditioning": True},
        3,
    ),
]


@pytest.mark.parametrize(("before", "after", "notes"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_migrate(before: dict[str, object], after: dict[str, object], notes: int) -> None:
    out, why = migrate(before, V2)
    assert out == after
    assert len(why) == notes


def test_going_back_follows_the_renames_backwards() -> None:
    v1 = SettingsSchema(1, {"charge_limit_pct": SettingsField("number", 80, 50, 100)})
    out, _ = migrate({"max_charge_pct": 75}, v1, undo=V2.renamed)
    assert out == {"charge_limit_pct": 75}


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"not json", "must be JSON"),
        (b"{}", "not an evota parameter image"),
        (json.dumps({"evota_params": 1, "calibration": []}).encode(), "calibration must be an object"),
        (
            json.dumps({"evota_params": 1, "user_settings": {"fields": {}}}).encode(),
            "malformed user_settings",
        ),
        (
            json.dumps(
                {
                    "evota_params": 1,
                    "user_settings": {
                        "schema": 1,
                        "fields": {"x": {"type": "number", "default": 200, "min": 0, "max": 100}},
                    },
                }
            ).encode(),
            "does not fit",
        ),
    ],
)
def test_a_bad_parameter_image_is_refused_with_its_reason(data: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_params(data)
