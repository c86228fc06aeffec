"""A simulated charger: a real OCPP 1.6J or 2.0.1 charge point over websockets.

It boots, heartbeats, reports its connectors, runs charging sessions, and takes firmware
updates the way a station does (2.0.1 L01, the 1.6 security white paper):

    Downloading (HTTP, `retries` tries) → Downloaded → SignatureVerified (signed: the
    certificate under its manufacturer root, the signature over every byte) →
    [InstallScheduled: a session is running, or installDateTime is ahead] → Installing →
    InstallRebooting → reboot → BootNotification(FirmwareUpdate, new version) →
    StatusNotification(Available) → Installed (+ FirmwareUpdated security event)

A certificate that does not chain to its root is refused at once (InvalidCertificate). It
can be told to fail (`Fault`): every download fails (DownloadFailed after the last try), the
downloaded bytes are corrupted (InvalidSignature), the install fails (InstallationFailed or
InstallVerificationFailed), the power goes mid-install (the websocket drops, the station
reboots on its old firmware and forgets the update, once), or the new firmware regresses
(the first session after the install and every `regression_every`-th one after it end on
EmergencyStop). An image whose bytes contain
`REGRESSION_MARKER` regresses the same way once installed; a firmware's version is read from
an `evota-sim:version=` line in the image, else from its file name.

The station sets its clock from the CSMS's `currentTime`, as chargers do, so it judges
certificate validity in the CSMS's time (a simulated clock in tests). Run it with
`evota sim charger`, or `SimCharger(config).run(stop)` in a test's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from ocpp.exceptions import OCPPError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from evota.clock import Clock, SystemClock
from evota.domain.chargers import Protocol, parse_ocpp_time
from evota.errors import EvotaError
from evota.security.firmware_signing import check_certificate, verify_firmware, verify_signature
from evota.sim.charger_config import MAX_IMAGE, REGRESSION_MARKER, Fault, SimConfig, image_version
from evota.sim.charger_ocpp import Station16, Station201, UpdateOrder

__all__ = ["REGRESSION_MARKER", "Fault", "SimCharger", "SimConfig", "image_version"]

log = logging.getLogger("evota.sim.charger")

Station = Station16 | Station201


class _DownloadError(Exception):
    pass


class SimCharger:
    def __init__(self, config: SimConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.security_extension = config.security_extension or config.protocol is Protocol.V201
        self.version = config.firmware_version
        self.history: list[str] = []  # what it did, for tests and the operator: "boot PowerUp 1.0.0", …
        self.sessions = 0
        self._regressed = False
        self._since_install = 0  # sessions on the firmware installed last
        self._power_cuts_left = 1 if Fault.POWER_LOSS in config.faults else 0
        self._station: Station | None = None
        self._online = asyncio.Event()
        self._stop = asyncio.Event()
        self._end_connection = asyncio.Event()
        self._needs_boot, self._boot_reason, self._abort = True, "PowerUp", False
        self._job: asyncio.Task[None] | None = None
        self._job_status: tuple[str, int | None] | None = None
        self._installing = False
        self._after_boot: list[tuple[str, int | None]] = []
        self._in_session = False
        self._cut_session: tuple[str, int] | None = None  # a session the power cut ended
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        # The station's own clock: the host's (or a simulated one), moved by the CSMS's time.
        self._clock: Clock = clock or SystemClock()
        self._clock_offset = dt.timedelta(0)
        self._meter = 0

    # ---- time ---------------------------------------------------------------------------------
    def now(self) -> dt.datetime:
        return self._clock.now() + self._clock_offset

    def _set_time(self, current: object) -> None:
        at = parse_ocpp_time(current)
        if at is not None:
            self._clock_offset = at - self._clock.now()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the connection -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Connect, and reconnect, until `stop` is set."""
        self._stop = stop or asyncio.Event()
        if self.config.session_every_s is not None:
            self._spawn(self._sessions_loop())
        try:
            while not self._stop.is_set():
                rebooting = False
                try:
                    rebooting = await self._connection()
                except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError) as e:
                    log.info("%s: connection failed or lost: %s", self.config.charge_point_id, e)
                delay = self.config.reboot_s if rebooting else self.config.reconnect_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._job is not None:
                self._job.cancel()
            for task in [*self._tasks, *([self._job] if self._job else [])]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _headers(self) -> dict[str, str]:
        if self.config.password is None:
            return {}
        token = base64.b64encode(f"{self.config.charge_point_id}:{self.config.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def _connection(self) -> bool:
        """One websocket connection; True if it ended for a reboot."""
        self._end_connection.clear()
        async with connect(
            self.config.url,
            subprotocols=[self.config.protocol.subprotocol],  # type: ignore[list-item]
            additional_headers=self._headers(),
            open_timeout=10,
            compression=None,  # as most stations: OCPP frames are small, deflate costs CPU on both ends
        ) as ws:
            station: Station = (Station201 if self.config.protocol is Protocol.V201 else Station16)(
                self.config.charge_point_id, ws, self
            )
            reader = asyncio.ensure_future(station.start())
            heartbeat: asyncio.Task[None] | None = None
            try:
                interval = await self._boot(station) if self._needs_boot else 300
                self._station = station
                self._online.set()
                for connector in range(1, self.config.connectors + 1):
                    await station.connector(connector, "Occupied" if self._in_session else "Available")
                await self._flush_after_boot(station)
                heartbeat = asyncio.ensure_future(
                    self._heartbeats(station, self.config.heartbeat_s or interval)
                )
                ended = asyncio.ensure_future(self._end_connection.wait())
                stopped = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait({reader, ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
                ended.cancel()
                stopped.cancel()
            finally:
                self._online.clear()
                self._station = None
                for task in (heartbeat, reader):
                    if task is not None:
                        task.cancel()
                if self._abort:  # a power cut: no closing handshake
                    self._abort = False
                    ws.transport.abort()
            return self._needs_boot

    async def _boot(self, station: Station) -> int:
        while True:
            answer = await station.boot(
                vendor=self.config.vendor,
                model=self.config.model,
                firmware_version=self.version,
                reason=self._boot_reason,
            )
            self._set_time(answer.current_time)
            if answer.status == "Accepted":
                self.history.append(f"boot {self._boot_reason} {self.version}")
                self._needs_boot, self._boot_reason = False, "PowerUp"
                return int(answer.interval) or 300
            await asyncio.sleep(min(float(answer.interval or 1), 5.0))

    async def _flush_after_boot(self, station: Station) -> None:
        if self._cut_session is not None:
            tx, meter = self._cut_session
            self._cut_session = None
            await station.stop_session(1, tx, meter, "PowerLoss", 99)
        pending, self._after_boot = self._after_boot, []
        for status, request_id in pending:
            try:
                if status == "FirmwareUpdated":
                    await station.security_event("FirmwareUpdated")
                else:
                    await self._record_and_send(station, status, request_id)
            except (OCPPError, TimeoutError) as e:  # refused or unanswered: the station goes on
                log.warning("%s: %s after the boot: %s", self.config.charge_point_id, status, e)

    async def _heartbeats(self, station: Station, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await station.heartbeat()

    async def _deliver(self, send: Callable[[Station], Awaitable[Any]]) -> Any:
        """Send over the current connection, waiting for one (and resending after a drop)."""
        while not self._stop.is_set():
            await self._online.wait()
            station = self._station
            if station is None:
                await asyncio.sleep(0.01)
                continue
            try:
                async with self._send_lock:
                    return await send(station)
            except ConnectionClosed:
                await asyncio.sleep(0.05)
            except TimeoutError:
                log.warning("%s: the CSMS did not answer", self.config.charge_point_id)
                return None
            except Exception as e:  # a CALLERROR from the CSMS: logged, the station goes on
                log.warning("%s: the CSMS refused a message: %s", self.config.charge_point_id, e)
                return None
        return None

    # ---- sessions ------------------------------------------------------------------------------
    async def _sessions_loop(self) -> None:
        every = self.config.session_every_s or 5.0
        while not self._stop.is_set():
            await asyncio.sleep(every)
            if not self._online.is_set() or self._installing or self._job_waits_to_install():
                continue  # no new sessions while an install is pending (L01.FR.07)
            await self._one_session()

    def _job_waits_to_install(self) -> bool:
        return self._job_status is not None and self._job_status[0] in ("InstallScheduled", "Installing")

    async def _one_session(self) -> None:
        self.sessions += 1
        number, start = self.sessions, self._meter
        self._in_session = True
        try:
            tx = await self._deliver(lambda st: st.start_session(1, "SIMTAG", start, number))
            if tx is None:
                return
            await self._deliver(lambda st: st.connector(1, "Occupied"))
            await asyncio.sleep(self.config.session_s)
            failing = self._regressed and self._since_install % self.config.regression_every == 0
            self._since_install += 1
            self._meter += 500 if failing else 7000
            meter = self._meter
            if self._station is None and self._needs_boot:  # the power went during the session
                self._cut_session = (tx, meter)
                return
            reason = "EmergencyStop" if failing else "EVDisconnected"
            await self._deliver(lambda st: st.stop_session(1, tx, meter, reason, 1))
            await self._deliver(lambda st: st.connector(1, "Available"))
        finally:
            self._in_session = False

    # ---- firmware -----------------------------------------------------------------------------
    def accept_update(self, order: UpdateOrder) -> str:
        """Answer an update request: check the certificate now (L01.FR.21/22), then start."""
        if order.certificate is not None and self.config.root_certificate is not None:
            try:
                check_certificate(order.certificate, self.config.root_certificate, now=self.now())
            except EvotaError as e:
                log.warning("%s: refused the signing certificate: %s", self.config.charge_point_id, e)
                self.history.append("refused certificate")
                self._spawn(self._deliver(lambda st: st.security_event("InvalidFirmwareSigningCertificate")))
                return "InvalidCertificate"
        answer = "Accepted"
        if self._job is not None and not self._job.done():
            if self._installing:
                return "Rejected"  # an install in progress cannot be cancelled
            self._job.cancel()
            answer = "AcceptedCanceled"
        self._job_status = None
        self._job = asyncio.ensure_future(self._update(order))
        return answer

    def trigger_firmware_status(self) -> bool:
        busy = self._job is not None and not self._job.done() and self._job_status is not None
        status, request_id = self._job_status if busy and self._job_status else ("Idle", None)
        self._spawn(self._deliver(lambda st: self._record_and_send(st, status, request_id)))
        return True

    async def _record_and_send(self, station: Station, status: str, request_id: int | None) -> None:
        self.history.append(f"{status}" + (f" #{request_id}" if request_id is not None else ""))
        await station.firmware_status(status, request_id)

    async def _status(self, status: str, request_id: int | None) -> None:
        self._job_status = (status, request_id)
        await self._deliver(lambda st: self._record_and_send(st, status, request_id))
        await asyncio.sleep(self.config.step_s)

    async def _download(self, location: str) -> bytes:
        if Fault.DOWNLOAD in self.config.faults:
            raise _DownloadError("simulated download failure")
        try:
            # No CA bundle for plain http: loading one costs more than the download here.
            async with httpx.AsyncClient(timeout=30, verify=location.startswith("https:")) as client:
                answer = await client.get(location)
        except httpx.HTTPError as e:
            raise _DownloadError(str(e)) from e
        if answer.status_code != 200 or len(answer.content) > MAX_IMAGE:
            raise _DownloadError(f"HTTP {answer.status_code}")
        return answer.content

    async def _update(self, order: UpdateOrder) -> None:
        rid = order.request_id
        await asyncio.sleep(self.config.step_s)
        tries = max(1, order.retries or 1)
        data = b""
        for attempt in range(1, tries + 1):
            await self._status("Downloading", rid)
            try:
                data = await self._download(order.location)
                break
            except _DownloadError as e:
                log.info("%s: download %d of %d failed: %s", self.config.charge_point_id, attempt, tries, e)
                if attempt == tries:
                    await self._status("DownloadFailed", rid)  # after the last try only (L01.FR.30)
                    return
                await asyncio.sleep(min(float(order.retry_interval or 1), self.config.retry_cap_s))
        await self._status("Downloaded", rid)
        if order.signature is not None and order.certificate is not None:
            if Fault.SIGNATURE in self.config.faults:
                data = data[:-1] + bytes([data[-1] ^ 0x01])
            try:
                root = self.config.root_certificate
                if root is None:  # no manufacturer root configured: trust the signer (a weaker check)
                    verify_signature(data, order.signature, order.certificate)
                else:
                    verify_firmware(data, order.signature, order.certificate, root, now=self.now())
            except EvotaError as e:
                log.warning("%s: %s", self.config.charge_point_id, e)
                await self._status("InvalidSignature", rid)
                await self._deliver(lambda st: st.security_event("InvalidFirmwareSignature"))
                return
            await self._status("SignatureVerified", rid)
        install_at = parse_ocpp_time(order.install_at)
        if self._in_session or (install_at is not None and install_at > self.now()):
            await self._status("InstallScheduled", rid)
            while self._in_session or (install_at is not None and install_at > self.now()):
                await asyncio.sleep(self.config.step_s)
        self._installing = True
        try:
            await self._status("Installing", rid)
            if self._power_cuts_left:
                self._power_cuts_left -= 1
                self.history.append("power cut")
                self._job_status = None  # the station forgets the update
                self._reboot(reason="PowerUp", abort=True)
                return
            if Fault.INSTALL in self.config.faults:
                await self._status("InstallationFailed", rid)
                return
            if Fault.VERIFICATION in self.config.faults:
                await self._status("InstallVerificationFailed", rid)
                return
            if self.security_extension:
                await self._status("InstallRebooting", rid)
            self.version = image_version(data, order.location)
            self._since_install = 0
            self._regressed = self.version != self.config.firmware_version and (
                Fault.REGRESSION in self.config.faults or REGRESSION_MARKER in data
            )
            self._after_boot = [("Installed", rid)]
            if self.security_extension:
                self._after_boot.append(("FirmwareUpdated", None))
            self._job_status = ("Installed", rid)
            self._reboot(reason="FirmwareUpdate", abort=False)
        finally:
            self._installing = False

    def drop_connection(self) -> None:
        """The network goes (no reboot): the station reconnects and carries on."""
        self.history.append("network drop")
        self._abort = True
        self._end_connection.set()

    def _reboot(self, *, reason: str, abort: bool) -> None:
        self.history.append(f"reboot ({reason})")
        self._needs_boot, self._boot_reason, self._abort = True, reason, abort
        self._online.clear()
        self._end_connection.set()
