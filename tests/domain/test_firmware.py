"""One firmware request's table: tolerant tracking, the retry budget, timeouts, the message."""

from __future__ import annotations

import datetime as dt

import pytest

from evota.domain.chargers import Protocol
from evota.domain.firmware import (
    ACTIVE,
    TERMINAL,
    FirmwareMessage,
    FirmwareStatus,
    FirmwareTimeouts,
    RequestEvent,
    RequestState,
    apply_event,
    choose_message,
    deadline,
    event_for_response,
    event_for_status,
    retry_after_interruption,
)

R, E, S = RequestState, RequestEvent, FirmwareStatus


def walk(*statuses: FirmwareStatus, retries: int = 3) -> RequestState:
    state = apply_event(apply_event(R.QUEUED, E.SEND).state, E.ACCEPTED).state
    failures = 0
    for status in statuses:
        failures += status is S.DOWNLOAD_FAILED
        state = apply_event(
            state, event_for_status(status, download_failures=failures, retries=retries)
        ).state
    return state


SEQUENCES = {
    "2.0.1 happy path": (
        [S.DOWNLOADING, S.DOWNLOADED, S.SIGNATURE_VERIFIED, S.INSTALLING, S.INSTALL_REBOOTING, S.INSTALLED],
        R.INSTALLED,
    ),
    "1.6 core": ([S.DOWNLOADING, S.DOWNLOADED, S.INSTALLING, S.INSTALLED], R.INSTALLED),
    "skipped statuses": ([S.DOWNLOADED, S.INSTALLED], R.INSTALLED),
    "repeated statuses": ([S.DOWNLOADING, S.DOWNLOADING, S.DOWNLOADED, S.DOWNLOADED], R.DOWNLOADED),
    "scheduled in either order": ([S.INSTALL_SCHEDULED, S.DOWNLOAD_SCHEDULED], R.DOWNLOAD_SCHEDULED),
    "paused download": ([S.DOWNLOADING, S.DOWNLOAD_PAUSED], R.DOWNLOADING),
    "installing skipped": ([S.SIGNATURE_VERIFIED, S.INSTALL_REBOOTING], R.REBOOTING),
    "invalid signature": ([S.DOWNLOADED, S.INVALID_SIGNATURE], R.FAILED),
    "installation failed": ([S.INSTALLING, S.INSTALLATION_FAILED], R.FAILED),
    "verification failed": ([S.INSTALLING, S.INSTALL_VERIFICATION_FAILED], R.FAILED),
    "one DownloadFailed of three tries": ([S.DOWNLOADING, S.DOWNLOAD_FAILED], R.DOWNLOADING),
    "the last DownloadFailed": ([S.DOWNLOAD_FAILED] * 3, R.FAILED),
    "Idle while active: lost": ([S.DOWNLOADING, S.IDLE], R.INTERRUPTED),
    "a status after the end changes nothing": ([S.INSTALLATION_FAILED, S.DOWNLOADING, S.INSTALLED], R.FAILED),
}


@pytest.mark.parametrize("case", sorted(SEQUENCES))
def test_status_sequences(case: str) -> None:
    statuses, end = SEQUENCES[case]
    assert walk(*statuses) is end


def test_every_active_state_takes_every_status_and_terminal_states_take_none() -> None:
    for state in ACTIVE:
        for status in S:
            event = event_for_status(status, download_failures=1, retries=1)
            assert apply_event(state, event).state is not None
    for state in TERMINAL:
        for event in E:
            assert apply_event(state, event) == apply_event(state, event)
            assert not apply_event(state, event).changed


@pytest.mark.parametrize(
    ("state", "event", "end"),
    [
        (R.QUEUED, E.SEND, R.SENDING),
        (R.QUEUED, E.INSTALLED, R.INSTALLED),  # it runs the target already
        (R.QUEUED, E.LOST, R.QUEUED),  # a reboot before the request was sent: still to send
        (R.SENDING, E.REFUSED, R.FAILED),
        (R.SENDING, E.NO_ANSWER, R.INTERRUPTED),
        (R.DOWNLOADING, E.ACCEPTED, R.DOWNLOADING),  # the answer arrived after a status
        (R.INSTALLING, E.LOST, R.INTERRUPTED),  # rebooted on the old version
        (R.REBOOTING, E.INSTALLED, R.INSTALLED),  # booted on the target, Installed never came
        (R.INSTALL_SCHEDULED, E.TIMED_OUT, R.INTERRUPTED),
        (R.ACCEPTED, E.SUPERSEDED, R.CANCELED),
        (R.QUEUED, E.SUPERSEDED, R.CANCELED),
    ],
)
def test_csms_events(state: RequestState, event: RequestEvent, end: RequestState) -> None:
    assert apply_event(state, event).state is end


@pytest.mark.parametrize(
    ("answer", "event"),
    [
        ("Accepted", E.ACCEPTED),
        ("AcceptedCanceled", E.ACCEPTED),
        ("", E.ACCEPTED),  # 1.6 core's empty UpdateFirmware.conf
        ("Rejected", E.REFUSED),
        ("InvalidCertificate", E.REFUSED),
        ("RevokedCertificate", E.REFUSED),
    ],
)
def test_answers(answer: str, event: RequestEvent) -> None:
    assert event_for_response(answer) is event


T0 = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)


def test_deadlines() -> None:
    limits = FirmwareTimeouts(silence=dt.timedelta(minutes=30), scheduled=dt.timedelta(hours=24))
    assert deadline(R.QUEUED, last_news_at=T0, install_at=None, timeouts=limits) is None
    assert deadline(R.INSTALLED, last_news_at=T0, install_at=None, timeouts=limits) is None
    assert deadline(R.DOWNLOADING, last_news_at=T0, install_at=None, timeouts=limits) == T0 + dt.timedelta(
        minutes=30
    )
    assert deadline(
        R.INSTALL_SCHEDULED, last_news_at=T0, install_at=None, timeouts=limits
    ) == T0 + dt.timedelta(hours=24)
    later = T0 + dt.timedelta(days=3)
    assert deadline(
        R.INSTALL_SCHEDULED, last_news_at=T0, install_at=later, timeouts=limits
    ) == later + dt.timedelta(minutes=30)


def test_attempts_and_bad_limits() -> None:
    limits = FirmwareTimeouts(max_attempts=3)
    assert [retry_after_interruption(a, limits) for a in (1, 2, 3)] == [True, True, False]
    with pytest.raises(ValueError):
        FirmwareTimeouts(silence=dt.timedelta(0))
    with pytest.raises(ValueError):
        FirmwareTimeouts(max_attempts=0)


@pytest.mark.parametrize(
    ("protocol", "signed", "message", "action"),
    [
        (Protocol.V201, True, FirmwareMessage.UPDATE_201, "UpdateFirmware"),
        (Protocol.V201, False, FirmwareMessage.UPDATE_201, "UpdateFirmware"),  # 2.0.1 is always signed
        (Protocol.V16, True, FirmwareMessage.SIGNED_16, "SignedUpdateFirmware"),
        (Protocol.V16, False, FirmwareMessage.PLAIN_16, "UpdateFirmware"),
    ],
)
def test_the_message_follows_the_profile(
    protocol: Protocol, signed: bool, message: FirmwareMessage, action: str
) -> None:
    chosen = choose_message(protocol, signed_updates=signed)
    assert (
        chosen is message
        and chosen.action == action
        and chosen.signed == (message is not FirmwareMessage.PLAIN_16)
    )
