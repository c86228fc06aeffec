"""`UdsEcu`: the Secondary port over UDS (ISO 14229) on ISO-TP, flashed with udsoncan.

The primary drives a BMS, a VCMS or a thermal ECU through `evota.agent.secondary.Secondary`;
this implementation turns each move into UDS requests. The standard flash sequence of
`write_inactive`:

    10 03, 10 02            extended, then programming session (P2/P2* from the answer)
    27 01 / 27 02           seed, key = `uds_codec.security_key(seed, secret)`
    31 01 FF00 addr size    erase the inactive slot; the ECU may answer 7F 31 78 for long
    34 00 44 addr len       RequestDownload; answer gives maxNumberOfBlockLength
    36 BSC data ...         blocks of min(max, 4095) - 2 bytes; BSC 01, 02 ... FF, 00, 01
    37                      RequestTransferExit
    31 01 FF01 record       check dependencies: length, SHA-256, path, version
    10 01                   back to the default session; then the slot status is read back

with `3E 80` every `tester_present_interval` while a non-default session is held. A block
whose answer is lost is resent with the same counter (the ECU acknowledges it without
writing it twice). A transfer cut anywhere leaves the slot EMPTY, since the ECU marked it
so before erasing; the next call starts again from the erase (UDS has no resume).

evota's OEM routines (RoutineControl 31 01 <id>) and DIDs (22 / 2E <id>):

    id      kind     session, security    what
    FF00    routine  programming, yes     erase slot (address u32, size u32)
    FF01    routine  programming, yes     check programming dependencies; slot -> STAGED
    FF02    routine  extended, yes        activate slots on trial (then 11 01 ECUReset)
    FF03    routine  extended, yes        mark every TRIAL slot GOOD
    FF04    routine  extended, yes        revert: TRIAL/BAD active slots -> BAD (then 11 01)
    FF05    routine  extended, no         self-test; status record = result and checks
    FF06    routine  extended, yes        BMS state reset (SoC, SoH, balancing re-learnt)
    FF07    routine  default, no          sign a version report with the ECU's Ed25519 key
    F18C    DID r    any                  ECU serial number
    F191    DID r    any                  hardware id
    F197    DID r    any                  ECU type
    FD00    DID r    any                  slot status: active slots, health, images, boots
    FD01    DID r    any                  memory layout: address and size of every slot
    FD02    DID r/w  any / extended, yes  user settings (a JSON object, at most 2 KiB)

The records are built and parsed in `evota.agent.uds_codec`; every NRC becomes a
FlashError named after it (invalidKey, wrongBlockSequenceCounter...), silence an
EcuUnreachableError (`evota.agent.uds_client.map_uds_errors`). Every move reads the ECU's
status first, so calling it again after a cut does nothing twice, and reads it back after.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from udsoncan import MemoryLocation

from evota.agent.errors import EcuError, EcuUnreachableError, FlashError
from evota.agent.secondary import (
    BootHealth,
    EcuStatus,
    ImageRef,
    Partition,
    Progress,
    SelfTestResult,
    SlotName,
)
from evota.agent.uds_client import UdsConfig, UdsTester
from evota.agent.uds_codec import (
    FIRST_BLOCK_COUNTER,
    Did,
    Routine,
    Session,
    block_payload_size,
    next_block_counter,
)
from evota.agent.uds_records import (
    SlotRegion,
    decode_layout,
    decode_self_test,
    decode_settings,
    decode_status,
    encode_activate,
    encode_erase,
    encode_image,
    encode_report_request,
    encode_settings,
)
from evota.errors import EvotaError
from evota.security.manifest import EcuReport

__all__ = ["UdsConfig", "UdsEcu"]

T = TypeVar("T")
_ACTIVE_OK = (BootHealth.TRIAL, BootHealth.GOOD)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 16):
            digest.update(chunk)
    return digest.hexdigest()


class UdsEcu:
    """One secondary ECU reached over UDS; see the module docstring for the wire."""

    def __init__(self, config: UdsConfig) -> None:
        link = config.link
        self._tester = UdsTester(config, f"ECU 0x{link.txid:X}/0x{link.rxid:X}")
        try:
            self._serial = self._read_text(Did.ECU_SERIAL)
            self._tester.name = f"ECU {self._serial}"
            self._ecu_type = self._read_text(Did.ECU_TYPE)
            self._hardware_id = self._read_text(Did.HARDWARE_ID)
            self._layout = self._parse(Did.MEMORY_LAYOUT, decode_layout)
        except BaseException:
            self._tester.close()
            raise

    def _read_text(self, did: Did) -> str:
        return self._parse(did, lambda b: b.decode("utf-8"))

    def _parse(self, did: Did, parse: Callable[[bytes], T]) -> T:
        data = self._tester.read(did)
        try:
            return parse(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise EcuError(f"{self._tester.name}: DID 0x{int(did):04X} is malformed: {e}") from e

    @property
    def serial(self) -> str:
        return self._serial

    @property
    def ecu_type(self) -> str:
        return self._ecu_type

    @property
    def hardware_id(self) -> str:
        return self._hardware_id

    def status(self) -> EcuStatus:
        return self._parse(Did.SLOT_STATUS, lambda b: decode_status(b, self._serial))

    def write_inactive(
        self, partition: Partition, image: ImageRef, source: Path, *, progress: Progress | None = None
    ) -> None:
        before = self.status()
        if before.on_trial:
            raise FlashError(f"{self.serial}: refused to write while a partition is on trial")
        target = before.partitions[partition].inactive
        slot = before.partitions[partition].slots[target]
        if slot.health is BootHealth.STAGED and slot.image == image:
            return
        region = self._layout[partition][target]
        # Checked before the erase: a source that could never verify must not cost a slot.
        if source.stat().st_size != image.length or _sha256_of(source) != image.sha256:
            raise FlashError(f"{self.serial}: {source} does not match {image.path} (length or SHA-256)")
        if image.length > region.size:
            raise FlashError(
                f"{self.serial}: {image.path} ({image.length} B) exceeds its {region.size} B slot"
            )
        with self._tester.held(Session.EXTENDED, Session.PROGRAMMING):
            self._tester.unlock()
            self._tester.routine(Routine.ERASE, encode_erase(region), long=True)
            self._download(region, image, source, progress)
            self._tester.routine(Routine.CHECK_DEPENDENCIES, encode_image(image))
        after = self.status().partitions[partition].slots[target]
        if after.health is not BootHealth.STAGED or after.image != image:
            raise FlashError(f"{self.serial}: {partition}/{target} reads back {after.health}, not STAGED")

    def _download(self, region: SlotRegion, image: ImageRef, source: Path, progress: Progress | None) -> None:
        location = MemoryLocation(region.address, image.length, address_format=32, memorysize_format=32)
        response = self._tester.call("RequestDownload", lambda c: c.request_download(location))
        if response is None:
            raise EcuError(f"{self.serial}: RequestDownload returned nothing")
        try:
            payload = block_payload_size(response.service_data.max_length)
        except ValueError as e:
            raise FlashError(f"{self.serial}: {e}") from e
        counter, sent = FIRST_BLOCK_COUNTER, 0
        with source.open("rb") as f:
            while block := f.read(payload):
                self._transfer(counter, block)
                sent += len(block)
                if progress is not None:
                    progress(sent, image.length)
                counter = next_block_counter(counter)
        self._tester.call("RequestTransferExit", lambda c: c.request_transfer_exit())

    def _transfer(self, counter: int, block: bytes) -> None:
        """TransferData, resent with the same counter while its answer is lost."""
        for attempt in range(self._tester.config.transfer_retries + 1):
            try:
                self._tester.call(f"TransferData 0x{counter:02X}", lambda c: c.transfer_data(counter, block))
                return
            except EcuUnreachableError:
                if self._tester.closed or attempt == self._tester.config.transfer_retries:
                    raise

    def activate(self, slots: Mapping[Partition, SlotName]) -> None:
        if not slots:
            return
        before = self.status()
        if all(
            before.partitions[p].active is s and before.partitions[p].slots[s].health in _ACTIVE_OK
            for p, s in slots.items()
        ):
            return  # already running on them: a second reset would spend a boot attempt
        with self._tester.held(Session.EXTENDED):
            self._tester.unlock()
            self._tester.routine(Routine.ACTIVATE, encode_activate(slots))
            self._tester.reset()
        after = self._await_boot()
        for p, s in slots.items():
            now = after.partitions[p]
            if now.active is not s or now.slots[s].health not in _ACTIVE_OK:
                raise FlashError(f"{self.serial}: after activate, {p} runs {now.active}, not {s}")

    def self_test(self) -> SelfTestResult:
        with self._tester.held(Session.EXTENDED):
            record = self._tester.routine(Routine.SELF_TEST, long=True)
        try:
            return decode_self_test(record)
        except (ValueError, UnicodeDecodeError) as e:
            raise EcuError(f"{self.serial}: malformed self-test result: {e}") from e

    def mark_good(self) -> None:
        before = self.status()
        trial = [(p, s.active) for p, s in before.partitions.items() if s.on_trial]
        if not trial:
            return
        with self._tester.held(Session.EXTENDED):
            self._tester.unlock()
            self._tester.routine(Routine.MARK_GOOD)
        after = self.status()
        for p, name in trial:
            health = after.partitions[p].slots[name].health
            if health is not BootHealth.GOOD:
                raise FlashError(f"{self.serial}: {p}/{name} reads back {health} after mark_good")

    def revert(self) -> None:
        before = self.status()
        undo = [
            (p, s.active)
            for p, s in before.partitions.items()
            if s.slots[s.active].health in (BootHealth.TRIAL, BootHealth.BAD)
        ]
        if not undo:
            return
        with self._tester.held(Session.EXTENDED):
            self._tester.unlock()
            self._tester.routine(Routine.REVERT)
            self._tester.reset()
        after = self._await_boot()
        for p, old in undo:
            now = after.partitions[p]
            health = now.slots[now.active].health
            if now.active is old or health is not BootHealth.GOOD:
                raise FlashError(f"{self.serial}: after revert, {p} runs {now.active} ({health})")

    def _await_boot(self) -> EcuStatus:
        """The status once the ECU answers again after ECUReset (it may take a while to boot)."""
        deadline = time.monotonic() + self._tester.config.boot_timeout
        while True:
            try:
                return self.status()
            except EcuUnreachableError:
                if time.monotonic() >= deadline or self._tester.closed:
                    raise
                time.sleep(0.05)

    def reset_state(self) -> None:
        with self._tester.held(Session.EXTENDED):
            self._tester.unlock()
            self._tester.routine(Routine.RESET_STATE, long=True)

    def user_settings(self) -> dict[str, Any]:
        return self._parse(Did.USER_SETTINGS, decode_settings)

    def write_user_settings(self, settings: Mapping[str, Any]) -> None:
        """Replace the settings and read them back; ValueError if they cannot be encoded
        or exceed the ECU's 2 KiB."""
        data = encode_settings(settings)
        with self._tester.held(Session.EXTENDED):
            self._tester.unlock()
            self._tester.write(Did.USER_SETTINGS, data)
        if encode_settings(self.user_settings()) != data:
            raise FlashError(f"{self.serial}: user settings read back differ from those written")

    def version_report(self, *, counter: int, time: dt.datetime, attacks: str = "") -> dict[str, Any]:
        """The report the ECU signed; checked to be for this ECU and this counter, and to
        name what the ECU's status says it runs (its signature is the server's to check)."""
        record = self._tester.routine(Routine.VERSION_REPORT, encode_report_request(counter, time, attacks))
        try:
            envelope = json.loads(record)
            if not isinstance(envelope, dict):
                raise ValueError("not a JSON object")
            report = EcuReport.from_signed(envelope["signed"])
        except (ValueError, KeyError, TypeError, EvotaError) as e:
            raise EcuError(f"{self.serial}: malformed version report: {e}") from e
        if (report.ecu_serial, report.counter) != (self.serial, counter):
            raise EcuError(f"{self.serial}: report is for {report.ecu_serial}, counter {report.counter}")
        installed = self.status().installed
        named = (report.installed_path, report.length, report.hashes.get("sha256"))
        if installed is None or named != (installed.path, installed.length, installed.sha256):
            raise EcuError(f"{self.serial}: report names {report.installed_path}, not the running image")
        return envelope

    def close(self) -> None:
        self._tester.close()

    def __enter__(self) -> UdsEcu:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
