"""The session gate: Fisher's exact test on completed and failed sessions, as a table."""

from __future__ import annotations

import math

import pytest
from scipy.stats import fisher_exact

from evota.domain.charger_health import SessionGate, Tally, Verdict, compare_sessions, fisher_greater
from evota.errors import InputError

GATE = SessionGate(min_sessions=20, alpha=0.05)

CASES = {
    # name: (updated ok, updated failed, control ok, control failed, verdict)
    "too few on the new firmware": (10, 5, 100, 0, Verdict.HOLD),
    "too few on control": (40, 0, 19, 0, Verdict.HOLD),
    "the same, no failures": (30, 0, 30, 0, Verdict.PROCEED),
    "better than control": (40, 0, 36, 4, Verdict.PROCEED),
    "slightly worse, chance explains it": (28, 2, 59, 1, Verdict.PROCEED),
    "clearly worse": (10, 10, 39, 1, Verdict.ROLLBACK),
    "every session fails": (0, 20, 20, 0, Verdict.ROLLBACK),
    "both fail often, the same": (15, 15, 16, 14, Verdict.PROCEED),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_verdicts(case: str) -> None:
    u_ok, u_fail, c_ok, c_fail, verdict = CASES[case]
    result = compare_sessions(Tally(u_ok, u_fail), Tally(c_ok, c_fail), GATE)
    assert result.verdict is verdict, result.reason
    if verdict is Verdict.HOLD:
        assert result.p_value is None and "needed" in result.reason
    else:
        assert result.p_value is not None and "Fisher p" in result.reason


@pytest.mark.parametrize(
    "table",
    [
        (10, 10, 39, 1),
        (0, 20, 20, 0),
        (28, 2, 59, 1),
        (5, 0, 0, 5),
        (3, 7, 9, 1),
        (50, 3, 200, 2),
        (1, 1, 1, 1),
    ],
)
def test_the_p_value_is_scipys_one_sided_fisher(table: tuple[int, int, int, int]) -> None:
    u_ok, u_fail, c_ok, c_fail = table
    expected = fisher_exact([[u_fail, u_ok], [c_fail, c_ok]], alternative="greater").pvalue
    assert math.isclose(fisher_greater(Tally(u_ok, u_fail), Tally(c_ok, c_fail)), expected, rel_tol=1e-9)


def test_empty_cohorts_and_bad_gates() -> None:
    assert fisher_greater(Tally(), Tally(5, 0)) == 1.0
    assert compare_sessions(Tally(), Tally(), SessionGate(min_sessions=0)).verdict is Verdict.PROCEED
    with pytest.raises(InputError):
        SessionGate(alpha=1.5)
    with pytest.raises(InputError):
        SessionGate(min_sessions=-1)
    with pytest.raises(ValueError):
        Tally(-1, 0)
