"""The install lifecycle: every transition of the table, and the moves it refuses."""

from __future__ import annotations

import pytest

from evota.domain.lifecycle import (
    TERMINAL,
    Event,
    IllegalTransitionError,
    Phase,
    next_phase,
    past_commit_point,
    step_of,
)
from evota.domain.steps import Step

P, E = Phase, Event
TABLE = [
    (P.DOWNLOADING, E.DOWNLOADED, P.STAGING),
    (P.DOWNLOADING, E.ERROR, P.FAILED),
    (P.DOWNLOADING, E.LOOP_DETECTED, P.FAILED),
    (P.STAGING, E.STAGED, P.STAGED),
    (P.STAGING, E.ERROR, P.FAILED),
    (P.STAGING, E.LOOP_DETECTED, P.FAILED),
    (P.STAGED, E.GO, P.ACTIVATING),
    (P.STAGED, E.ERROR, P.FAILED),
    (P.STAGED, E.LOOP_DETECTED, P.FAILED),
    (P.ACTIVATING, E.ACTIVATED, P.TRIAL),
    (P.ACTIVATING, E.ERROR, P.ROLLING_BACK),
    (P.ACTIVATING, E.LOOP_DETECTED, P.ROLLING_BACK),
    (P.TRIAL, E.TESTS_PASSED, P.COMMITTING),
    (P.TRIAL, E.TESTS_FAILED, P.ROLLING_BACK),
    (P.TRIAL, E.ERROR, P.ROLLING_BACK),
    (P.TRIAL, E.LOOP_DETECTED, P.ROLLING_BACK),
    (P.COMMITTING, E.MARKED_GOOD, P.COMMITTED),
    (P.COMMITTING, E.ERROR, P.ROLLING_BACK),
    (P.ROLLING_BACK, E.REVERTED, P.ROLLED_BACK),
]


@pytest.mark.parametrize(("phase", "event", "expected"), TABLE, ids=[f"{p}-{e}" for p, e, _ in TABLE])
def test_each_transition(phase: Phase, event: Event, expected: Phase) -> None:
    assert next_phase(phase, event) is expected


def test_every_other_move_is_refused() -> None:
    allowed = {(p, e) for p, e, _ in TABLE}
    for phase in Phase:
        for event in Event:
            if (phase, event) not in allowed:
                with pytest.raises(IllegalTransitionError):
                    next_phase(phase, event)


def test_a_failure_before_the_commit_point_never_rolls_back_and_after_it_never_just_fails() -> None:
    for phase, event, target in TABLE:
        if event in (E.ERROR, E.LOOP_DETECTED, E.TESTS_FAILED):
            assert target is (P.ROLLING_BACK if past_commit_point(phase) else P.FAILED), (phase, event)


def test_rolling_back_has_no_way_out_but_success_and_terminal_phases_none_at_all() -> None:
    assert {e for p, e, _ in TABLE if p is P.ROLLING_BACK} == {E.REVERTED}
    assert not [row for row in TABLE if row[0] in TERMINAL]


def test_each_phase_reports_its_step() -> None:
    assert step_of(P.STAGING) is Step.INSTALLING
    assert step_of(P.COMMITTED) is Step.COMMITTED
    assert step_of(P.ROLLING_BACK) is None  # reported when it ends
