"""The rollout planner: a running campaign's state and `now` in, decisions out.

`plan(view, now)` is pure: the controller loads a `CampaignView` from the database, calls it,
and applies the decisions in one transaction. It decides, in this order:

1. Timeouts: an install offered longer ago than the install timeout is a failure.
2. The error gate: once at least `min_executed` vehicles of the waves so far finished (updated,
   failed or rolled back), more than `error_threshold_pct` of them failing halts the campaign.
   A vehicle that waits for its preconditions is not a failure ("deferred is not failed").
3. Offers: vehicles of the waves so far that are not yet offered, in wave then VIN order:
   held if incompatible, waiting (with every reason) if a gate or window says no or the vehicle
   is not provisioned yet, else offered while the throttle (`max_concurrent` installs in
   flight) has room.
4. Progress: the wave advances when its dwell time has passed since it started, nothing of it
   is in flight, at least `success_threshold_pct` of its compatible vehicles are updated, and,
   if the campaign has a health gate, the gate's latest verdict on this wave is "proceed" and
   rests on the wave's own telemetry over its dwell (the median updated vehicle of the wave
   had sent KPIs from at least a dwell after its update: the clock of the dwell starts when
   the wave starts, but a symptom builds up on the updated vehicles, from their update);
   after the last wave the campaign completes when nothing is left to offer or in flight.

Before all of these, a health gate's "rollback" verdict rolls the campaign back: no offer,
timeout or progress matters once the updated cohort is shown worse than its control.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from typing import Any

from evota.domain.campaign import CampaignState
from evota.domain.charger_compat import validate_capability
from evota.domain.gates import (
    EnergyState,
    MaintenanceWindow,
    Preconditions,
    Rule,
    check_preconditions,
    in_window,
)
from evota.errors import InputError

__all__ = [
    "Advance",
    "CampaignView",
    "Complete",
    "Decision",
    "DeviceStatus",
    "DeviceView",
    "Halt",
    "Health",
    "Hold",
    "Offer",
    "RollBack",
    "RolloutPolicy",
    "TimeOut",
    "Wait",
    "plan",
    "policy_from_dict",
    "policy_to_dict",
]


class DeviceStatus(enum.StrEnum):
    PENDING = "pending"  # in scope, not offered yet (or waiting)
    OFFERED = "offered"  # the director assigns it the release; the agent is working on it
    UPDATED = "updated"  # committed the release
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    HELD = "held"  # incompatible; not offered

    @property
    def finished(self) -> bool:
        return self in (DeviceStatus.UPDATED, DeviceStatus.FAILED, DeviceStatus.ROLLED_BACK)


@dataclasses.dataclass(frozen=True)
class RolloutPolicy:
    dwell: dt.timedelta = dt.timedelta(hours=24)
    max_concurrent: int = 50
    install_timeout: dt.timedelta = dt.timedelta(hours=6)
    error_threshold_pct: float = 5.0
    min_executed: int = 3
    success_threshold_pct: float = 80.0
    preconditions: Preconditions = dataclasses.field(default_factory=Preconditions)
    windows: tuple[MaintenanceWindow, ...] = ()
    # The first wave's dwell, when the canary should run longer than the waves after it
    # (None: `dwell`): a symptom that takes two days of driving must show before wave 2.
    first_dwell: dt.timedelta | None = None

    def dwell_of(self, wave: int) -> dt.timedelta:
        return self.first_dwell if wave == 0 and self.first_dwell is not None else self.dwell

    # A charger capability the release needs (e.g. "iso15118-20-bidirectional" for V2X): a
    # vehicle is held unless every charger at its depot is certified for it.
    charger_capability: str | None = None

    def __post_init__(self) -> None:
        if self.charger_capability is not None:
            validate_capability(self.charger_capability)
        if self.max_concurrent < 1:
            raise InputError("the throttle must allow at least one install at a time")
        if not 0 <= self.error_threshold_pct <= 100 or not 0 <= self.success_threshold_pct <= 100:
            raise InputError("thresholds are percentages between 0 and 100")
        if self.min_executed < 1:
            raise InputError("the error gate needs at least one executed vehicle")


@dataclasses.dataclass(frozen=True)
class DeviceView:
    vin: str
    wave: int
    status: DeviceStatus
    time_zone: str
    energy: EnergyState | None = None
    consent: bool = False
    incompatible: str | None = None  # why, if the release breaks a constraint on this vehicle
    offered_at: dt.datetime | None = None
    provisioned: bool = True  # its keys are registered with the director, so it can be assigned


@dataclasses.dataclass(frozen=True)
class Health:
    """The health gate's latest verdict on the current wave (see `domain/health.py`)."""

    outcome: str  # "proceed", "hold" or "rollback"
    reason: str = ""
    # How long the current wave's median updated vehicle had run the release, as far as the
    # telemetry the look saw reaches (None: not measured, e.g. a verdict stored before it was).
    exposure: dt.timedelta | None = None


@dataclasses.dataclass(frozen=True)
class CampaignView:
    state: CampaignState
    policy: RolloutPolicy
    wave: int  # the current wave (0-based)
    waves: int  # how many waves
    wave_started_at: dt.datetime
    devices: Sequence[DeviceView]
    # Vehicles that finished (updated, failed, rolled back) and are not in `devices`, counted
    # by (wave, status): the gates need only their numbers, and late in a big campaign they
    # are most of it, so the controller need not load them one by one.
    finished: Mapping[tuple[int, DeviceStatus], int] = dataclasses.field(default_factory=dict)
    gated: bool = False  # the campaign has a health gate: no wave advances without "proceed"
    health: Health | None = None  # its latest verdict on the current wave (None: none yet)

    def finished_count(
        self, *, wave: int | None = None, upto: int | None = None, updated: bool | None = None
    ) -> int:
        """How many of `finished` are in `wave` (or waves up to `upto`), updated or not."""
        return sum(
            n
            for (w, status), n in self.finished.items()
            if (wave is None or w == wave)
            and (upto is None or w <= upto)
            and (updated is None or (status is DeviceStatus.UPDATED) == updated)
        )


@dataclasses.dataclass(frozen=True)
class Offer:
    vin: str


@dataclasses.dataclass(frozen=True)
class Wait:
    vin: str
    reasons: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Hold:
    vin: str
    reason: str


@dataclasses.dataclass(frozen=True)
class TimeOut:
    vin: str


@dataclasses.dataclass(frozen=True)
class Advance:
    to_wave: int


@dataclasses.dataclass(frozen=True)
class Halt:
    reason: str


@dataclasses.dataclass(frozen=True)
class Complete:
    pass


@dataclasses.dataclass(frozen=True)
class RollBack:
    reason: str


Decision = Offer | Wait | Hold | TimeOut | Advance | Halt | Complete | RollBack


def plan(view: CampaignView, now: dt.datetime) -> list[Decision]:
    """The decisions for one tick of a campaign (none unless it is running)."""
    if view.state is not CampaignState.RUNNING:
        return []
    if view.gated and view.health is not None and view.health.outcome == "rollback":
        return [RollBack(view.health.reason or "the health gate found the updated cohort worse")]
    policy = view.policy
    in_scope = [d for d in view.devices if d.wave <= view.wave]
    timed_out = {
        d.vin
        for d in in_scope
        if d.status is DeviceStatus.OFFERED
        and d.offered_at is not None
        and now - d.offered_at > policy.install_timeout
    }
    decisions: list[Decision] = [TimeOut(vin) for vin in sorted(timed_out)]

    finished_rows = [d for d in in_scope if d.status.finished or d.vin in timed_out]
    finished = len(finished_rows) + view.finished_count(upto=view.wave)
    failures = sum(1 for d in finished_rows if d.status is not DeviceStatus.UPDATED) + view.finished_count(
        upto=view.wave, updated=False
    )
    if finished >= policy.min_executed and 100 * failures > policy.error_threshold_pct * finished:
        share = 100 * failures / finished
        return [
            *decisions,
            Halt(
                f"{failures} of {finished} finished installs failed or rolled back "
                f"({share:.0f} % > {policy.error_threshold_pct:g} %)"
            ),
        ]

    in_flight = sum(1 for d in in_scope if d.status is DeviceStatus.OFFERED and d.vin not in timed_out)
    room = policy.max_concurrent - in_flight
    pending = sorted((d for d in in_scope if d.status is DeviceStatus.PENDING), key=lambda d: (d.wave, d.vin))
    offered = 0
    for d in pending:
        if d.incompatible:
            decisions.append(Hold(d.vin, f"incompatible ({d.incompatible})"))
            continue
        reasons = check_preconditions(policy.preconditions, d.energy, consent=d.consent, now=now)
        if not d.provisioned:
            reasons.append("provisioning: no keys registered with the director")
        if not in_window(policy.windows, d.time_zone, now):
            reasons.append("window: outside the maintenance window")
        if reasons:
            decisions.append(Wait(d.vin, tuple(reasons)))
        elif offered < room:
            decisions.append(Offer(d.vin))
            offered += 1
        else:
            decisions.append(Wait(d.vin, (f"throttle: {policy.max_concurrent} installs in flight",)))

    decisions.extend(_progress(view, now, in_scope, timed_out, offered))
    return decisions


def _progress(
    view: CampaignView, now: dt.datetime, in_scope: Sequence[DeviceView], timed_out: set[str], offered: int
) -> list[Decision]:
    if offered or any(d.status is DeviceStatus.OFFERED and d.vin not in timed_out for d in in_scope):
        return []  # something of the waves so far is still installing
    if view.wave + 1 >= view.waves:
        pending = [d for d in view.devices if d.status is DeviceStatus.PENDING and not d.incompatible]
        return [] if pending else [Complete()]
    if now - view.wave_started_at < view.policy.dwell_of(view.wave):
        return []
    current = [
        d
        for d in in_scope
        if d.wave == view.wave and not d.incompatible and d.status is not DeviceStatus.HELD
    ]
    updated = sum(1 for d in current if d.status is DeviceStatus.UPDATED) + view.finished_count(
        wave=view.wave, updated=True
    )
    total = len(current) + view.finished_count(wave=view.wave)
    if total and 100 * updated < view.policy.success_threshold_pct * total:
        return []  # not enough of this wave has updated yet (the rest may still be waiting)
    if view.gated and (view.health is None or view.health.outcome != "proceed"):
        return []  # the health gate has not (yet) shown this wave no worse than its control
    exposure = view.health.exposure if view.gated and view.health is not None else None
    if exposure is not None and exposure < view.policy.dwell_of(view.wave):
        return []  # "proceed" on too little driving on the release: wait for the next look
    return [Advance(view.wave + 1)]


def policy_to_dict(policy: RolloutPolicy) -> dict[str, object]:
    """The policy as JSON-safe values (stored with the campaign)."""
    pre = policy.preconditions
    return {
        "dwell_s": policy.dwell.total_seconds(),
        **({"first_dwell_s": policy.first_dwell.total_seconds()} if policy.first_dwell is not None else {}),
        "max_concurrent": policy.max_concurrent,
        "install_timeout_s": policy.install_timeout.total_seconds(),
        "error_threshold_pct": policy.error_threshold_pct,
        "min_executed": policy.min_executed,
        "success_threshold_pct": policy.success_threshold_pct,
        "preconditions": {
            "min_soc_pct": pre.min_soc_pct,
            "park_required": pre.park_required,
            "plugged_in": pre.plugged_in.value,
            "charging": pre.charging.value,
            "ambient_min_c": pre.ambient_min_c,
            "ambient_max_c": pre.ambient_max_c,
            "consent_required": pre.consent_required,
            "max_state_age_s": pre.max_state_age.total_seconds(),
        },
        "windows": [
            {
                "start": w.start.isoformat("minutes"),
                "end": w.end.isoformat("minutes"),
                "weekdays": sorted(w.weekdays),
            }
            for w in policy.windows
        ],
        "charger_capability": policy.charger_capability,
    }


def policy_from_dict(data: dict[str, Any]) -> RolloutPolicy:
    """The inverse of `policy_to_dict`; InputError on anything malformed."""
    try:
        pre = data["preconditions"]
        return RolloutPolicy(
            dwell=dt.timedelta(seconds=float(data["dwell_s"])),
            first_dwell=(
                dt.timedelta(seconds=float(data["first_dwell_s"]))
                if data.get("first_dwell_s") is not None
                else None
            ),
            max_concurrent=int(data["max_concurrent"]),
            install_timeout=dt.timedelta(seconds=float(data["install_timeout_s"])),
            error_threshold_pct=float(data["error_threshold_pct"]),
            min_executed=int(data["min_executed"]),
            success_threshold_pct=float(data["success_threshold_pct"]),
            preconditions=Preconditions(
                min_soc_pct=float(pre["min_soc_pct"]),
                park_required=bool(pre["park_required"]),
                plugged_in=Rule(pre["plugged_in"]),
                charging=Rule(pre["charging"]),
                ambient_min_c=None if pre["ambient_min_c"] is None else float(pre["ambient_min_c"]),
                ambient_max_c=None if pre["ambient_max_c"] is None else float(pre["ambient_max_c"]),
                consent_required=bool(pre["consent_required"]),
                max_state_age=dt.timedelta(seconds=float(pre["max_state_age_s"])),
            ),
            windows=tuple(
                MaintenanceWindow(
                    dt.time.fromisoformat(w["start"]),
                    dt.time.fromisoformat(w["end"]),
                    frozenset(w["weekdays"]),
                )
                for w in data["windows"]
            ),
            charger_capability=data.get("charger_capability"),  # absent in policies stored before it
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"malformed rollout policy: {e!r}") from e
