"""The simulated ECU's UDS state machine: requests in, responses out, no bus.

`UdsServer.handle(request, now)` decides the answer to one request from the session, the
security state, the download in progress and the flash (`FlashStore`), and returns a
`Reply` for the driver (`evota.sim.uds_ecu`) to put on ISO-TP. It refuses what a real
boot loader refuses, with the NRC a tester would see:

    service in the wrong session            serviceNotSupportedInActiveSession (7F)
    10 02 from the default session          subFunctionNotSupportedInActiveSession (7E)
    programming without security            securityAccessDenied (33)
    a wrong key / the 3rd wrong key         invalidKey (35) / exceededNumberOfAttempts (36)
    a seed during the lockout delay         requiredTimeDelayNotExpired (37)
    RequestDownload without an erase        conditionsNotCorrect (22)
    36 without 34, 37 before the last byte  requestSequenceError (24)
    a block counter out of sequence         wrongBlockSequenceCounter (73)
    an image whose length or hash differs   generalProgrammingFailure (72), slot stays EMPTY
    erase or activate while on trial        conditionsNotCorrect (22)

Leaving a session, an S3 timeout (no request for `s3` seconds outside the default session)
and ECUReset all relock security and drop a download half done. `Faults` are the hooks a
test uses to make the ECU misbehave on purpose; the programming sequence itself is
`evota.sim.uds_download.DownloadFlow`.
"""

from __future__ import annotations

import collections
import dataclasses
import hmac
import json
import secrets
import struct
from collections.abc import Callable

from evota.agent.secondary import BootHealth, SelfTestResult, version_report_of
from evota.agent.uds_codec import SECURITY_LEVEL, Did, Nrc, Routine, Session, security_key
from evota.agent.uds_records import (
    decode_activate,
    decode_report_request,
    decode_settings,
    encode_layout,
    encode_self_test,
    encode_settings,
    encode_status,
)
from evota.security.manifest import sign_ecu_report
from evota.sim.uds_download import DownloadFlow, Faults, NegativeResponseError
from evota.sim.uds_flash import FlashStore

__all__ = ["Faults", "Reply", "ServerTiming", "UdsServer"]

_CHECKS = (
    "cell voltages plausible",
    "cell temperatures plausible",
    "contactors answer",
    "heartbeats",
    "soc in bounds",
)


@dataclasses.dataclass(frozen=True)
class ServerTiming:
    """What the ECU promises and enforces (seconds, except P2/P2* as sent on the wire)."""

    p2_ms: int = 50
    p2_star_ms: int = 5000
    s3: float = 5.0
    max_attempts: int = 3
    lockout_delay: float = 10.0
    boot_limit: int = 3
    max_block_length: int = 4095


@dataclasses.dataclass(frozen=True)
class Reply:
    response: bytes | None  # None: nothing to send (suppressed, or dropped on purpose)
    pending: int = 0  # 7F <sid> 78 answers to send first
    pending_interval: float = 0.0


class UdsServer:
    """One ECU's diagnostic server. Not thread-safe: one driver thread calls it."""

    def __init__(self, store: FlashStore, timing: ServerTiming, faults: Faults | None = None) -> None:
        self.store = store
        self.timing = timing
        self.faults = faults or Faults()
        self.stats: collections.Counter[str] = collections.Counter()
        self.session = Session.DEFAULT
        self._unlocked = False
        self._seed: bytes | None = None
        self._failed_keys = 0
        self._locked_until = 0.0
        self._last_activity = 0.0
        self.flow = DownloadFlow(store, timing.max_block_length, self.faults, self.stats)
        self._handlers: dict[int, Callable[[bytes, float], bytes | None]] = {
            0x10: self._session_control,
            0x11: self._ecu_reset,
            0x22: self._read_did,
            0x27: self._security_access,
            0x2E: self._write_did,
            0x31: self._routine_control,
            0x34: self._request_download,
            0x36: self._transfer_data,
            0x37: self._transfer_exit,
            0x3E: self._tester_present,
        }

    def power_on(self, now: float) -> None:
        """Cold start: the boot loader runs, the diagnostic server starts in default."""
        self._enter(Session.DEFAULT)
        self.store.boot(self.timing.boot_limit)
        self._last_activity = now
        self.stats["boots"] += 1

    def tick(self, now: float) -> None:
        """S3: outside the default session, silence for `s3` seconds ends the session."""
        if self.session is not Session.DEFAULT and now - self._last_activity > self.timing.s3:
            self._enter(Session.DEFAULT)
            self.stats["s3_timeouts"] += 1

    def touch(self, now: float) -> None:
        self._last_activity = now

    def close(self) -> None:
        self.flow.reset()

    def handle(self, request: bytes, now: float) -> Reply:
        if not request:
            return Reply(None)
        sid = request[0]
        handler = self._handlers.get(sid)
        if handler is None:
            return Reply(bytes([0x7F, sid, Nrc.SERVICE_NOT_SUPPORTED]))
        try:
            response = handler(request[1:], now)
        except NegativeResponseError as e:
            self.stats[f"nrc_{e.nrc.name.lower()}"] += 1
            return Reply(bytes([0x7F, sid, e.nrc]))
        except (ValueError, UnicodeDecodeError, IndexError, struct.error):
            return Reply(bytes([0x7F, sid, Nrc.INCORRECT_MESSAGE_LENGTH]))
        if sid == 0x31 and request[2:4] == Routine.ERASE.to_bytes(2, "big") and self.faults.erase_pending:
            pending, self.faults.erase_pending = self.faults.erase_pending, 0
            return Reply(response, pending, self.faults.pending_interval)
        if sid == 0x36 and self.flow.answer_lost():
            return Reply(None)
        return Reply(response)

    # -- sessions and security -------------------------------------------------------

    def _enter(self, session: Session) -> None:
        self.session = session
        self._unlocked, self._seed = False, None
        self.flow.reset()

    def _need(self, *sessions: Session, security: bool = False) -> None:
        if self.session not in sessions:
            raise NegativeResponseError(Nrc.SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION)
        if security and not self._unlocked:
            raise NegativeResponseError(Nrc.SECURITY_ACCESS_DENIED)

    def _session_control(self, data: bytes, now: float) -> bytes | None:
        sub, quiet = data[0] & 0x7F, bool(data[0] & 0x80)
        try:
            session = Session(sub)
        except ValueError:
            raise NegativeResponseError(Nrc.SUBFUNCTION_NOT_SUPPORTED) from None
        if session is Session.PROGRAMMING and self.session is Session.DEFAULT:
            raise NegativeResponseError(Nrc.SUBFUNCTION_NOT_SUPPORTED_IN_ACTIVE_SESSION)
        self._enter(session)
        timing = struct.pack(">HH", self.timing.p2_ms, self.timing.p2_star_ms // 10)
        return None if quiet else bytes([0x50, sub]) + timing

    def _security_access(self, data: bytes, now: float) -> bytes:
        self._need(Session.EXTENDED, Session.PROGRAMMING)
        sub = data[0]
        if sub == SECURITY_LEVEL:
            if now < self._locked_until:
                raise NegativeResponseError(Nrc.REQUIRED_TIME_DELAY_NOT_EXPIRED)
            if self._unlocked:
                return bytes([0x67, sub]) + bytes(16)
            self._seed = secrets.token_bytes(16)
            return bytes([0x67, sub]) + self._seed
        if sub != SECURITY_LEVEL + 1:
            raise NegativeResponseError(Nrc.SUBFUNCTION_NOT_SUPPORTED)
        seed, self._seed = self._seed, None  # a seed answers one key, right or wrong
        if seed is None:
            raise NegativeResponseError(Nrc.REQUEST_SEQUENCE_ERROR)
        if hmac.compare_digest(data[1:], security_key(seed, self.store.secret, SECURITY_LEVEL)):
            self._unlocked, self._failed_keys = True, 0
            return bytes([0x67, sub])
        self._failed_keys += 1
        if self._failed_keys >= self.timing.max_attempts:
            self._failed_keys, self._locked_until = 0, now + self.timing.lockout_delay
            raise NegativeResponseError(Nrc.EXCEEDED_NUMBER_OF_ATTEMPTS)
        raise NegativeResponseError(Nrc.INVALID_KEY)

    def _tester_present(self, data: bytes, now: float) -> bytes | None:
        if data[0] & 0x7F != 0:
            raise NegativeResponseError(Nrc.SUBFUNCTION_NOT_SUPPORTED)
        return None if data[0] & 0x80 else bytes([0x7E, 0x00])

    def _ecu_reset(self, data: bytes, now: float) -> bytes | None:
        sub = data[0] & 0x7F
        if sub not in (0x01, 0x03):
            raise NegativeResponseError(Nrc.SUBFUNCTION_NOT_SUPPORTED)
        self.stats["resets"] += 1
        self.power_on(now)
        return None if data[0] & 0x80 else bytes([0x51, sub])

    # -- data identifiers ------------------------------------------------------------

    def _did(self, did: int) -> bytes:
        identity = self.store.identity
        values: dict[int, Callable[[], bytes]] = {
            Did.ECU_SERIAL: lambda: identity.serial.encode(),
            Did.HARDWARE_ID: lambda: identity.hardware_id.encode(),
            Did.ECU_TYPE: lambda: identity.ecu_type.encode(),
            Did.SLOT_STATUS: lambda: encode_status(self.store.status()),
            Did.MEMORY_LAYOUT: lambda: encode_layout(self.store.layout),
            Did.USER_SETTINGS: lambda: encode_settings(self.store.user_settings),
        }
        if did not in values:
            raise NegativeResponseError(Nrc.REQUEST_OUT_OF_RANGE)
        return values[did]()

    def _read_did(self, data: bytes, now: float) -> bytes:
        if not data or len(data) % 2:
            raise ValueError("DIDs are two bytes each")
        out = bytearray([0x62])
        for i in range(0, len(data), 2):
            did = int.from_bytes(data[i : i + 2], "big")
            out += data[i : i + 2] + self._did(did)
        return bytes(out)

    def _write_did(self, data: bytes, now: float) -> bytes:
        did = int.from_bytes(data[:2], "big")
        if did != Did.USER_SETTINGS:
            raise NegativeResponseError(Nrc.REQUEST_OUT_OF_RANGE)
        self._need(Session.EXTENDED, Session.PROGRAMMING, security=True)
        try:
            settings = decode_settings(data[2:])
        except ValueError:
            raise NegativeResponseError(Nrc.REQUEST_OUT_OF_RANGE) from None
        self.store.set_user_settings(settings)
        return bytes([0x6E]) + data[:2]

    # -- routines --------------------------------------------------------------------

    def _routine_control(self, data: bytes, now: float) -> bytes | None:
        sub, quiet = data[0] & 0x7F, bool(data[0] & 0x80)
        if sub != 0x01:
            raise NegativeResponseError(Nrc.SUBFUNCTION_NOT_SUPPORTED)
        try:
            routine = Routine(int.from_bytes(data[1:3], "big"))
        except ValueError:
            raise NegativeResponseError(Nrc.REQUEST_OUT_OF_RANGE) from None
        record = self._routine(routine, data[3:], now)
        return None if quiet else bytes([0x71, 0x01]) + data[1:3] + record

    def _routine(self, routine: Routine, option: bytes, now: float) -> bytes:
        store = self.store
        if routine is Routine.VERSION_REPORT:
            return self._version_report(option)
        if routine is Routine.SELF_TEST:
            self._need(Session.EXTENDED)
            return encode_self_test(self._self_test())
        if routine in (Routine.ERASE, Routine.CHECK_DEPENDENCIES):
            self._need(Session.PROGRAMMING, security=True)
            if routine is Routine.ERASE:
                self.flow.erase(option)
            else:
                self.flow.check(option)
            return b""
        self._need(Session.EXTENDED, security=True)
        if routine is Routine.ACTIVATE:
            self._activate(option)
        elif routine is Routine.MARK_GOOD:
            store.mark_good()
        elif routine is Routine.REVERT:
            if not store.revertible():
                raise NegativeResponseError(Nrc.CONDITIONS_NOT_CORRECT)
            store.revert()
        else:
            store.reset_state()
        return b""

    def _activate(self, option: bytes) -> None:
        slots = decode_activate(option)
        for partition, slot in slots.items():
            active, health = self.store.active(partition), self.store.health(partition, slot)
            if active is slot and health in (BootHealth.TRIAL, BootHealth.GOOD):
                continue  # already running on it
            if health not in (BootHealth.STAGED, BootHealth.GOOD):
                raise NegativeResponseError(Nrc.CONDITIONS_NOT_CORRECT)
            if self.store.health(partition, active) is BootHealth.TRIAL:
                raise NegativeResponseError(Nrc.CONDITIONS_NOT_CORRECT)  # commit or revert the trial first
        self.store.activate(slots)

    def _self_test(self) -> SelfTestResult:
        failure = self.faults.self_test_failure
        checks = {name: name != failure for name in _CHECKS}
        if failure is not None and failure not in checks:
            checks[failure] = False
        return SelfTestResult(failure is None, failure or "", checks)

    def _version_report(self, option: bytes) -> bytes:
        counter, time, attacks = decode_report_request(option)
        installed = self.store.status().installed
        if installed is None:
            raise NegativeResponseError(Nrc.CONDITIONS_NOT_CORRECT)
        serial = self.store.identity.serial
        report = version_report_of(serial, installed, time=time, counter=counter, attacks=attacks)
        return json.dumps(sign_ecu_report(report, self.store.signer), sort_keys=True).encode()

    # -- download (the flow checks the sequence; the server checks session and security) --

    def _request_download(self, data: bytes, now: float) -> bytes:
        self._need(Session.PROGRAMMING, security=True)
        return self.flow.request(data)

    def _transfer_data(self, data: bytes, now: float) -> bytes:
        self._need(Session.PROGRAMMING)
        return self.flow.transfer(data)

    def _transfer_exit(self, data: bytes, now: float) -> bytes:
        self._need(Session.PROGRAMMING)
        return self.flow.exit()
