"""One vehicle's install of one release: the phases, the events, and one transition table.

The agent journals the phase *before* it acts on it, so after a power cut the journal's phase
says where to resume. The one record that decides the direction is ACTIVATING (the commit
point of a two-phase install across ECUs): before it, nothing was switched and a failure only
abandons staged slots (FAILED: the vehicle runs what it ran); from it on, every ECU of the
bundle is driven to the same side: all new (COMMITTED) or all old (ROLLED_BACK).

    DOWNLOADING ──downloaded──▶ STAGING ──staged──▶ STAGED ──go──▶ ACTIVATING ──activated──▶ TRIAL
         │ error/loop              │ error/loop        │ error/loop      │ error/loop          │
         ▼                         ▼                   ▼                 ▼                     │
       FAILED                    FAILED              FAILED         ROLLING_BACK ◀─failed/error/loop
                                                                         │ reverted            │ passed
                                                                         ▼                     ▼
                                                                    ROLLED_BACK  ◀──error── COMMITTING
                                                                                               │ marked good
                                                                                               ▼
                                                                                           COMMITTED

COMMITTING can still turn back: if an ECU's boot loader fell back on its own before it was
marked good (several cuts during the trial), the bundle must not stay mixed.

Each resume of a phase after a restart counts; past `MAX_RESUMES` the phase ends with
LOOP_DETECTED (Mender's state-loop guard), so a cut that repeats at the same place cannot
keep a vehicle in a boot loop. ROLLING_BACK has no way out but success: it is the safe side.
"""

from __future__ import annotations

import enum

from evota.domain.steps import Step

__all__ = [
    "MAX_RESUMES",
    "TERMINAL",
    "Event",
    "IllegalTransitionError",
    "Phase",
    "next_phase",
    "past_commit_point",
    "step_of",
]

MAX_RESUMES = 3


class Phase(enum.StrEnum):
    DOWNLOADING = "downloading"  # images into staging on the primary, resumable
    STAGING = "staging"  # writing the inactive slots, each verified by its ECU
    STAGED = "staged"  # every image staged; waiting for the vehicle-side go (preconditions)
    ACTIVATING = "activating"  # the commit point: switching every ECU of the bundle
    TRIAL = "trial"  # every ECU on trial: migrations, state resets, self-tests
    COMMITTING = "committing"  # decided: mark every ECU good
    ROLLING_BACK = "rolling_back"  # decided: every ECU back to the slots it ran before
    COMMITTED = "committed"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"  # stopped before the commit point; nothing was switched


class Event(enum.StrEnum):
    DOWNLOADED = "downloaded"
    STAGED = "staged"
    GO = "go"
    ACTIVATED = "activated"
    TESTS_PASSED = "tests_passed"
    TESTS_FAILED = "tests_failed"
    MARKED_GOOD = "marked_good"
    REVERTED = "reverted"
    ERROR = "error"
    LOOP_DETECTED = "loop_detected"


TERMINAL = frozenset({Phase.COMMITTED, Phase.ROLLED_BACK, Phase.FAILED})

_TABLE: dict[tuple[Phase, Event], Phase] = {
    (Phase.DOWNLOADING, Event.DOWNLOADED): Phase.STAGING,
    (Phase.DOWNLOADING, Event.ERROR): Phase.FAILED,
    (Phase.DOWNLOADING, Event.LOOP_DETECTED): Phase.FAILED,
    (Phase.STAGING, Event.STAGED): Phase.STAGED,
    (Phase.STAGING, Event.ERROR): Phase.FAILED,
    (Phase.STAGING, Event.LOOP_DETECTED): Phase.FAILED,
    (Phase.STAGED, Event.GO): Phase.ACTIVATING,
    (Phase.STAGED, Event.ERROR): Phase.FAILED,
    (Phase.STAGED, Event.LOOP_DETECTED): Phase.FAILED,
    (Phase.ACTIVATING, Event.ACTIVATED): Phase.TRIAL,
    (Phase.ACTIVATING, Event.ERROR): Phase.ROLLING_BACK,
    (Phase.ACTIVATING, Event.LOOP_DETECTED): Phase.ROLLING_BACK,
    (Phase.TRIAL, Event.TESTS_PASSED): Phase.COMMITTING,
    (Phase.TRIAL, Event.TESTS_FAILED): Phase.ROLLING_BACK,
    (Phase.TRIAL, Event.ERROR): Phase.ROLLING_BACK,
    (Phase.TRIAL, Event.LOOP_DETECTED): Phase.ROLLING_BACK,
    (Phase.COMMITTING, Event.MARKED_GOOD): Phase.COMMITTED,
    (Phase.COMMITTING, Event.ERROR): Phase.ROLLING_BACK,
    (Phase.ROLLING_BACK, Event.REVERTED): Phase.ROLLED_BACK,
}

# What the server hears when a phase is entered (evota.domain.steps).
_STEPS = {
    Phase.DOWNLOADING: Step.DOWNLOADING,
    Phase.STAGING: Step.INSTALLING,
    Phase.STAGED: Step.INSTALLED,
    Phase.ACTIVATING: Step.ACTIVATING,
    Phase.TRIAL: Step.SELF_TEST,
    Phase.COMMITTED: Step.COMMITTED,
    Phase.ROLLED_BACK: Step.ROLLED_BACK,
    Phase.FAILED: Step.FAILED,
}


class IllegalTransitionError(RuntimeError):
    """A move the table does not have: a bug in the agent, not an operator's problem."""


def next_phase(phase: Phase, event: Event) -> Phase:
    """The phase that `event` leads to from `phase` (IllegalTransitionError if none)."""
    try:
        return _TABLE[(phase, event)]
    except KeyError:
        raise IllegalTransitionError(f"no transition from {phase.value} on {event.value}") from None


def step_of(phase: Phase) -> Step | None:
    """The step reported to the server on entering `phase` (None: not reported)."""
    return _STEPS.get(phase)


def past_commit_point(phase: Phase) -> bool:
    """From ACTIVATING on, ECUs may have switched: a failure rolls back instead of abandoning."""
    return phase in (
        Phase.ACTIVATING,
        Phase.TRIAL,
        Phase.COMMITTING,
        Phase.ROLLING_BACK,
        Phase.COMMITTED,
        Phase.ROLLED_BACK,
    )
