"""Parameter (calibration) images and the migration of the user's settings across them.

A parameter image is a JSON object written to an ECU's parameter partition:

    {"evota_params": 1,
     "calibration": {...},                      what the ECU's software reads
     "user_settings": {"schema": 2,
                       "fields": {"charge_limit_pct": {"type": "number", "min": 50,
                                                       "max": 100, "default": 80},
                                  "departure_time": {"type": "time", "default": "07:00"}},
                       "renamed": {"chargeLimit": "charge_limit_pct"}}}

The user's settings (charge limit, departure time) are not in any image: the ECU keeps them
apart, and each parameter version declares the schema it reads them with. When new
parameters are activated, `migrate` carries every setting over: renamed keys follow their
rename, values stay where the new bounds allow, are clamped where they do not, and only a
missing or unusable value takes the default. Seed incident CS-12 is the failure this
prevents: a calibration update that silently put every driver's charge limit back to 100 %.
Keys the new schema does not know are kept (an older version may read them again after a
rollback). Pure: bytes and dicts in, dicts and notes out.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["ParamsImage", "SettingsField", "SettingsSchema", "migrate", "parse_params"]

PARAMS_FORMAT = 1
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclasses.dataclass(frozen=True)
class SettingsField:
    type: str  # "number", "bool", "time" (HH:MM) or "text"
    default: Any
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.type not in ("number", "bool", "time", "text"):
            raise ValueError(f"unknown settings field type {self.type!r}")
        if self.type == "number" and self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("a settings field's min is above its max")
        if self.fit(self.default)[0] != self.default:
            raise ValueError(f"default {self.default!r} does not fit its own field")

    def fit(self, value: Any) -> tuple[Any, str]:
        """The value as this field keeps it, and a note when it had to change ('' if not)."""
        if self.type == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                return self.default, "not a number"
            if self.min is not None and value < self.min:
                return self.min, f"clamped to {self.min:g}"
            if self.max is not None and value > self.max:
                return self.max, f"clamped to {self.max:g}"
            return value, ""
        if self.type == "bool":
            return (value, "") if isinstance(value, bool) else (self.default, "not true/false")
        if self.type == "time":
            ok = isinstance(value, str) and _TIME.fullmatch(value)
            return (value, "") if ok else (self.default, "not a time HH:MM")
        return (value, "") if isinstance(value, str) else (self.default, "not text")


@dataclasses.dataclass(frozen=True)
class SettingsSchema:
    version: int
    fields: Mapping[str, SettingsField]
    renamed: Mapping[str, str] = dataclasses.field(default_factory=dict)  # old key -> new key


@dataclasses.dataclass(frozen=True)
class ParamsImage:
    calibration: Mapping[str, Any]
    schema: SettingsSchema | None


def parse_params(data: bytes) -> ParamsImage:
    """Parse a parameter image (ValueError naming what is wrong)."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"a parameter image must be JSON: {e}") from e
    if not isinstance(body, dict) or body.get("evota_params") != PARAMS_FORMAT:
        raise ValueError("not an evota parameter image (evota_params: 1 is missing)")
    calibration = body.get("calibration", {})
    if not isinstance(calibration, dict):
        raise ValueError("calibration must be an object")
    settings = body.get("user_settings")
    if settings is None:
        return ParamsImage(calibration, None)
    try:
        fields = {
            str(k): SettingsField(str(f["type"]), f["default"], f.get("min"), f.get("max"))
            for k, f in settings["fields"].items()
        }
        renamed = {str(k): str(v) for k, v in settings.get("renamed", {}).items()}
        return ParamsImage(calibration, SettingsSchema(int(settings["schema"]), fields, renamed))
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"malformed user_settings schema: {e!r}") from e


def migrate(
    settings: Mapping[str, Any], schema: SettingsSchema, *, undo: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The user's settings as `schema` reads them, and a note for each value that changed.

    `undo` is the rename map of the newer schema when going back to an older one (a user's
    rollback): its renames are followed backwards first, so the older version finds its keys.
    """
    out = dict(settings)
    notes: list[str] = []
    for old, new in (undo or {}).items():
        if new in out and old not in out:
            out[old] = out.pop(new)
            notes.append(f"{new} renamed back to {old}")
    for old, new in schema.renamed.items():
        if old in out and new not in out:
            out[new] = out.pop(old)
            notes.append(f"{old} renamed to {new}")
    for name, field in schema.fields.items():
        if name not in out:
            out[name] = field.default
            notes.append(f"{name} set to its default {field.default!r}")
            continue
        value, note = field.fit(out[name])
        if note:
            notes.append(f"{name} {out[name]!r}: {note}")
        out[name] = value
    return out, notes
