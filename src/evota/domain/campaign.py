"""Campaigns: their lifecycle, four-eyes approval, and how vehicles are split into waves.

The lifecycle is one transition table over an enum of states and an enum of events; a move
not in the table raises `InvalidTransitionError`:

    draft ──approve──▶ approved ──start──▶ running ──complete──▶ completed
                                             │  ▲
                                     pause/halt│  │resume
                                             ▼  │
                                       paused / halted ──roll back──▶ rolled back
    draft, approved, running, paused, halted ──abort──▶ aborted

Waves are chosen deterministically (a hash of the campaign's seed and the VIN, so a restart
picks the same vehicles) and stratified: the first wave covers every depot and climate zone
in scope where its size allows, and later waves interleave the strata so that each wave looks
like the fleet.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence

from evota.errors import InputError

__all__ = [
    "DEFAULT_WAVES",
    "TERMINAL",
    "TRANSITIONS",
    "CampaignEvent",
    "CampaignState",
    "FourEyesError",
    "InvalidTransitionError",
    "Scoped",
    "approve",
    "assign_waves",
    "transition",
    "validate_waves",
]

DEFAULT_WAVES = (1.0, 5.0, 20.0, 50.0, 100.0)


class CampaignState(enum.StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    RUNNING = "running"
    PAUSED = "paused"  # by an operator; resumes where it was
    HALTED = "halted"  # by a gate (error threshold, health); needs a decision
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


class CampaignEvent(enum.StrEnum):
    APPROVE = "approve"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    HALT = "halt"
    COMPLETE = "complete"
    ROLL_BACK = "roll_back"
    ABORT = "abort"


S, E = CampaignState, CampaignEvent
TRANSITIONS: Mapping[tuple[CampaignState, CampaignEvent], CampaignState] = {
    (S.DRAFT, E.APPROVE): S.APPROVED,
    (S.APPROVED, E.START): S.RUNNING,
    (S.RUNNING, E.PAUSE): S.PAUSED,
    (S.RUNNING, E.HALT): S.HALTED,
    (S.PAUSED, E.HALT): S.HALTED,
    (S.PAUSED, E.RESUME): S.RUNNING,
    (S.HALTED, E.RESUME): S.RUNNING,
    (S.RUNNING, E.COMPLETE): S.COMPLETED,
    (S.RUNNING, E.ROLL_BACK): S.ROLLED_BACK,
    (S.PAUSED, E.ROLL_BACK): S.ROLLED_BACK,
    (S.HALTED, E.ROLL_BACK): S.ROLLED_BACK,
    **{(state, E.ABORT): S.ABORTED for state in (S.DRAFT, S.APPROVED, S.RUNNING, S.PAUSED, S.HALTED)},
}
TERMINAL = frozenset({S.COMPLETED, S.ROLLED_BACK, S.ABORTED})


class InvalidTransitionError(InputError):
    code = "invalid_transition"


class FourEyesError(InputError):
    code = "four_eyes"


def transition(state: CampaignState, event: CampaignEvent) -> CampaignState:
    """The state after `event`; InvalidTransitionError if the table has no such move."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransitionError(
            f"a {state.value} campaign cannot {event.value.replace('_', ' ')}"
        ) from None


def approve(state: CampaignState, *, created_by: str, approver: str) -> CampaignState:
    """Four eyes: whoever created a campaign cannot approve it, whatever their role."""
    if approver.casefold() == created_by.casefold():
        raise FourEyesError(f"{approver} created this campaign; someone else must approve it")
    return transition(state, CampaignEvent.APPROVE)


def validate_waves(percents: Sequence[float]) -> tuple[float, ...]:
    """Cumulative percentages, strictly rising, ending at 100 (e.g. 1, 5, 20, 50, 100)."""
    waves = tuple(float(p) for p in percents)
    if not waves or waves[-1] != 100.0:
        raise InputError("waves are cumulative percentages and the last one is 100")
    if any(not 0 < p <= 100 for p in waves) or any(b <= a for a, b in itertools.pairwise(waves)):
        raise InputError("wave percentages must rise strictly, each above 0 and at most 100")
    return waves


@dataclasses.dataclass(frozen=True)
class Scoped:
    """A vehicle in a campaign's scope, with what stratification looks at."""

    vin: str
    depot: str
    climate_zone: str


def _rank(seed: str, key: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{key}".encode()).digest()


def assign_waves(vehicles: Sequence[Scoped], percents: Sequence[float], seed: str) -> dict[str, int]:
    """VIN → wave index (0-based). Deterministic for a seed; wave k holds ceil(p_k % of N)
    vehicles in all (at least one in the first), covering strata first.
    """
    waves = validate_waves(percents)
    n = len(vehicles)
    if n == 0:
        return {}
    order = _stratified_order(vehicles, seed)
    cutoffs = [max(1, math.ceil(p * n / 100)) for p in waves]
    out: dict[str, int] = {}
    wave = 0
    for position, vehicle in enumerate(order):
        while position >= cutoffs[wave]:
            wave += 1
        out[vehicle.vin] = wave
    return out


def _stratified_order(vehicles: Sequence[Scoped], seed: str) -> list[Scoped]:
    """Cover every depot and climate zone first (greedily, hash order breaking ties), then
    round-robin over the (depot, climate zone) strata, each stratum in hash order."""
    strata: dict[tuple[str, str], list[Scoped]] = {}
    for v in sorted(vehicles, key=lambda v: _rank(seed, v.vin)):
        strata.setdefault((v.depot, v.climate_zone), []).append(v)
    order: list[Scoped] = []
    depots = {d for d, _ in strata}
    zones = {z for _, z in strata}
    while depots or zones:  # each pick covers at least one new depot or zone
        best = max(
            (key for key, members in strata.items() if members),
            key=lambda k: ((k[0] in depots) + (k[1] in zones), _rank(seed, f"{k[0]}/{k[1]}")),
        )
        order.append(strata[best].pop(0))
        depots.discard(best[0])
        zones.discard(best[1])
    keys = sorted(strata, key=lambda k: _rank(seed, f"{k[0]}/{k[1]}"))
    while any(strata[k] for k in keys):
        for key in keys:
            if strata[key]:
                order.append(strata[key].pop(0))
    return order
