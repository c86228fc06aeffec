"""A release's install policy: what the vehicle itself must check, and what it may undo.

Signed into the release bundle (the image repository's offline targets key), so a vehicle can
trust it as much as the images: the energy-state preconditions it re-checks before it
switches any ECU, and the window in which its user may roll the release back (practice
RT-18). A director (online key) cannot loosen them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from evota.domain.gates import Preconditions, Rule
from evota.errors import InputError

__all__ = ["DEFAULT_ROLLBACK_WINDOW", "InstallPolicy", "safety_rollback_preconditions"]

DEFAULT_ROLLBACK_WINDOW = dt.timedelta(hours=72)


@dataclasses.dataclass(frozen=True)
class InstallPolicy:
    preconditions: Preconditions = dataclasses.field(default_factory=Preconditions)
    rollback_window: dt.timedelta = DEFAULT_ROLLBACK_WINDOW

    def __post_init__(self) -> None:
        if self.rollback_window < dt.timedelta(0):
            raise InputError("a rollback window cannot be negative")

    def to_dict(self) -> dict[str, Any]:
        """Numbers are decimal strings: canonical JSON, which TUF signs, has no floats."""
        p = self.preconditions
        return {
            "min_soc_pct": _num(p.min_soc_pct),
            "park_required": p.park_required,
            "plugged_in": p.plugged_in.value,
            "charging": p.charging.value,
            "ambient_min_c": _num(p.ambient_min_c),
            "ambient_max_c": _num(p.ambient_max_c),
            "consent_required": p.consent_required,
            "hv_off_required": p.hv_off_required,
            "rollback_window_h": _num(self.rollback_window.total_seconds() / 3600),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstallPolicy:
        """Parse a policy (ValueError if malformed); absent fields take the defaults."""
        d = Preconditions()
        try:
            pre = Preconditions(
                min_soc_pct=float(data.get("min_soc_pct", d.min_soc_pct)),
                park_required=bool(data.get("park_required", d.park_required)),
                plugged_in=Rule(data.get("plugged_in", d.plugged_in.value)),
                charging=Rule(data.get("charging", d.charging.value)),
                ambient_min_c=_opt_float(data.get("ambient_min_c", d.ambient_min_c)),
                ambient_max_c=_opt_float(data.get("ambient_max_c", d.ambient_max_c)),
                consent_required=bool(data.get("consent_required", d.consent_required)),
                hv_off_required=bool(data.get("hv_off_required", d.hv_off_required)),
            )
            window = dt.timedelta(hours=float(data.get("rollback_window_h", 72)))
            return cls(pre, window)
        except (TypeError, ValueError, InputError) as e:
            raise ValueError(f"malformed install policy: {e}") from e


def _num(value: float | None) -> str | None:
    return None if value is None else f"{value:g}"


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


# A slot switch back to the image an ECU ran a day ago needs seconds and little energy.
SAFETY_ROLLBACK_MIN_SOC_PCT = 20.0


def safety_rollback_preconditions(release: Preconditions) -> Preconditions:
    """What a fleet (safety) rollback still checks on the vehicle, from the release's own.

    Bypassed, because a rollback removes a hazard rather than adds one and waiting costs more
    than it saves: user consent (the operator's safety decision stands in for it), the ambient
    temperature band (the bad calibration may be exactly the one that misbehaves in the cold),
    maintenance windows and the campaign throttle (server-side: every exposed vehicle is asked
    at once), and most of the SoC margin (a switch to the other slot writes nothing; 20 % is
    kept so the vehicle can still reach a charger). Never bypassed, because each protects
    the switch itself: the vehicle parked, not charging when the release forbade it (the BMS
    reboots), the HV system off when the release requires it, and a fresh energy state.
    """
    return dataclasses.replace(
        release,
        min_soc_pct=min(release.min_soc_pct, SAFETY_ROLLBACK_MIN_SOC_PCT),
        ambient_min_c=None,
        ambient_max_c=None,
        consent_required=False,
    )
