"""The deployment report of one campaign: what a fleet manager reads the morning after.

Per wave and overall it says where every vehicle of the campaign is (updated, installing,
pending, waiting, held, failed, rolled back; the seven add up to the wave), why vehicles wait
or were held or failed (grouped by the kind of reason, with one full reason as an example),
and how many of those still to be updated have gone quiet (no contact for more than 24 h,
more than 7 days, or never): the parked or offline vans someone has to go and find. Then the
version each ECU type of the campaign's vehicles runs.

Waiting is kept apart from failed on purpose: a vehicle deferred by a gate (SoC, window,
consent, throttle) is not a failure, and the planner's error gate does not count it either.

Counting is done by the database (GROUP BY), so a campaign of 100,000 vehicles costs three
grouped queries, not 100,000 Python objects. Only the reason lists come back, and grouped by
their text: a fleet has few distinct lists. On PostgreSQL the queries read one snapshot, so
the numbers agree with each other while the controller keeps writing.

The report reads and decides nothing: halting is the planner's job, not this module's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable

from sqlalchemy import ColumnElement, Text, case, cast, func, select
from sqlalchemy.orm import Session

from evota.domain.campaign import TERMINAL, CampaignState
from evota.domain.planner import DeviceStatus, policy_from_dict
from evota.domain.versions import parse_version
from evota.errors import InputError
from evota.server.services.campaigns import load_campaign
from evota.server.store.db import Database
from evota.server.store.models import CampaignRow, CampaignVehicleRow, EcuRow, HealthVerdictRow, VehicleRow

__all__ = [
    "CampaignReport",
    "HealthSection",
    "NotSeen",
    "ReasonCount",
    "RollbackSection",
    "Tally",
    "WaveReport",
    "campaign_report",
    "reason_kind",
]

QUIET = dt.timedelta(hours=24)
LONG_QUIET = dt.timedelta(days=7)
UNKNOWN_VERSION = "unknown"
WAITING = "waiting"  # a pending vehicle with reasons: the planner judged it and said "not now"

# The vehicles still to be updated: the only ones whose silence holds the campaign up.
_UNFINISHED = (DeviceStatus.PENDING.value, DeviceStatus.OFFERED.value)
# Why-not-updated first, then what went wrong, then the vehicle's own deferrals mid-install.
_REASON_ORDER = (
    WAITING,
    DeviceStatus.HELD.value,
    DeviceStatus.FAILED.value,
    DeviceStatus.ROLLED_BACK.value,
    DeviceStatus.OFFERED.value,
)
_KIND_END = re.compile(r":| \(")
_WORD = re.compile(r"[a-z][a-z/_-]*")


def reason_kind(reason: str) -> str:
    """The kind of a reason, so that "soc 42 % < 60 %" and "soc 30 % < 60 %" count together.

    The kind is what comes before the first ':' or ' (' ("window: outside …" → window,
    "incompatible (vcms 3.0.0 < 3.1)" → incompatible). A reason without either ("soc 42 % <
    60 %", "gear D, not P", "not charging") is named by its leading plain words, up to the
    first one holding a figure or a sign, with a leading "not" dropped: a gate's positive
    and negative failures are the same gate. Derived, not looked up, so reasons added
    later (by the planner or an agent) group without a change here.
    """
    text = reason.strip().lower()
    head = _KIND_END.split(text, maxsplit=1)[0].strip()
    if head != text:
        return head or text
    words: list[str] = []
    for word in text.split():
        if not _WORD.fullmatch(word):
            break
        words.append(word)
    if len(words) > 1 and words[0] == "not":
        words.pop(0)
    return " ".join(words) or text


@dataclasses.dataclass(frozen=True)
class ReasonCount:
    """How many vehicles have at least one reason of `kind`, and the commonest such reason."""

    kind: str
    vehicles: int
    example: str

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class NotSeen:
    """Unfinished (pending or offered) vehicles by silence; `over_24h` includes `over_7d`."""

    over_24h: int = 0
    over_7d: int = 0
    never: int = 0

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Tally:
    """Where the vehicles of a wave (or of the campaign) are; the seven counts add up.

    `pending` are the vehicles nobody judged yet (their wave has not opened); `waiting` the
    pending ones the planner judged and deferred. `reasons` maps a status ("waiting", "held",
    "failed", "rolled_back", "offered" when the agent defers) to its reasons by kind,
    the most common first.
    """

    vehicles: int
    updated: int
    offered: int
    pending: int
    waiting: int
    held: int
    failed: int
    rolled_back: int
    not_seen: NotSeen
    reasons: dict[str, tuple[ReasonCount, ...]]

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("not_seen", "reasons")
        }
        out["not_seen"] = self.not_seen.to_json()
        out["reasons"] = {status: [r.to_json() for r in kinds] for status, kinds in self.reasons.items()}
        return out


@dataclasses.dataclass(frozen=True)
class WaveReport:
    index: int  # 0-based, as stored; people read it 1-based
    percent: float  # cumulative share of the scope reached once this wave is done
    tally: Tally

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "percent": self.percent, **self.tally.to_json()}


@dataclasses.dataclass(frozen=True)
class CampaignReport:
    name: str
    release: str
    state: str
    current_wave: int  # 0-based
    wave_started_at: dt.datetime | None
    dwell: dt.timedelta
    generated_at: dt.datetime
    waves: tuple[WaveReport, ...]
    overall: Tally
    versions: dict[str, dict[str, int]]  # ECU type → version → ECUs, newest version first
    health: HealthSection | None = None  # None: the campaign has no health gate
    rollback: RollbackSection | None = None  # None: never rolled back

    @property
    def dwell_ends_at(self) -> dt.datetime | None:
        """When the current wave's dwell time ends (None when no later wave can open).

        The earliest the next wave may open: the planner also waits for the success
        threshold and for every install in flight.
        """
        if (
            self.wave_started_at is None
            or CampaignState(self.state) in TERMINAL
            or self.current_wave + 1 >= len(self.waves)
        ):
            return None
        return self.wave_started_at + self.dwell

    def to_json(self) -> dict[str, object]:
        ends = self.dwell_ends_at
        return {
            "name": self.name,
            "release": self.release,
            "state": self.state,
            "current_wave": self.current_wave,
            "wave_started_at": self.wave_started_at.isoformat() if self.wave_started_at else None,
            "dwell_s": self.dwell.total_seconds(),
            "dwell_ends_at": ends.isoformat() if ends else None,
            "generated_at": self.generated_at.isoformat(),
            "waves": [w.to_json() for w in self.waves],
            "overall": self.overall.to_json(),
            "versions": self.versions,
            "health": self.health.to_json() if self.health else None,
            "rollback": self.rollback.to_json() if self.rollback else None,
        }


@dataclasses.dataclass(frozen=True)
class HealthSection:
    """The health gate's looks: how many of each outcome, and the latest one with its evidence."""

    looks: int
    outcomes: dict[str, int]
    latest_at: dt.datetime | None
    latest_wave: int | None  # 0-based
    latest: dict[str, object] | None  # the stored verdict (reasons, per-KPI evidence, …)

    def to_json(self) -> dict[str, object]:
        return {
            "looks": self.looks,
            "outcomes": self.outcomes,
            "latest_at": self.latest_at.isoformat() if self.latest_at else None,
            "latest_wave": self.latest_wave,
            "latest": self.latest,
        }


@dataclasses.dataclass(frozen=True)
class RollbackSection:
    """A fleet rollback: vehicles ordered back, signed by the director, confirmed back."""

    ordered: int
    signed: int
    confirmed: int
    ordered_at: dt.datetime | None

    def to_json(self) -> dict[str, object]:
        return {
            "ordered": self.ordered,
            "signed": self.signed,
            "confirmed": self.confirmed,
            "ordered_at": self.ordered_at.isoformat() if self.ordered_at else None,
        }


def _health(session: Session, campaign: CampaignRow) -> HealthSection | None:
    if not campaign.gate:
        return None
    outcomes = dict(
        session.execute(
            select(HealthVerdictRow.outcome, func.count())
            .where(HealthVerdictRow.campaign_id == campaign.id)
            .group_by(HealthVerdictRow.outcome)
        ).all()
    )
    latest = session.execute(
        select(HealthVerdictRow.at, HealthVerdictRow.wave, HealthVerdictRow.evidence)
        .where(HealthVerdictRow.campaign_id == campaign.id)
        .order_by(HealthVerdictRow.id.desc())
        .limit(1)
    ).one_or_none()
    return HealthSection(
        looks=sum(outcomes.values()),
        outcomes={k: int(v) for k, v in sorted(outcomes.items())},
        latest_at=latest.at if latest else None,
        latest_wave=latest.wave if latest else None,
        latest=dict(latest.evidence) if latest else None,
    )


def _rollback(session: Session, campaign: CampaignRow) -> RollbackSection | None:
    cv = CampaignVehicleRow
    ordered, signed, confirmed, first = session.execute(
        select(
            _count_if(cv.rollback_ordered_at.is_not(None)),
            _count_if(cv.rollback_assigned.is_(True) & cv.rollback_ordered_at.is_not(None)),
            _count_if(cv.rolled_back_at.is_not(None)),
            func.min(cv.rollback_ordered_at),
        ).where(cv.campaign_id == campaign.id)
    ).one()
    if not ordered and campaign.state != CampaignState.ROLLED_BACK.value:
        return None
    return RollbackSection(int(ordered or 0), int(signed or 0), int(confirmed or 0), first)


class _Reasons:
    """Reasons of one status in one wave (or overall): vehicles per kind, texts per kind."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.texts: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def add(self, reasons: Iterable[str], vehicles: int) -> None:
        kinds = set()
        for reason in reasons:
            kind = reason_kind(reason)
            kinds.add(kind)
            self.texts[kind][reason] += vehicles
        for kind in kinds:  # a vehicle counts once per kind, however many reasons of it
            self.kinds[kind] += vehicles

    def counts(self) -> tuple[ReasonCount, ...]:
        return tuple(
            ReasonCount(kind, n, min(self.texts[kind].items(), key=lambda t: (-t[1], t[0]))[0])
            for kind, n in sorted(self.kinds.items(), key=lambda kn: (-kn[1], kn[0]))
        )


@dataclasses.dataclass
class _Wave:
    """Counts being gathered for one wave (or overall)."""

    statuses: Counter[str] = dataclasses.field(default_factory=Counter)
    waiting: int = 0
    quiet: Counter[str] = dataclasses.field(default_factory=Counter)
    reasons: defaultdict[str, _Reasons] = dataclasses.field(default_factory=lambda: defaultdict(_Reasons))

    def tally(self) -> Tally:
        s = self.statuses
        return Tally(
            vehicles=s.total(),
            updated=s[DeviceStatus.UPDATED.value],
            offered=s[DeviceStatus.OFFERED.value],
            pending=s[DeviceStatus.PENDING.value] - self.waiting,
            waiting=self.waiting,
            held=s[DeviceStatus.HELD.value],
            failed=s[DeviceStatus.FAILED.value],
            rolled_back=s[DeviceStatus.ROLLED_BACK.value],
            not_seen=NotSeen(self.quiet["over_24h"], self.quiet["over_7d"], self.quiet["never"]),
            reasons={
                status: self.reasons[status].counts()
                for status in sorted(self.reasons, key=_reason_order)
                if self.reasons[status].kinds
            },
        )


def _reason_order(status: str) -> tuple[int, str]:
    return (_REASON_ORDER.index(status) if status in _REASON_ORDER else len(_REASON_ORDER), status)


def campaign_report(db: Database, name: str, *, now: dt.datetime) -> CampaignReport:
    """The deployment report of campaign `name` as of `now`.

    Args:
        now: the reference time for "not seen since" (aware); the report's timestamp.

    Raises:
        NotFoundError (an InputError): no campaign has that name.
        InputError: the campaign's stored policy is malformed.

    Returns:
        A frozen `CampaignReport`; `to_json()` gives its JSON form.
    """
    if now.tzinfo is None:
        raise ValueError("the report's reference time must be timezone-aware")
    with db.sessions() as session:
        if db.engine.dialect.name == "postgresql":  # one snapshot for every query below
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        campaign = load_campaign(session, name)
        dwell = policy_from_dict(campaign.policy).dwell_of(campaign.current_wave)
        waves = [_Wave() for _ in campaign.waves]
        overall = _Wave()
        _count_statuses(session, campaign, now, waves, overall)
        _count_reasons(session, campaign, waves, overall)
        versions = _versions(session, campaign)
        health = _health(session, campaign)
        rollback = _rollback(session, campaign)
    return CampaignReport(
        name=campaign.name,
        release=campaign.release,
        state=campaign.state,
        current_wave=campaign.current_wave,
        wave_started_at=campaign.wave_started_at,
        dwell=dwell,
        generated_at=now,
        waves=tuple(
            WaveReport(i, float(p), w.tally())
            for i, (p, w) in enumerate(zip(campaign.waves, waves, strict=True))
        ),
        overall=overall.tally(),
        versions=versions,
        health=health,
        rollback=rollback,
    )


def _count_statuses(
    session: Session, campaign: CampaignRow, now: dt.datetime, waves: list[_Wave], overall: _Wave
) -> None:
    """Vehicles per (wave, status), and per group how many have been silent and for how long."""
    cv, contact = CampaignVehicleRow, VehicleRow.last_contact_at
    query = (
        select(
            cv.wave,
            cv.status,
            func.count(),
            _count_if(contact.is_(None)),
            _count_if(contact < now - QUIET),  # more than 24 h ago, strictly
            _count_if(contact < now - LONG_QUIET),
        )
        .join(VehicleRow, VehicleRow.id == cv.vehicle_id)
        .where(cv.campaign_id == campaign.id)
        .group_by(cv.wave, cv.status)
    )
    for wave, status, n, never, over_24h, over_7d in session.execute(query):
        for w in (waves[wave], overall):
            w.statuses[status] += n
            if status in _UNFINISHED:
                w.quiet.update(never=int(never), over_24h=int(over_24h), over_7d=int(over_7d))


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


def _count_reasons(session: Session, campaign: CampaignRow, waves: list[_Wave], overall: _Wave) -> None:
    """Reasons per wave and status, read grouped by the stored text of each reason list."""
    cv = CampaignVehicleRow
    text = cast(cv.reasons, Text)
    query = (
        select(cv.wave, cv.status, text, func.count())
        .where(cv.campaign_id == campaign.id, cv.reasons.is_not(None))
        .group_by(cv.wave, cv.status, text)
    )
    for wave, status, stored, n in session.execute(query):
        parsed = json.loads(stored) if stored else None  # JSON null: reasons were cleared
        reasons = [str(r) for r in parsed] if isinstance(parsed, list) else []
        if not reasons:
            continue
        bucket = WAITING if status == DeviceStatus.PENDING.value else status
        for w in (waves[wave], overall):
            if bucket == WAITING:
                w.waiting += n
            w.reasons[bucket].add(reasons, n)


def _versions(session: Session, campaign: CampaignRow) -> dict[str, dict[str, int]]:
    """ECU type → installed version → ECUs, over the campaign's vehicles; newest version first."""
    query = (
        select(EcuRow.ecu_type, EcuRow.installed_version, func.count())
        .join(CampaignVehicleRow, CampaignVehicleRow.vehicle_id == EcuRow.vehicle_id)
        .where(CampaignVehicleRow.campaign_id == campaign.id)
        .group_by(EcuRow.ecu_type, EcuRow.installed_version)
    )
    by_type: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for ecu_type, version, n in session.execute(query):
        by_type[ecu_type][version or UNKNOWN_VERSION] += n
    return {
        ecu_type: {v: counts[v] for v in _newest_first(counts)}
        for ecu_type, counts in sorted(by_type.items())
    }


def _newest_first(versions: Collection[str]) -> list[str]:
    """Versions in release order, newest first (2.10.0 before 2.4.0); then any that do not
    parse, by name; "unknown" last."""
    known: list[str] = []
    odd: list[str] = []
    for v in versions:
        if v == UNKNOWN_VERSION:
            continue
        try:
            parse_version(v)
            known.append(v)
        except InputError:
            odd.append(v)
    tail = [UNKNOWN_VERSION] if UNKNOWN_VERSION in versions else []
    return sorted(known, key=parse_version, reverse=True) + sorted(odd) + tail
