"""The campaign lifecycle as a table, four-eyes approval, and stratified deterministic waves."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from evota.domain.campaign import (
    TERMINAL,
    TRANSITIONS,
    CampaignEvent,
    CampaignState,
    FourEyesError,
    InvalidTransitionError,
    Scoped,
    approve,
    assign_waves,
    transition,
    validate_waves,
)
from evota.errors import InputError

S, E = CampaignState, CampaignEvent

# Every allowed move, written out once more by hand: the table must say exactly this.
EXPECTED = {
    (S.DRAFT, E.APPROVE): S.APPROVED,
    (S.DRAFT, E.ABORT): S.ABORTED,
    (S.APPROVED, E.START): S.RUNNING,
    (S.APPROVED, E.ABORT): S.ABORTED,
    (S.RUNNING, E.PAUSE): S.PAUSED,
    (S.RUNNING, E.HALT): S.HALTED,
    (S.RUNNING, E.COMPLETE): S.COMPLETED,
    (S.RUNNING, E.ROLL_BACK): S.ROLLED_BACK,
    (S.RUNNING, E.ABORT): S.ABORTED,
    (S.PAUSED, E.RESUME): S.RUNNING,
    (S.PAUSED, E.HALT): S.HALTED,
    (S.PAUSED, E.ROLL_BACK): S.ROLLED_BACK,
    (S.PAUSED, E.ABORT): S.ABORTED,
    (S.HALTED, E.RESUME): S.RUNNING,
    (S.HALTED, E.ROLL_BACK): S.ROLLED_BACK,
    (S.HALTED, E.ABORT): S.ABORTED,
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(S, E)), ids=lambda x: str(x))
def test_every_state_and_event(state: CampaignState, event: CampaignEvent) -> None:
    if (state, event) in EXPECTED:
        assert transition(state, event) is EXPECTED[(state, event)]
    else:
        with pytest.raises(InvalidTransitionError, match=f"a {state.value} campaign cannot"):
            transition(state, event)


def test_the_table_is_exactly_the_expected_one_and_terminal_states_are_final() -> None:
    assert dict(TRANSITIONS) == EXPECTED
    assert all(state not in TERMINAL for state, _ in TRANSITIONS)


@pytest.mark.parametrize("approver", ["alice", "ALICE", "Alice"])
def test_the_creator_cannot_approve(approver: str) -> None:
    with pytest.raises(FourEyesError, match="someone else must approve"):
        approve(S.DRAFT, created_by="alice", approver=approver)


def test_someone_else_approves_a_draft_only() -> None:
    assert approve(S.DRAFT, created_by="alice", approver="bob") is S.APPROVED
    with pytest.raises(InvalidTransitionError):
        approve(S.RUNNING, created_by="alice", approver="bob")


@pytest.mark.parametrize(
    "waves", [[], [50], [1, 5, 5, 100], [0, 100], [5, 1, 100], [1, 101], [10, 100, 100]], ids=str
)
def test_bad_waves_are_refused(waves: list[float]) -> None:
    with pytest.raises(InputError):
        validate_waves(waves)


def fleet(depots: int, zones: int, per: int) -> list[Scoped]:
    return [
        Scoped(f"V{d:02d}{z}{i:04d}", f"depot-{d}", f"zone-{z}")
        for d in range(depots)
        for z in range(zones)
        for i in range(per)
        if (d + z) % 2 == 0 or zones == 1  # not every depot has every zone
    ]


def test_waves_are_cumulative_sizes_of_the_fleet() -> None:
    vehicles = fleet(8, 1, 25)  # 200 vans in 8 depots
    waves = assign_waves(vehicles, [1, 5, 20, 50, 100], seed="campaign-1")
    sizes = Counter(waves.values())
    assert [sizes[k] for k in range(5)] == [2, 8, 30, 60, 100]
    assert set(waves) == {v.vin for v in vehicles}


def test_waves_are_deterministic_and_depend_on_the_seed() -> None:
    vehicles = fleet(4, 3, 30)
    a = assign_waves(vehicles, [1, 5, 20, 50, 100], seed="c1")
    assert a == assign_waves(list(reversed(vehicles)), [1, 5, 20, 50, 100], seed="c1")
    assert a != assign_waves(vehicles, [1, 5, 20, 50, 100], seed="c2")


def test_the_first_wave_covers_every_depot_and_zone_where_it_can() -> None:
    vehicles = fleet(6, 3, 40)  # 6 depots, 3 zones, 9 (depot, zone) strata, 360 vehicles
    waves = assign_waves(vehicles, [2, 10, 100], seed="c1")  # first wave: 8 vehicles
    first = [v for v in vehicles if waves[v.vin] == 0]
    assert len(first) == 8
    assert {v.depot for v in first} == {v.depot for v in vehicles}
    assert {v.climate_zone for v in first} == {v.climate_zone for v in vehicles}


def test_later_waves_look_like_the_fleet() -> None:
    vehicles = fleet(4, 1, 50)
    waves = assign_waves(vehicles, [10, 50, 100], seed="c1")
    second = Counter(v.depot for v in vehicles if waves[v.vin] == 1)
    assert max(second.values()) - min(second.values()) <= 1  # 80 vehicles, 20 per depot


def test_a_tiny_fleet_still_gets_a_first_wave() -> None:
    vehicles = fleet(1, 1, 3)
    assert sorted(assign_waves(vehicles, [1, 5, 100], seed="c").values()) == [0, 2, 2]
    assert assign_waves([], [100], seed="c") == {}
