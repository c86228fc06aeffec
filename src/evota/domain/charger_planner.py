"""The charger campaign planner: a campaign's state and `now` in, decisions out.

`plan(view, now)` is pure; `server/services/charger_controller.py` loads the view and
applies the decisions in one transaction. In order:

1. Tracking (in every started state, so that rollbacks and validations finish even in a
   halted or rolled-back campaign): an updating charger whose request installed is
   validating, one whose request failed has failed; a validating charger is updated once it
   booted on the target version and every connector is Available again, and is rolled back
   if that does not happen within `available_within`, or if it reboots more than
   `max_boots` times; a rolling-back charger is rolled back once its request installed.
2. Gates (running only): an InvalidSignature or a refused certificate halts at once (the
   image or the PKI is wrong everywhere); more than `error_threshold_pct` of finished
   chargers failing halts; a session regression of the updated cohort against the control
   cohort (`domain/charger_health.py`) halts and rolls every exposed charger back (the
   campaign ends rolled back). A halt cancels what was not sent yet, and sends pending
   installs that have not started installing their last good firmware instead: OCPP has no
   cancel verb but a newer request (AcceptedCanceled).
3. Sends: pending chargers of the waves so far, in wave then id order: held if they cannot
   be updated safely, waiting (every reason) if offline, outside their window, or in a
   session that must not be interrupted (1.6 without the security extension cannot schedule
   the install after it; `defer_during_sessions` holds the others too), else sent while the
   throttle has room.
4. Progress: the wave advances when nothing of the waves so far is in flight, its dwell has
   passed, `success_threshold_pct` of its chargers are updated and the session gate says
   proceed; after the last wave the campaign completes on the same conditions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from evota.domain.campaign import CampaignState
from evota.domain.charger_campaign import ChargerPolicy, MemberStatus
from evota.domain.charger_health import Tally, Validation, Verdict, compare_sessions
from evota.domain.firmware import RequestState
from evota.domain.gates import in_window

__all__ = [
    "Advance",
    "CampaignView",
    "Cancel",
    "Complete",
    "Decision",
    "Halt",
    "Hold",
    "Mark",
    "MemberView",
    "RollBack",
    "Send",
    "Wait",
    "plan",
]

M = MemberStatus
_NOT_INSTALLING = frozenset(
    {
        RequestState.SENDING,
        RequestState.ACCEPTED,
        RequestState.DOWNLOAD_SCHEDULED,
        RequestState.DOWNLOADING,
        RequestState.DOWNLOADED,
        RequestState.VERIFIED,
        RequestState.INSTALL_SCHEDULED,
    }
)
_HALTING_FAILURES = ("InvalidSignature", "InvalidCertificate", "RevokedCertificate")


@dataclasses.dataclass(frozen=True)
class MemberView:
    charge_point_id: str
    wave: int
    status: MemberStatus
    site: str
    time_zone: str
    status_at: dt.datetime  # when it entered `status`
    connected: bool = True
    busy: bool = False  # a session is ongoing
    plain: bool = False  # OCPP 1.6 without the security extension
    firmware_version: str | None = None
    booted_at: dt.datetime | None = None
    connectors_available: bool = False  # every connector Available since the last boot
    boots: int = 0  # since the install
    request: RequestState | None = None  # its newest request in this campaign
    request_reason: str | None = None
    hold: str | None = None  # why it cannot be updated safely
    no_rollback: str | None = None  # why it could not be rolled back


@dataclasses.dataclass(frozen=True)
class CampaignView:
    state: CampaignState
    policy: ChargerPolicy
    target_version: str
    wave: int
    waves: int
    wave_started_at: dt.datetime
    members: Sequence[MemberView]
    updated_sessions: Tally = dataclasses.field(
        default_factory=Tally
    )  # sessions on the target firmware since the start
    control_sessions: Tally = dataclasses.field(
        default_factory=Tally
    )  # sessions on that model's other firmware since the start

    def validation(self) -> Validation:
        return compare_sessions(self.updated_sessions, self.control_sessions, self.policy.sessions)


@dataclasses.dataclass(frozen=True)
class Send:
    charge_point_id: str


@dataclasses.dataclass(frozen=True)
class Wait:
    charge_point_id: str
    reasons: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Hold:
    charge_point_id: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Mark:
    charge_point_id: str
    status: MemberStatus
    reason: str | None = None


@dataclasses.dataclass(frozen=True)
class RollBack:
    charge_point_id: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Cancel:
    """Withdraw a request not sent yet; the charger is pending again."""

    charge_point_id: str
    reason: str


@dataclasses.dataclass(frozen=True)
class Advance:
    to_wave: int


@dataclasses.dataclass(frozen=True)
class Halt:
    reason: str
    roll_back: bool = False  # a session regression: the campaign ends rolled back


@dataclasses.dataclass(frozen=True)
class Complete:
    pass


Decision = Send | Wait | Hold | Mark | RollBack | Cancel | Advance | Halt | Complete
_STARTED = frozenset(
    set(CampaignState) - {CampaignState.DRAFT, CampaignState.APPROVED, CampaignState.COMPLETED}
)


def _minutes(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() / 60:g} min"


def _roll_back(m: MemberView, reason: str) -> Decision:
    if m.no_rollback:
        return Mark(m.charge_point_id, M.FAILED, f"{reason}; cannot roll back: {m.no_rollback}")
    return RollBack(m.charge_point_id, reason)


def _track(view: CampaignView, m: MemberView, now: dt.datetime) -> Decision | None:
    """Where a member in flight goes next (None: it stays)."""
    policy, target = view.policy, view.target_version
    if m.status is M.UPDATING:
        if m.request is RequestState.INSTALLED:
            return Mark(m.charge_point_id, M.VALIDATING)
        if m.request in (RequestState.FAILED, RequestState.CANCELED):
            return Mark(m.charge_point_id, M.FAILED, m.request_reason or f"request {m.request.value}")
    elif m.status is M.VALIDATING:
        rebooted_since = m.booted_at is not None and m.booted_at > m.status_at
        if rebooted_since and m.firmware_version != target:
            return Mark(
                m.charge_point_id, M.FAILED, f"booted {m.firmware_version} after the install, not {target}"
            )
        if m.boots > policy.max_boots:
            return _roll_back(m, f"reboot loop: {m.boots} boots since the install")
        if m.firmware_version == target and m.connectors_available:
            return Mark(m.charge_point_id, M.UPDATED)
        if now - m.status_at > policy.available_within:
            why = (
                "no boot on the new firmware" if m.firmware_version != target else "connectors not Available"
            )
            return _roll_back(m, f"{why} within {_minutes(policy.available_within)} of the install")
    elif m.status is M.ROLLING_BACK:
        if m.request is RequestState.INSTALLED:
            return Mark(m.charge_point_id, M.ROLLED_BACK)
        if m.request in (RequestState.FAILED, RequestState.CANCELED):
            return Mark(
                m.charge_point_id, M.FAILED, f"rollback failed: {m.request_reason or m.request.value}"
            )
    return None


def _after(m: MemberView, d: Decision | None) -> MemberStatus:
    return d.status if isinstance(d, Mark) else (M.ROLLING_BACK if isinstance(d, RollBack) else m.status)


def plan(view: CampaignView, now: dt.datetime) -> list[Decision]:
    """The decisions for one tick of a charger campaign."""
    if view.state not in _STARTED:
        return []
    tracked = {m.charge_point_id: _track(view, m, now) for m in view.members}
    status = {m.charge_point_id: _after(m, tracked[m.charge_point_id]) for m in view.members}
    if view.state is CampaignState.ROLLED_BACK:
        return _rolled_back(view, status, tracked)
    decisions: list[Decision] = [d for d in tracked.values() if d is not None]
    if view.state is not CampaignState.RUNNING:
        return decisions
    halt = _gates(view, status)
    if halt is not None:
        return [*decisions, *_halting(view, status, tracked, halt), halt]
    sends = _sends(view, status, now)
    decisions.extend(sends)
    if not any(isinstance(d, Send) for d in sends):
        decisions.extend(_progress(view, status, now))
    return decisions


def _rolled_back(
    view: CampaignView, status: dict[str, MemberStatus], tracked: dict[str, Decision | None]
) -> list[Decision]:
    """An operator (or a regression) rolled the campaign back: what installed goes back too,
    and what was not sent yet is withdrawn."""
    out: list[Decision] = []
    for m in view.members:
        cpid, decided = m.charge_point_id, tracked[m.charge_point_id]
        if status[cpid] in (M.VALIDATING, M.UPDATED):
            out.append(_roll_back(m, "the campaign was rolled back"))
        elif status[cpid] is M.UPDATING and m.request is RequestState.QUEUED:
            out.append(Cancel(cpid, "the campaign was rolled back before it was sent"))
        elif decided is not None:
            out.append(decided)
    return out


def _gates(view: CampaignView, status: dict[str, MemberStatus]) -> Halt | None:
    policy = view.policy
    for m in view.members:
        if m.request is RequestState.FAILED and any(f in (m.request_reason or "") for f in _HALTING_FAILURES):
            return Halt(f"{m.charge_point_id}: {m.request_reason} (the image or its certificate is refused)")
    scope = [m for m in view.members if m.wave <= view.wave]
    finished = [m for m in scope if status[m.charge_point_id].finished]
    failures = sum(1 for m in finished if status[m.charge_point_id] is not M.UPDATED)
    if len(finished) >= policy.min_executed and 100 * failures > policy.error_threshold_pct * len(finished):
        share = 100 * failures / len(finished)
        return Halt(
            f"{failures} of {len(finished)} finished chargers failed or rolled back "
            f"({share:.0f} % > {policy.error_threshold_pct:g} %)"
        )
    validation = view.validation()
    if validation.verdict is Verdict.ROLLBACK:
        return Halt(validation.reason, roll_back=True)
    return None


def _halting(
    view: CampaignView, status: dict[str, MemberStatus], tracked: dict[str, Decision | None], halt: Halt
) -> list[Decision]:
    """What a halt does to the members: withdraw what was not sent, cancel (by a newer
    request) what has not begun installing, and on a regression roll back what installed."""
    out: list[Decision] = []
    for m in view.members:
        cpid = m.charge_point_id
        if status[cpid] is M.UPDATING and m.request is RequestState.QUEUED:
            out.append(Cancel(cpid, "the campaign halted before it was sent"))
        elif status[cpid] is M.UPDATING and m.request in _NOT_INSTALLING:
            out.append(_roll_back(m, "the campaign halted before the install began"))
        elif halt.roll_back and status[cpid] in (M.VALIDATING, M.UPDATED):
            out.append(_roll_back(m, halt.reason))
    return out


def _sends(view: CampaignView, status: dict[str, MemberStatus], now: dt.datetime) -> list[Decision]:
    policy = view.policy
    scope = [m for m in view.members if m.wave <= view.wave]
    in_flight = sum(1 for m in view.members if status[m.charge_point_id] in (M.UPDATING, M.ROLLING_BACK))
    room = policy.max_concurrent - in_flight
    out: list[Decision] = []
    for m in sorted(
        (m for m in scope if m.status in (M.PENDING, M.HELD)), key=lambda m: (m.wave, m.charge_point_id)
    ):
        if m.hold:
            if m.status is not M.HELD:
                out.append(Hold(m.charge_point_id, m.hold))
            continue
        reasons = []
        if not m.connected:
            reasons.append("offline: not connected to the CSMS")
        if not in_window(policy.windows_for(m.site), m.time_zone, now):
            reasons.append("window: outside the site's update window")
        if m.busy and (m.plain or policy.defer_during_sessions):
            reasons.append("session: a charging session is ongoing")
        if reasons:
            out.append(Wait(m.charge_point_id, tuple(reasons)))
        elif room > 0:
            out.append(Send(m.charge_point_id))
            room -= 1
        else:
            out.append(Wait(m.charge_point_id, (f"throttle: {policy.max_concurrent} updates in flight",)))
    return out


def _progress(view: CampaignView, status: dict[str, MemberStatus], now: dt.datetime) -> list[Decision]:
    if any(status[m.charge_point_id].in_flight for m in view.members):
        return []  # something is still updating, validating or rolling back
    if now - view.wave_started_at < view.policy.dwell:
        return []
    scope = [m for m in view.members if m.wave <= view.wave]
    current = [m for m in scope if m.wave == view.wave and status[m.charge_point_id] is not M.HELD]
    updated = sum(1 for m in current if status[m.charge_point_id] is M.UPDATED)
    if current and 100 * updated < view.policy.success_threshold_pct * len(current):
        return []  # not enough of this wave has updated yet (the rest may still be waiting)
    if view.policy.sessions.min_sessions and view.validation().verdict is not Verdict.PROCEED:
        return []  # hold: too few sessions on the new firmware or on control to judge yet
    if view.wave + 1 < view.waves:
        return [Advance(view.wave + 1)]
    pending = [m for m in view.members if status[m.charge_point_id] is M.PENDING and not m.hold]
    return [] if pending else [Complete()]
