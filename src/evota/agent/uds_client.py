"""The tester's UDS primitives on udsoncan: sessions, security, routines, DIDs, keep-alive.

`UdsTester` wraps one udsoncan `Client` on one ISO-TP link. Every request goes through
`UdsTester.call`, which holds a lock (the TesterPresent thread shares the client), refuses
work once closed, and translates what udsoncan, can-isotp and python-can raise into
evota's errors in one place (`map_uds_errors`). `evota.agent.uds.UdsEcu` builds the
Secondary port's moves from these; nothing here knows about slots.

Timing: udsoncan's own use of the ECU's P2/P2* is switched off and replaced by the larger
of the ECU's figure and the configured one, because a Python tester on a loaded host can
miss an ECU's 50 ms P2 by itself; the ECU's P2* is always honoured as a floor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import can
import isotp
from udsoncan import DidCodec
from udsoncan.client import Client
from udsoncan.configs import default_client_config
from udsoncan.connections import PythonIsoTpConnection
from udsoncan.exceptions import (
    InvalidResponseException,
    NegativeResponseException,
    TimeoutException,
    UnexpectedResponseException,
)
from udsoncan.services.ECUReset import ECUReset
from udsoncan.typing import ClientConfig

from evota.agent.errors import EcuError, EcuUnreachableError, FlashError
from evota.agent.uds_codec import SECURITY_LEVEL, Did, Routine, Session, nrc_name, security_key
from evota.agent.uds_link import CanLink, IsoTpLink

__all__ = ["UdsConfig", "UdsTester", "map_uds_errors"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class UdsConfig:
    """How to reach and unlock one ECU, and how long to wait for it (seconds)."""

    link: CanLink
    security_secret: bytes = dataclasses.field(repr=False)  # the ECU's seed/key secret
    p2_timeout: float = 1.0  # per response; the ECU's P2 if larger
    p2_star_timeout: float = 5.0  # per response after 0x78; the ECU's P2* if larger
    request_timeout: float = 5.0  # whole request, 0x78 included, except for long routines
    long_routine_timeout: float | None = None  # erase, self-test: None = P2* per 0x78 only
    tester_present_interval: float | None = 2.0  # below the ECU's S3 (5 s); None = never
    transfer_retries: int = 3  # resends of one TransferData block whose answer was lost
    boot_timeout: float = 10.0  # how long an ECU may take to answer again after ECUReset

    def __post_init__(self) -> None:
        if not self.security_secret:
            raise ValueError("an ECU needs a security secret")
        if self.transfer_retries < 0:
            raise ValueError("transfer_retries cannot be negative")


@contextlib.contextmanager
def map_uds_errors(what: str, ecu: str) -> Iterator[None]:
    """Turn udsoncan, can-isotp and python-can exceptions into evota's ECU errors.

    A negative response is a refusal (FlashError, named by its ISO NRC name); silence or a
    broken link is EcuUnreachableError; an answer that makes no sense is EcuError.
    udsoncan's ConfigError and ValueError are evota bugs and pass through.
    """
    try:
        yield
    except NegativeResponseException as e:
        code = int(e.response.code) if e.response.code is not None else 0
        raise FlashError(f"{ecu}: {what} refused: {nrc_name(code)} (0x{code:02X})") from e
    except TimeoutException as e:
        raise EcuUnreachableError(f"{ecu}: {what}: no answer in time ({e})") from e
    except (InvalidResponseException, UnexpectedResponseException) as e:
        raise EcuError(f"{ecu}: {what}: the ECU's answer is not valid UDS ({e})") from e
    except isotp.IsoTpError as e:
        raise EcuUnreachableError(f"{ecu}: {what}: ISO-TP failed ({type(e).__name__}: {e})") from e
    except can.CanError as e:
        raise EcuUnreachableError(f"{ecu}: {what}: CAN bus error ({e})") from e


class _Raw(DidCodec):
    """A DID read or written as bytes; `evota.agent.uds_codec` parses them."""

    def encode(self, *did_value: Any) -> bytes:
        return bytes(did_value[0])

    def decode(self, did_payload: bytes) -> Any:
        return bytes(did_payload)

    def __len__(self) -> int:
        raise DidCodec.ReadAllRemainingData


def _must(response: T | None, what: str) -> T:
    if response is None:  # only with suppressPositiveResponse, which only TesterPresent uses
        raise RuntimeError(f"{what}: udsoncan returned no response")
    return response


class UdsTester:
    """One udsoncan client on one link, shared by the caller and a keep-alive thread."""

    def __init__(self, config: UdsConfig, name: str) -> None:
        self.config = config
        self.name = name
        self._lock = threading.RLock()
        self._closed = False
        self._last_request = time.monotonic()
        self._link = IsoTpLink(config.link, blocking_send=True, start=False)
        try:
            client_config = cast(ClientConfig, dict(default_client_config))
            client_config["request_timeout"] = config.request_timeout
            client_config["p2_timeout"] = config.p2_timeout
            client_config["p2_star_timeout"] = config.p2_star_timeout
            client_config["use_server_timing"] = False
            client_config["server_address_format"] = 32
            client_config["server_memorysize_format"] = 32
            client_config["data_identifiers"] = {int(did): _Raw() for did in Did}
            self._client = Client(PythonIsoTpConnection(self._link.stack), config=client_config)
            self._client.open()
        except BaseException:
            self._link.close()
            raise

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._client.close()
            finally:
                self._link.close()

    def call(self, what: str, fn: Callable[[Client], T]) -> T:
        """Run one request under the lock, with errors mapped."""
        with self._lock:
            if self._closed:
                raise EcuUnreachableError(f"{self.name}: {what}: the tester's connection is closed")
            try:
                with map_uds_errors(what, self.name):
                    return fn(self._client)
            finally:
                self._last_request = time.monotonic()

    @property
    def closed(self) -> bool:
        return self._closed

    def session(self, session: Session) -> None:
        """DiagnosticSessionControl; adopts the ECU's P2/P2* where they exceed the config's."""
        what = f"DiagnosticSessionControl {session.name.lower()}"
        response = self.call(what, lambda c: c.change_session(session))
        data = _must(response, "DiagnosticSessionControl").service_data
        with self._lock:
            self._client.set_config("p2_timeout", max(self.config.p2_timeout, data.p2_server_max or 0.0))
            self._client.set_config(
                "p2_star_timeout", max(self.config.p2_star_timeout, data.p2_star_server_max or 0.0)
            )

    def unlock(self) -> None:
        """SecurityAccess: request a seed (27 01), answer with `security_key` (27 02)."""
        response = self.call("SecurityAccess requestSeed", lambda c: c.request_seed(SECURITY_LEVEL))
        seed = bytes(_must(response, "SecurityAccess").service_data.seed or b"")
        if seed and seed == bytes(len(seed)):
            return  # an all-zero seed: already unlocked in this session
        key = security_key(seed, self.config.security_secret, SECURITY_LEVEL)
        self.call("SecurityAccess sendKey", lambda c: c.send_key(SECURITY_LEVEL + 1, key))

    def routine(self, routine: Routine, data: bytes = b"", *, long: bool = False) -> bytes:
        """RoutineControl startRoutine; returns the routine status record.

        A long routine (erase, self-test) runs without udsoncan's overall request timeout:
        the ECU keeps it alive with 0x78, and each wait is bounded by P2* alone.
        """
        what = f"RoutineControl 0x{int(routine):04X} ({routine.name.lower()})"
        with self._lock, self._timeout_lifted(long):
            response = self.call(what, lambda c: c.start_routine(routine, data or None))
        return bytes(_must(response, what).service_data.routine_status_record or b"")

    def read(self, did: Did) -> bytes:
        what = f"ReadDataByIdentifier 0x{int(did):04X}"
        response = self.call(what, lambda c: c.read_data_by_identifier(int(did)))
        return bytes(_must(response, what).service_data.values[int(did)])

    def write(self, did: Did, data: bytes) -> None:
        what = f"WriteDataByIdentifier 0x{int(did):04X}"
        self.call(what, lambda c: c.write_data_by_identifier(int(did), data))

    def reset(self) -> None:
        self.call("ECUReset hardReset", lambda c: c.ecu_reset(ECUReset.ResetType.hardReset))

    def tester_present(self) -> None:
        """3E 80: TesterPresent without a positive response, so it never crosses an answer."""

        def send(c: Client) -> None:
            with c.suppress_positive_response:
                c.tester_present()

        self.call("TesterPresent", send)

    @contextlib.contextmanager
    def _timeout_lifted(self, lifted: bool) -> Iterator[None]:
        if not lifted:
            yield
            return
        self._client.set_config("request_timeout", self.config.long_routine_timeout)
        try:
            yield
        finally:
            self._client.set_config("request_timeout", self.config.request_timeout)

    @contextlib.contextmanager
    def held(self, *sessions: Session) -> Iterator[None]:
        """Enter `sessions` in order, keep the last alive with TesterPresent, then go back
        to the default session (best effort: a dead link must not hide the first error)."""
        stop = threading.Event()
        keeper = threading.Thread(
            target=self._keep_alive, args=(stop,), name=f"{self.name} 3E80", daemon=True
        )
        try:
            for session in sessions:
                self.session(session)
            keeper.start()
            yield
        finally:
            stop.set()
            if keeper.is_alive():
                keeper.join()
            with contextlib.suppress(EcuError):
                self.session(Session.DEFAULT)

    def _keep_alive(self, stop: threading.Event) -> None:
        interval = self.config.tester_present_interval
        if interval is None:
            return
        while not stop.wait(interval / 4):
            if time.monotonic() - self._last_request < interval:
                continue
            # A lost TesterPresent is reported by the flow's next request, with its own error.
            with contextlib.suppress(EcuError):
                self.tester_present()
