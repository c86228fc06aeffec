"""One firmware request to one charger: its states, what moves them, and when it times out.

A request is one (Signed)UpdateFirmware with a fresh requestId. It starts QUEUED (decided,
not sent: the outbox), and every event the CSMS sees moves it through one table:

    queued ─send─▶ sending ─Accepted─▶ accepted ─status…─▶ downloading … rebooting ─▶ installed
                      │                    │                         │
                      └─ Rejected, InvalidCertificate, CALLERROR, a failure status ─▶ failed
                      └─ no answer, reboot on the old version, Idle, silence ─▶ interrupted

Tracking is tolerant (the field's lesson): a station may skip statuses, repeat them, send
DownloadScheduled and InstallScheduled in either order, and send Installed before or after
its reboot, so any progress status moves an active request to that status's state. A
DownloadFailed is final only once the request's `retries` budget is spent (some stations
report one after every try). A boot that reports the target version is success even if
Installed never comes; a boot on another version while the request is active means it was
lost (power cut, a reboot that dropped a scheduled update): the request is *interrupted*
and a new attempt, with a new requestId, follows while `max_attempts` allows.

Pure: values and `now` in, the new state out; the service stores it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping

from evota.domain.chargers import Protocol

__all__ = [
    "ACTIVE",
    "FAILURE_STATUSES",
    "TERMINAL",
    "TRANSITIONS",
    "FirmwareMessage",
    "FirmwareStatus",
    "FirmwareTimeouts",
    "Outcome",
    "RequestEvent",
    "RequestState",
    "apply_event",
    "choose_message",
    "deadline",
    "event_for_response",
    "event_for_status",
    "retry_after_interruption",
]


class FirmwareStatus(enum.StrEnum):
    """What a charger reports in (Signed)FirmwareStatusNotification (1.6 core has a subset)."""

    DOWNLOAD_SCHEDULED = "DownloadScheduled"
    DOWNLOADING = "Downloading"
    DOWNLOAD_PAUSED = "DownloadPaused"
    DOWNLOADED = "Downloaded"
    DOWNLOAD_FAILED = "DownloadFailed"
    SIGNATURE_VERIFIED = "SignatureVerified"
    INVALID_SIGNATURE = "InvalidSignature"
    INSTALL_SCHEDULED = "InstallScheduled"
    INSTALLING = "Installing"
    INSTALL_REBOOTING = "InstallRebooting"
    INSTALLED = "Installed"
    INSTALLATION_FAILED = "InstallationFailed"
    INSTALL_VERIFICATION_FAILED = "InstallVerificationFailed"
    IDLE = "Idle"


FAILURE_STATUSES = frozenset(
    {
        FirmwareStatus.DOWNLOAD_FAILED,
        FirmwareStatus.INVALID_SIGNATURE,
        FirmwareStatus.INSTALLATION_FAILED,
        FirmwareStatus.INSTALL_VERIFICATION_FAILED,
    }
)


class RequestState(enum.StrEnum):
    QUEUED = "queued"  # decided, not sent yet
    SENDING = "sending"  # handed to the charger's session; no answer yet
    ACCEPTED = "accepted"  # answered Accepted (1.6 plain: the empty answer)
    DOWNLOAD_SCHEDULED = "download_scheduled"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    VERIFIED = "verified"  # SignatureVerified
    INSTALL_SCHEDULED = "install_scheduled"  # waits for a session to end, or installDateTime
    INSTALLING = "installing"
    REBOOTING = "rebooting"
    INSTALLED = "installed"  # Installed, or a boot on the target version
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # lost by the charger; a new attempt may follow
    CANCELED = "canceled"  # superseded by a newer request to the same charger


R = RequestState
TERMINAL = frozenset({R.INSTALLED, R.FAILED, R.INTERRUPTED, R.CANCELED})
ACTIVE = frozenset(set(RequestState) - TERMINAL - {R.QUEUED})  # sent, not finished
_SCHEDULED = frozenset({R.DOWNLOAD_SCHEDULED, R.INSTALL_SCHEDULED})


class RequestEvent(enum.StrEnum):
    """Everything that moves a request: the charger's statuses, folded, and the CSMS's own."""

    SEND = "send"
    ACCEPTED = "accepted"  # Accepted, AcceptedCanceled, or 1.6's empty UpdateFirmware answer
    REFUSED = "refused"  # Rejected, InvalidCertificate, RevokedCertificate, a CALLERROR
    NO_ANSWER = "no_answer"  # the call timed out or the socket closed under it
    DOWNLOAD_SCHEDULED = "download_scheduled"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    DOWNLOAD_RETRY = "download_retry"  # DownloadFailed with tries left
    VERIFIED = "verified"
    INSTALL_SCHEDULED = "install_scheduled"
    INSTALLING = "installing"
    REBOOTING = "rebooting"
    INSTALLED = "installed"  # Installed, or booted on the target version
    FAILED = "failed"  # a final failure status
    LOST = "lost"  # Idle while active, or booted on another version
    TIMED_OUT = "timed_out"  # silent for longer than the state allows
    SUPERSEDED = "superseded"


E = RequestEvent
_PROGRESS: Mapping[RequestEvent, RequestState] = {
    E.DOWNLOAD_SCHEDULED: R.DOWNLOAD_SCHEDULED,
    E.DOWNLOADING: R.DOWNLOADING,
    E.DOWNLOAD_RETRY: R.DOWNLOADING,
    E.DOWNLOADED: R.DOWNLOADED,
    E.VERIFIED: R.VERIFIED,
    E.INSTALL_SCHEDULED: R.INSTALL_SCHEDULED,
    E.INSTALLING: R.INSTALLING,
    E.REBOOTING: R.REBOOTING,
}


def _table() -> dict[tuple[RequestState, RequestEvent], RequestState]:
    table: dict[tuple[RequestState, RequestEvent], RequestState] = {
        (R.QUEUED, E.SEND): R.SENDING,
        (R.QUEUED, E.SUPERSEDED): R.CANCELED,
        (R.QUEUED, E.INSTALLED): R.INSTALLED,  # it already runs the target
        (R.SENDING, E.ACCEPTED): R.ACCEPTED,
        (R.SENDING, E.REFUSED): R.FAILED,
        (R.SENDING, E.NO_ANSWER): R.INTERRUPTED,
    }
    for state in ACTIVE:
        # A status may overtake the answer to the call that caused it.
        table.update({(state, event): target for event, target in _PROGRESS.items()})
        table[(state, E.INSTALLED)] = R.INSTALLED
        table[(state, E.FAILED)] = R.FAILED
        table[(state, E.LOST)] = R.INTERRUPTED
        table[(state, E.TIMED_OUT)] = R.INTERRUPTED
        table[(state, E.SUPERSEDED)] = R.CANCELED
    for state in ACTIVE - {R.SENDING}:
        table[(state, E.ACCEPTED)] = state  # the answer arrived after a status: keep the status
    return table


TRANSITIONS: Mapping[tuple[RequestState, RequestEvent], RequestState] = _table()


@dataclasses.dataclass(frozen=True)
class Outcome:
    """Where an event leaves a request; `changed` False means the event was noted and ignored
    (a status for a finished request, a repeat)."""

    state: RequestState
    changed: bool


def apply_event(state: RequestState, event: RequestEvent) -> Outcome:
    """The request's state after `event`. Events that make no sense in a state (a late status
    for a finished request, a second answer) leave it as it is: the charger is acknowledged
    and the step stored, but nothing the charger says can revive a finished request."""
    target = TRANSITIONS.get((state, event))
    if target is None:
        return Outcome(state, False)
    return Outcome(target, target is not state)


_STATUS_EVENTS: Mapping[FirmwareStatus, RequestEvent] = {
    FirmwareStatus.DOWNLOAD_SCHEDULED: E.DOWNLOAD_SCHEDULED,
    FirmwareStatus.DOWNLOADING: E.DOWNLOADING,
    FirmwareStatus.DOWNLOAD_PAUSED: E.DOWNLOADING,
    FirmwareStatus.DOWNLOADED: E.DOWNLOADED,
    FirmwareStatus.SIGNATURE_VERIFIED: E.VERIFIED,
    FirmwareStatus.INSTALL_SCHEDULED: E.INSTALL_SCHEDULED,
    FirmwareStatus.INSTALLING: E.INSTALLING,
    FirmwareStatus.INSTALL_REBOOTING: E.REBOOTING,
    FirmwareStatus.INSTALLED: E.INSTALLED,
    FirmwareStatus.INVALID_SIGNATURE: E.FAILED,
    FirmwareStatus.INSTALLATION_FAILED: E.FAILED,
    FirmwareStatus.INSTALL_VERIFICATION_FAILED: E.FAILED,
    FirmwareStatus.IDLE: E.LOST,
}


def event_for_status(status: FirmwareStatus, *, download_failures: int, retries: int) -> RequestEvent:
    """The event a reported status is. A DownloadFailed is final once the tries it reports
    reach the `retries` the request was sent with (L01.FR.30): `download_failures` is the
    larger of the DownloadFailed and the Downloading statuses seen for the request, since a
    station may report a failure after every try or only after the last. A station that
    retries silently and reports one early failure is caught by the silence timer."""
    if status is FirmwareStatus.DOWNLOAD_FAILED:
        return E.FAILED if download_failures >= retries else E.DOWNLOAD_RETRY
    return _STATUS_EVENTS[status]


_ACCEPTED_ANSWERS = frozenset({"Accepted", "AcceptedCanceled", ""})


def event_for_response(status: str) -> RequestEvent:
    """The event an answer to (Signed)UpdateFirmware is ("" for 1.6's empty answer)."""
    return E.ACCEPTED if status in _ACCEPTED_ANSWERS else E.REFUSED


@dataclasses.dataclass(frozen=True)
class FirmwareTimeouts:
    """How long a request may stay in a state without news before it counts as lost.

    `silence` covers every active state (no status, no boot); the scheduled states wait for
    a session to end or for installDateTime, so they get `scheduled` (and never less than
    `silence` past installDateTime). A QUEUED request never times out: it was never sent,
    and is sent when the charger connects.
    """

    silence: dt.timedelta = dt.timedelta(minutes=30)
    scheduled: dt.timedelta = dt.timedelta(hours=24)
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.silence <= dt.timedelta(0) or self.scheduled <= dt.timedelta(0):
            raise ValueError("firmware timeouts must be positive")
        if self.max_attempts < 1:
            raise ValueError("a request needs at least one attempt")


def deadline(
    state: RequestState,
    *,
    last_news_at: dt.datetime,
    install_at: dt.datetime | None,
    timeouts: FirmwareTimeouts,
) -> dt.datetime | None:
    """When a request in `state`, last heard of at `last_news_at`, counts as silent (None:
    never)."""
    if state not in ACTIVE:
        return None
    if state in _SCHEDULED:
        at = last_news_at + timeouts.scheduled
        return max(at, install_at + timeouts.silence) if install_at is not None else at
    return last_news_at + timeouts.silence


def retry_after_interruption(attempt: int, timeouts: FirmwareTimeouts) -> bool:
    """Whether an interrupted attempt number `attempt` (1-based) gets another."""
    return attempt < timeouts.max_attempts


class FirmwareMessage(enum.StrEnum):
    """The message a request goes out as, chosen from the charger's profile."""

    SIGNED_16 = "SignedUpdateFirmware"  # 1.6 with the security extension
    PLAIN_16 = "UpdateFirmware/1.6"  # 1.6 core: no signature, no requestId
    UPDATE_201 = "UpdateFirmware/2.0.1"  # with signingCertificate and signature

    @property
    def action(self) -> str:
        return self.value.partition("/")[0]

    @property
    def signed(self) -> bool:
        return self is not FirmwareMessage.PLAIN_16


def choose_message(protocol: Protocol, *, signed_updates: bool) -> FirmwareMessage:
    """2.0.1 always sends the signed UpdateFirmware; 1.6 sends SignedUpdateFirmware unless
    the charger's profile says it lacks the security extension (a station that has it SHALL
    refuse the plain message, white paper L01.FR.20)."""
    if protocol is Protocol.V201:
        return FirmwareMessage.UPDATE_201
    return FirmwareMessage.SIGNED_16 if signed_updates else FirmwareMessage.PLAIN_16
