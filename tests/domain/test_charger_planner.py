"""The charger campaign planner as a table: a view and `now` in, the decisions out."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from evota.domain.campaign import CampaignState
from evota.domain.charger_campaign import (
    ChargerPolicy,
    MemberStatus,
    ScopedCharger,
    assign_charger_waves,
    policy_from_dict,
    policy_to_dict,
    quiet_window,
)
from evota.domain.charger_health import SessionGate, Tally
from evota.domain.charger_planner import (
    Advance,
    CampaignView,
    Cancel,
    Complete,
    Halt,
    Hold,
    Mark,
    MemberView,
    RollBack,
    Send,
    Wait,
    plan,
)
from evota.domain.firmware import RequestState
from evota.domain.gates import MaintenanceWindow
from evota.errors import InputError

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)  # 13:00 in Berlin
EARLIER = NOW - dt.timedelta(minutes=5)
M, R = MemberStatus, RequestState
POLICY = ChargerPolicy(dwell=dt.timedelta(0), sessions=SessionGate(min_sessions=0), min_executed=2)


def member(cpid: str, status: MemberStatus = M.PENDING, wave: int = 0, **kw: object) -> MemberView:
    values: dict[str, object] = {
        "site": "berlin-north",
        "time_zone": "Europe/Berlin",
        "status_at": EARLIER,
        **kw,
    }
    return MemberView(cpid, wave, status, **values)  # type: ignore[arg-type]


def view(*members: MemberView, state: CampaignState = CampaignState.RUNNING, **kw: object) -> CampaignView:
    values: dict[str, object] = {
        "policy": POLICY,
        "target_version": "2.0.0",
        "wave": 0,
        "waves": 2,
        "wave_started_at": EARLIER,
        **kw,
    }
    return CampaignView(state, members=members, **values)  # type: ignore[arg-type]


TARGET = {
    "firmware_version": "2.0.0",
    "booted_at": EARLIER + dt.timedelta(minutes=1),
    "connectors_available": True,
}

CASES: dict[str, tuple[CampaignView, list[object]]] = {
    "a draft plans nothing": (view(member("CP1"), state=CampaignState.DRAFT), []),
    "pending and ready: sent": (view(member("CP1")), [Send("CP1")]),
    "offline: waits with the reason": (
        view(member("CP1", connected=False)),
        [Wait("CP1", ("offline: not connected to the CSMS",))],
    ),
    "a plain 1.6 charger in a session waits": (
        view(member("CP1", busy=True, plain=True)),
        [Wait("CP1", ("session: a charging session is ongoing",))],
    ),
    "a signed charger in a session is sent: it schedules the install after it": (
        view(member("CP1", busy=True)),
        [Send("CP1")],
    ),
    "later waves wait for theirs": (view(member("CP1"), member("CP2", wave=1)), [Send("CP1")]),
    "held with its reason": (
        view(member("CP1", hold="no rollback: no image of 1.0.0")),
        [Hold("CP1", "no rollback: no image of 1.0.0")],
    ),
    "the throttle": (
        view(member("CP1"), member("CP2"), policy=dataclasses.replace(POLICY, max_concurrent=1)),
        [Send("CP1"), Wait("CP2", ("throttle: 1 updates in flight",))],
    ),
    "installed: validating": (
        view(member("CP1", M.UPDATING, request=R.INSTALLED)),
        [Mark("CP1", M.VALIDATING)],
    ),
    "request failed: failed with its reason": (
        view(member("CP1", M.UPDATING, request=R.FAILED, request_reason="InstallationFailed")),
        [Mark("CP1", M.FAILED, "InstallationFailed")],
    ),
    "booted on the target and Available: updated, and the last wave completes": (
        view(member("CP1", M.VALIDATING, **TARGET), waves=1),
        [Mark("CP1", M.UPDATED), Complete()],
    ),
    "validating, not Available yet, within the time: nothing": (
        view(member("CP1", M.VALIDATING, **{**TARGET, "connectors_available": False})),
        [],
    ),
    "not Available in time: rolled back": (
        view(
            member(
                "CP1",
                M.VALIDATING,
                **{**TARGET, "connectors_available": False},
                status_at=NOW - dt.timedelta(minutes=11),
            )
        ),
        [RollBack("CP1", "connectors not Available within 10 min of the install")],
    ),
    "never booted on the new firmware in time: rolled back": (
        view(member("CP1", M.VALIDATING, firmware_version="1.0.0", status_at=NOW - dt.timedelta(minutes=11))),
        [RollBack("CP1", "no boot on the new firmware within 10 min of the install")],
    ),
    "rebooted on the old firmware after the install: failed, nothing to roll back": (
        view(member("CP1", M.VALIDATING, firmware_version="1.0.0", booted_at=NOW)),
        [Mark("CP1", M.FAILED, "booted 1.0.0 after the install, not 2.0.0")],
    ),
    "a reboot loop: rolled back": (
        view(member("CP1", M.VALIDATING, **{**TARGET, "connectors_available": False}, boots=4)),
        [RollBack("CP1", "reboot loop: 4 boots since the install")],
    ),
    "no image to roll back to: failed with both reasons": (
        view(member("CP1", M.VALIDATING, boots=4, no_rollback="no image of 1.0.0")),
        [
            Mark(
                "CP1", M.FAILED, "reboot loop: 4 boots since the install; cannot roll back: no image of 1.0.0"
            )
        ],
    ),
    "rolled back once its request installed": (
        view(member("CP1", M.ROLLING_BACK, request=R.INSTALLED), state=CampaignState.HALTED),
        [Mark("CP1", M.ROLLED_BACK)],
    ),
    "a failed rollback": (
        view(
            member("CP1", M.ROLLING_BACK, request=R.FAILED, request_reason="DownloadFailed"),
            state=CampaignState.HALTED,
        ),
        [Mark("CP1", M.FAILED, "rollback failed: DownloadFailed")],
    ),
    "a paused campaign tracks but sends nothing": (
        view(member("CP1", M.UPDATING, request=R.INSTALLED), member("CP2"), state=CampaignState.PAUSED),
        [Mark("CP1", M.VALIDATING)],
    ),
    "wave done: advance": (view(member("CP1", M.UPDATED), member("CP2", wave=1)), [Advance(1)]),
    "dwell not over: no advance": (
        view(
            member("CP1", M.UPDATED),
            member("CP2", wave=1),
            policy=dataclasses.replace(POLICY, dwell=dt.timedelta(hours=1)),
        ),
        [],
    ),
    "too few updated: no advance": (
        view(
            member("CP1", M.UPDATED),
            member("CP2", M.FAILED),
            member("CP3", M.UPDATED),
            member("CP4", wave=1),
            policy=dataclasses.replace(POLICY, error_threshold_pct=50.0, success_threshold_pct=80.0),
        ),
        [],
    ),
    "the error threshold halts": (
        view(
            member("CP1", M.FAILED),
            member("CP2", M.UPDATING, request=R.FAILED, request_reason="InstallationFailed"),
            member("CP3", M.UPDATING, request=R.DOWNLOADING),
            member("CP4", M.UPDATING, request=R.QUEUED),
        ),
        [
            Mark("CP2", M.FAILED, "InstallationFailed"),
            RollBack("CP3", "the campaign halted before the install began"),
            Cancel("CP4", "the campaign halted before it was sent"),
            Halt("2 of 2 finished chargers failed or rolled back (100 % > 10 %)"),
        ],
    ),
    "an invalid signature halts at once": (
        view(
            member("CP1", M.UPDATING, request=R.FAILED, request_reason="InvalidSignature"),
            member("CP2"),
            member("CP3"),
        ),
        [
            Mark("CP1", M.FAILED, "InvalidSignature"),
            Halt("CP1: InvalidSignature (the image or its certificate is refused)"),
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan(case: str) -> None:
    v, expected = CASES[case]
    assert plan(v, NOW) == expected


def test_the_session_gate_holds_the_wave_then_lets_it_go() -> None:
    gated = dataclasses.replace(POLICY, sessions=SessionGate(min_sessions=20))
    base = view(member("CP1", M.UPDATED), member("CP2", wave=1), policy=gated)
    assert (
        plan(dataclasses.replace(base, updated_sessions=Tally(10, 0), control_sessions=Tally(30, 0)), NOW)
        == []
    )
    enough = dataclasses.replace(base, updated_sessions=Tally(20, 0), control_sessions=Tally(30, 0))
    assert plan(enough, NOW) == [Advance(1)]


def test_a_session_regression_halts_and_rolls_back_everything_exposed() -> None:
    gated = dataclasses.replace(POLICY, sessions=SessionGate(min_sessions=10))
    v = view(
        member("CP1", M.UPDATED),
        member("CP2", M.VALIDATING, **TARGET),
        member("CP3", M.UPDATING, request=R.INSTALLING),  # cannot be stopped: rolled back once validating
        member("CP4", wave=1),
        policy=gated,
        updated_sessions=Tally(10, 10),
        control_sessions=Tally(40, 0),
    )
    decisions = plan(v, NOW)
    halt = decisions[-1]
    assert isinstance(halt, Halt) and halt.roll_back and halt.reason.startswith("session regression")
    assert decisions[:-1] == [
        Mark("CP2", M.UPDATED),
        RollBack("CP1", halt.reason),
        RollBack("CP2", halt.reason),
    ]
    # In the rolled-back campaign, the one still installing goes back once it validates.
    later = view(
        member("CP3", M.VALIDATING, **TARGET), member("CP4", wave=1), state=CampaignState.ROLLED_BACK
    )
    assert plan(later, NOW) == [RollBack("CP3", "the campaign was rolled back")]


def test_the_window_is_read_in_the_chargers_local_time() -> None:
    night = MaintenanceWindow(dt.time(1), dt.time(5))
    policy = dataclasses.replace(
        POLICY, windows=(night,), site_windows={"tokyo": (MaintenanceWindow(dt.time(20), dt.time(23)),)}
    )
    v = view(member("CP1"), member("CP2", site="tokyo", time_zone="Asia/Tokyo"), policy=policy)
    # 12:00 UTC: 13:00 in Berlin (outside 01-05), 21:00 in Tokyo (inside its own 20-23)
    assert plan(v, NOW) == [Wait("CP1", ("window: outside the site's update window",)), Send("CP2")]


def test_policy_round_trip_and_refusals() -> None:
    policy = dataclasses.replace(
        POLICY,
        windows=(MaintenanceWindow(dt.time(22), dt.time(5), frozenset({0, 1})),),
        site_windows={"x": (MaintenanceWindow(dt.time(1), dt.time(5)),)},
    )
    assert policy_from_dict(policy_to_dict(policy)) == policy
    with pytest.raises(InputError):
        policy_from_dict({"dwell_s": 1})
    with pytest.raises(InputError):
        ChargerPolicy(retries=0)
    with pytest.raises(InputError):
        ChargerPolicy(max_concurrent=0)


@pytest.mark.parametrize(
    ("hours", "expected_start"),
    [
        ([], 1),  # no history: the default
        ([h for h in range(6, 24) for _ in range(3)], 1),  # nights are empty: the earliest from 01:00
        ([h for h in range(24) if not 10 <= h < 14 for _ in range(2)], 10),  # a quiet midday
        ([22, 23, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17], 18),  # quiet 18-22
    ],
)
def test_quiet_window(hours: list[int], expected_start: int) -> None:
    window = quiet_window(hours, hours=4)
    assert window.start == dt.time(expected_start) and window.end == dt.time((expected_start + 4) % 24)


def test_waves_cover_every_site_first() -> None:
    chargers = [ScopedCharger(f"CP{s}{i}", f"site-{s}", "1.0.0") for s in range(5) for i in range(10)]
    waves = assign_charger_waves(chargers, (10, 50, 100), seed="c")
    first = {c.site for c in chargers if waves[c.charge_point_id] == 0}
    assert first == {f"site-{s}" for s in range(5)}
    assert sorted(waves.values()).count(0) == 5
    assert assign_charger_waves(chargers, (10, 50, 100), seed="c") == waves  # deterministic
