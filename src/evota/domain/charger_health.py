"""Post-update validation of chargers: do sessions on the new firmware fail more than on the old?

The updated cohort (sessions that ran on the campaign's target firmware) is compared with
the control cohort (sessions over the same campaign on chargers of that model still running
something else). Each cohort is a count of completed and failed sessions, a 2×2 table, and
the question is one-sided: is the updated cohort's failure rate higher? Fisher's exact test
answers it without any large-sample approximation, which matters because a wave of five
chargers may have twenty sessions, not two thousand.

    verdict   when
    hold      either cohort has fewer than `min_sessions` finished sessions: too early to say
    rollback  the updated cohort fails more, with a one-sided p-value below `alpha`
    proceed   otherwise (equal or better, or worse by no more than chance explains)

Pure: counts in, a verdict with its evidence out. `domain/chargers.session_succeeded`
decides what a failed session is.
"""

from __future__ import annotations

import dataclasses
import enum
import math

from evota.errors import InputError

__all__ = ["SessionGate", "Tally", "Validation", "Verdict", "compare_sessions", "fisher_greater"]


class Verdict(enum.StrEnum):
    PROCEED = "proceed"
    HOLD = "hold"
    ROLLBACK = "rollback"


@dataclasses.dataclass(frozen=True)
class Tally:
    """Finished sessions of a cohort: how many succeeded and how many failed."""

    succeeded: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        if self.succeeded < 0 or self.failed < 0:
            raise ValueError("session counts cannot be negative")

    @property
    def total(self) -> int:
        return self.succeeded + self.failed

    @property
    def failure_rate(self) -> float:
        return self.failed / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.failed}/{self.total} failed ({100 * self.failure_rate:.0f} %)"


@dataclasses.dataclass(frozen=True)
class SessionGate:
    min_sessions: int = 20  # in each cohort, before any verdict but hold
    alpha: float = 0.05  # one-sided significance for a rollback

    def __post_init__(self) -> None:
        if self.min_sessions < 0:
            raise InputError("the session gate's minimum cannot be negative")
        if not 0 < self.alpha < 1:
            raise InputError("the session gate's alpha is a probability between 0 and 1")


@dataclasses.dataclass(frozen=True)
class Validation:
    verdict: Verdict
    updated: Tally
    control: Tally
    p_value: float | None  # None when the gate held before testing
    reason: str


def fisher_greater(updated: Tally, control: Tally) -> float:
    """One-sided Fisher exact p-value that the updated cohort's failure rate exceeds the control's.

    With N sessions in all, K failures among them and n in the updated cohort, the number of
    updated failures is hypergeometric under "same rate"; p = P(X ≥ observed).
    """
    n = updated.total
    failures = updated.failed + control.failed
    total = n + control.total
    if n == 0 or control.total == 0:
        return 1.0
    denominator = math.comb(total, n)
    upper = min(failures, n)
    tail = sum(
        math.comb(failures, x) * math.comb(total - failures, n - x) for x in range(updated.failed, upper + 1)
    )
    return min(1.0, tail / denominator)


def compare_sessions(updated: Tally, control: Tally, gate: SessionGate) -> Validation:
    """The verdict on the updated cohort's sessions against the control cohort's."""
    if updated.total < gate.min_sessions or control.total < gate.min_sessions:
        return Validation(
            Verdict.HOLD,
            updated,
            control,
            None,
            f"validation: {updated.total} sessions on the new firmware and {control.total} on control, "
            f"{gate.min_sessions} of each needed",
        )
    p = fisher_greater(updated, control)
    comparison = f"new firmware {updated} vs control {control}, Fisher p = {p:.3g}"
    if p < gate.alpha:
        return Validation(
            Verdict.ROLLBACK, updated, control, p, f"session regression: {comparison} < {gate.alpha:g}"
        )
    return Validation(Verdict.PROCEED, updated, control, p, f"no session regression: {comparison}")
