"""The records evota's OEM routines and DIDs carry (see the table in `evota.agent.uds`).

Pure build/parse pairs, one per record, shared by the tester and the ECU simulator. Every
parser raises ValueError on bytes that do not match its record (short, trailing data,
unknown codes): an ECU answers 0x13 to that, the tester reports a malformed answer.
Integers are big-endian, strings UTF-8 behind a one-byte length, capped so that the
largest record (the slot status) fits one ISO-TP frame.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import struct
from collections.abc import Mapping
from typing import Any

from evota.agent.secondary import (
    BootHealth,
    EcuStatus,
    ImageRef,
    Partition,
    PartitionStatus,
    SelfTestResult,
    SlotName,
    SlotStatus,
)

__all__ = [
    "MAX_SETTINGS_BYTES",
    "SlotRegion",
    "decode_activate",
    "decode_erase",
    "decode_image",
    "decode_layout",
    "decode_report_request",
    "decode_self_test",
    "decode_settings",
    "decode_status",
    "encode_activate",
    "encode_erase",
    "encode_image",
    "encode_layout",
    "encode_report_request",
    "encode_self_test",
    "encode_settings",
    "encode_status",
]

MAX_SETTINGS_BYTES = 2048
_MAX_PATH = 255
_MAX_VERSION = 64
_STATUS_FORMAT = 1


class _Reader:
    """Reads a record front to back; every read checks the bytes are there."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._at = 0

    def take(self, n: int) -> bytes:
        if self._at + n > len(self._data):
            raise ValueError(f"record too short: wanted {n} bytes at offset {self._at}")
        out = bytes(self._data[self._at : self._at + n])
        self._at += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def text(self) -> str:
        return self.take(self.u8()).decode("utf-8")

    def end(self) -> None:
        if self._at != len(self._data):
            raise ValueError(f"record has {len(self._data) - self._at} unexpected trailing bytes")


def _text(value: str, cap: int) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > cap:
        raise ValueError(f"{value[:40]!r}...: longer than {cap} bytes")
    return bytes([len(raw)]) + raw


def _decode(table: Mapping[Any, int], code: int, what: str) -> Any:
    for value, c in table.items():
        if c == code:
            return value
    raise ValueError(f"unknown {what} code 0x{code:02X}")


_PARTITIONS = {Partition.FIRMWARE: 0x01, Partition.PARAMS: 0x02}
_SLOTS = {SlotName.A: 0x00, SlotName.B: 0x01}
_HEALTH = {
    BootHealth.EMPTY: 0x00,
    BootHealth.STAGED: 0x01,
    BootHealth.TRIAL: 0x02,
    BootHealth.GOOD: 0x03,
    BootHealth.BAD: 0x04,
}


@dataclasses.dataclass(frozen=True)
class SlotRegion:
    """Where a slot lives in the ECU's flash: the address and size ERASE and RequestDownload name."""

    address: int
    size: int


def encode_erase(region: SlotRegion) -> bytes:
    """ERASE's option: the address and size of the slot, as the ECU's layout gives them."""
    return struct.pack(">II", region.address, region.size)


def decode_erase(data: bytes) -> SlotRegion:
    r = _Reader(data)
    region = SlotRegion(r.u32(), r.u32())
    r.end()
    return region


def encode_image(image: ImageRef) -> bytes:
    """What a slot holds: length, SHA-256, target path and version (CHECK_DEPENDENCIES)."""
    return (
        struct.pack(">I", image.length)
        + bytes.fromhex(image.sha256)
        + _text(image.path, _MAX_PATH)
        + _text(image.version, _MAX_VERSION)
    )


def _read_image(r: _Reader) -> ImageRef:
    length = r.u32()
    sha256 = r.take(32).hex()
    return ImageRef(r.text(), length, sha256, r.text())


def decode_image(data: bytes) -> ImageRef:
    r = _Reader(data)
    image = _read_image(r)
    r.end()
    return image


def encode_status(status: EcuStatus) -> bytes:
    """The SLOT_STATUS DID: every partition's active slot, each slot's health and image."""
    out = bytearray([_STATUS_FORMAT, _PARTITIONS[status.reported], min(status.boot_attempts, 0xFF)])
    out.append(len(status.partitions))
    for partition, p in status.partitions.items():
        out += bytes([_PARTITIONS[partition], _SLOTS[p.active]])
        for name in SlotName:
            slot = p.slots[name]
            out.append(_HEALTH[slot.health])
            if slot.health.holds_image:
                if slot.image is None:
                    raise ValueError(f"{partition}/{name} is {slot.health} but names no image")
                out += encode_image(slot.image)
    return bytes(out)


def decode_status(data: bytes, serial: str) -> EcuStatus:
    r = _Reader(data)
    if (fmt := r.u8()) != _STATUS_FORMAT:
        raise ValueError(f"slot status format {fmt} is not {_STATUS_FORMAT}")
    reported = _decode(_PARTITIONS, r.u8(), "partition")
    attempts = r.u8()
    partitions: dict[Partition, PartitionStatus] = {}
    for _ in range(r.u8()):
        partition = _decode(_PARTITIONS, r.u8(), "partition")
        active = _decode(_SLOTS, r.u8(), "slot")
        slots: dict[SlotName, SlotStatus] = {}
        for name in SlotName:
            health = _decode(_HEALTH, r.u8(), "health")
            slots[name] = SlotStatus(health, _read_image(r) if health.holds_image else None)
        if partition in partitions:
            raise ValueError(f"partition {partition} listed twice")
        partitions[partition] = PartitionStatus(active, slots)
    r.end()
    if reported not in partitions:
        raise ValueError(f"reported partition {reported} is not in the status")
    return EcuStatus(serial, partitions, reported, attempts)


def encode_layout(layout: Mapping[Partition, Mapping[SlotName, SlotRegion]]) -> bytes:
    out = bytearray([len(layout)])
    for partition, slots in layout.items():
        out.append(_PARTITIONS[partition])
        for name in SlotName:
            out += struct.pack(">II", slots[name].address, slots[name].size)
    return bytes(out)


def decode_layout(data: bytes) -> dict[Partition, dict[SlotName, SlotRegion]]:
    r = _Reader(data)
    out: dict[Partition, dict[SlotName, SlotRegion]] = {}
    for _ in range(r.u8()):
        partition = _decode(_PARTITIONS, r.u8(), "partition")
        out[partition] = {name: SlotRegion(r.u32(), r.u32()) for name in SlotName}
    r.end()
    return out


def encode_activate(slots: Mapping[Partition, SlotName]) -> bytes:
    """ACTIVATE's option: (partition, slot) pairs, in order; the last names the reported partition."""
    out = bytearray([len(slots)])
    for partition, name in slots.items():
        out += bytes([_PARTITIONS[partition], _SLOTS[name]])
    return bytes(out)


def decode_activate(data: bytes) -> dict[Partition, SlotName]:
    r = _Reader(data)
    out: dict[Partition, SlotName] = {}
    for _ in range(r.u8()):
        partition = _decode(_PARTITIONS, r.u8(), "partition")
        if partition in out:
            raise ValueError(f"partition {partition} named twice")
        out[partition] = _decode(_SLOTS, r.u8(), "slot")
    r.end()
    if not out:
        raise ValueError("activate names no slot")
    return out


def encode_self_test(result: SelfTestResult) -> bytes:
    out = bytearray([1 if result.passed else 0]) + _text(result.reason, _MAX_PATH)
    out.append(len(result.checks))
    for name, ok in result.checks.items():
        out += _text(name, _MAX_VERSION) + bytes([1 if ok else 0])
    return bytes(out)


def decode_self_test(data: bytes) -> SelfTestResult:
    r = _Reader(data)
    passed, reason = r.u8() == 1, r.text()
    checks = {r.text(): r.u8() == 1 for _ in range(r.u8())}
    r.end()
    return SelfTestResult(passed, reason, checks)


def encode_report_request(counter: int, time: dt.datetime, attacks: str) -> bytes:
    """VERSION_REPORT's option: the report counter, the time to state (UTC seconds), attacks."""
    if time.tzinfo is None:
        raise ValueError("naive datetime: the report time must be timezone-aware")
    return struct.pack(">IQ", counter, int(time.timestamp())) + _text(attacks, _MAX_PATH)


def decode_report_request(data: bytes) -> tuple[int, dt.datetime, str]:
    r = _Reader(data)
    counter, seconds = r.u32(), r.u64()
    attacks = r.text()
    r.end()
    return counter, dt.datetime.fromtimestamp(seconds, dt.UTC), attacks


def encode_settings(settings: Mapping[str, Any]) -> bytes:
    """USER_SETTINGS: a JSON object, compact and key-sorted so equal settings are equal bytes."""
    raw = json.dumps(dict(settings), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    if len(raw) > MAX_SETTINGS_BYTES:
        raise ValueError(f"user settings are {len(raw)} bytes, more than the ECU's {MAX_SETTINGS_BYTES}")
    return raw


def decode_settings(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_SETTINGS_BYTES:
        raise ValueError(f"user settings are larger than {MAX_SETTINGS_BYTES} bytes")
    try:
        value = json.loads(data.decode("utf-8")) if data else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"user settings are not JSON: {e}") from None
    if not isinstance(value, dict):
        raise ValueError("user settings are not a JSON object")
    return value
