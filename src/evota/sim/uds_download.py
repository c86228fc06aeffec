"""The simulated ECU's programming sequence: erase, download, transfer, exit, check.

`DownloadFlow` holds what a boot loader remembers between those requests (which slot was
erased, the download in progress, the slot waiting for its check) and refuses every step
taken out of order. The session and security checks are the server's
(`evota.sim.uds_server`); this module assumes them done. A session change drops the flow
(`reset`), so a tester that vanished leaves an EMPTY slot, never a half-checked one.

The block counter rule is written out here rather than taken from `evota.agent.uds_codec`,
so that a tester bug in the shared helper shows up as 0x73 instead of agreeing with itself.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import BinaryIO

from evota.agent.secondary import Partition, SlotName
from evota.agent.uds_codec import Nrc
from evota.agent.uds_records import decode_erase, decode_image
from evota.sim.uds_flash import FlashStore

__all__ = ["DownloadFlow", "Faults", "NegativeResponseError"]


class NegativeResponseError(Exception):
    """Raised inside the simulator to answer 7F <sid> <nrc>."""

    def __init__(self, nrc: Nrc) -> None:
        super().__init__(nrc.name)
        self.nrc = nrc


@dataclasses.dataclass
class Faults:
    """Misbehaviour on demand. Block numbers count the blocks of the next download, from 1."""

    self_test_failure: str | None = None  # while set, the self-test fails this check
    corrupt_block: int | None = None  # flip a byte of this block on receipt (once)
    drop_block_response: int | None = None  # write this block but send no answer (once)
    erase_pending: int = 0  # answer 7F 31 78 this many times before the erase completes (once)
    pending_interval: float = 0.05  # seconds between those answers


@dataclasses.dataclass
class _Download:
    partition: Partition
    slot: SlotName
    size: int
    writer: BinaryIO
    received: int = 0
    blocks: int = 0
    expected: int = 0x01  # ISO 14229-1: the first block's counter


class DownloadFlow:
    """The steps of one programming sequence, refused unless taken in order."""

    def __init__(
        self, store: FlashStore, max_block_length: int, faults: Faults, stats: collections.Counter[str]
    ) -> None:
        self.store = store
        self.max_block_length = max_block_length
        self.faults = faults
        self.stats = stats
        self._erased: tuple[Partition, SlotName] | None = None
        self._download: _Download | None = None
        self._downloaded: tuple[Partition, SlotName] | None = None

    def reset(self) -> None:
        """Forget everything: a session change, an S3 timeout, a reset or a power cut."""
        self._erased = self._downloaded = None
        if self._download is not None:
            self._download.writer.close()
            self._download = None

    def erase(self, option: bytes) -> None:
        region = decode_erase(option)
        found = [(p, s) for p, slots in self.store.layout.items() for s, r in slots.items() if r == region]
        if not found:
            raise NegativeResponseError(Nrc.REQUEST_OUT_OF_RANGE)
        partition, slot = found[0]
        if self.store.on_trial() or self.store.active(partition) is slot:
            raise NegativeResponseError(Nrc.CONDITIONS_NOT_CORRECT)  # the fallback or the running image
        self.reset()
        self.store.erase(partition, slot)
        self._erased = (partition, slot)
        self.stats["erases"] += 1

    def request(self, data: bytes) -> bytes:
        """RequestDownload (34): the erased slot's address, a size that fits it."""
        dfi, alfid = data[0], data[1]
        size_len, addr_len = alfid >> 4, alfid & 0x0F
        if dfi != 0x00 or not (1 <= size_len <= 4 and 1 <= addr_len <= 4):
            raise NegativeResponseError(Nrc.REQUEST_OUT_OF_RANGE)
        if len(data) != 2 + addr_len + size_len:
            raise ValueError("memory address and size do not match their format")
        address = int.from_bytes(data[2 : 2 + addr_len], "big")
        size = int.from_bytes(data[2 + addr_len :], "big")
        if self._erased is None or self._download is not None:
            raise NegativeResponseError(Nrc.CONDITIONS_NOT_CORRECT)  # erase first, one download at a time
        partition, slot = self._erased
        region = self.store.layout[partition][slot]
        if address != region.address or size > region.size:
            raise NegativeResponseError(Nrc.UPLOAD_DOWNLOAD_NOT_ACCEPTED)
        self._download = _Download(partition, slot, size, self.store.writer(partition, slot))
        self._erased = None
        return bytes([0x74, 0x20]) + self.max_block_length.to_bytes(2, "big")

    def transfer(self, data: bytes) -> bytes:
        """TransferData (36): the next block, or a repeat of the last one (acknowledged only)."""
        download = self._download
        if download is None:
            raise NegativeResponseError(Nrc.REQUEST_SEQUENCE_ERROR)
        counter, block = data[0], data[1:]
        if not block or len(block) + 2 > self.max_block_length:
            raise ValueError("a block must hold 1 to maxNumberOfBlockLength - 2 bytes")
        if download.blocks and counter == (download.expected - 1) & 0xFF:
            self.stats["repeated_blocks"] += 1  # its answer was lost: acknowledge, do not rewrite
            return bytes([0x76, counter])
        if counter != download.expected:
            raise NegativeResponseError(Nrc.WRONG_BLOCK_SEQUENCE_COUNTER)
        if download.received + len(block) > download.size:
            raise NegativeResponseError(Nrc.REQUEST_OUT_OF_RANGE)
        download.blocks += 1
        if self.faults.corrupt_block == download.blocks:
            self.faults.corrupt_block = None
            block = bytes([block[0] ^ 0xFF]) + block[1:]
        download.writer.write(block)
        download.received += len(block)
        download.expected = (counter + 1) & 0xFF  # FF wraps to 00, not to 01
        self.stats["blocks"] += 1
        return bytes([0x76, counter])

    def answer_lost(self) -> bool:
        """Whether the block just acknowledged is the one whose answer must be lost."""
        download = self._download
        if download is not None and self.faults.drop_block_response == download.blocks:
            self.faults.drop_block_response = None
            return True
        return False

    def exit(self) -> bytes:
        """RequestTransferExit (37): only once every announced byte arrived."""
        download = self._download
        if download is None or download.received != download.size:
            raise NegativeResponseError(Nrc.REQUEST_SEQUENCE_ERROR)
        download.writer.close()
        self._download = None
        self._downloaded = (download.partition, download.slot)
        return bytes([0x77])

    def check(self, option: bytes) -> None:
        """Check programming dependencies (FF01): the slot is STAGED only if length and
        SHA-256 of what it holds are those announced; otherwise it stays EMPTY."""
        image = decode_image(option)
        done, self._downloaded, self._erased = self._downloaded, None, None
        if done is None:
            raise NegativeResponseError(Nrc.REQUEST_SEQUENCE_ERROR)
        if self.store.digest(*done) != (image.length, image.sha256):
            raise NegativeResponseError(Nrc.GENERAL_PROGRAMMING_FAILURE)
        self.store.stage(*done, image)
