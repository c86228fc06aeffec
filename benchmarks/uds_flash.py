"""What UDS flashing costs on top of ISO-TP, measured against a bare transfer in the same run.

    .venv/bin/python benchmarks/uds_flash.py [--kib 256] [--rounds 7]

For classic CAN (8-byte frames) and CAN FD (64-byte frames) on python-can's `virtual`
bus (STmin 0, block size 0, in one process):

1. UDS: `UdsEcu.write_inactive` of a fresh image into the simulator (`evota.sim.uds_ecu`),
   everything the primary waits for: status read, 10 03 / 10 02, seed/key, erase,
   RequestDownload, TransferData blocks of 4093 bytes, RequestTransferExit, the ECU's
   SHA-256 check, 10 01, and the read-back of the slot.
2. Baseline: the same bytes as bare ISO-TP messages of the same 4093 bytes, one in flight
   at a time (the sender waits for each to be sent, as a UDS tester waits for an answer),
   read by a second stack on the same bus. No UDS, no file, no hash.

The virtual bus has no bit timing: absolute figures say what Python costs, not what a CAN
bus would (31 kB/s at most on classic CAN at 500 kbit/s, see docs/uds.md). Read the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from evota.agent.secondary import ImageRef, Partition
from evota.agent.uds import UdsConfig, UdsEcu
from evota.agent.uds_link import CanLink, Interface, IsoTpLink, IsoTpParams
from evota.sim.uds_ecu import UdsEcuConfig, UdsEcuThread, provision_uds_ecu

SECRET = b"benchmark secret"
BLOCK = 4093  # what the simulator's maxNumberOfBlockLength of 4095 leaves for image bytes


def params(fd: bool) -> IsoTpParams:
    return IsoTpParams(stmin=0, blocksize=0, tx_data_length=64 if fd else 8, can_fd=fd)


def measure(base: Path, fd: bool, size: int, rounds: int) -> tuple[list[float], list[float]]:
    """UDS and bare rounds interleaved, so both see the same load from the rest of the machine."""
    folder = base / f"ecu-{int(fd)}"
    provision_uds_ecu(
        folder,
        serial="BMS-1",
        ecu_type="bms",
        hardware_id="bms-gen2",
        security_secret=SECRET,
        slot_sizes={Partition.FIRMWARE: max(size, 1 << 20)},
    )
    link = CanLink(Interface.VIRTUAL, f"bench-uds-{os.getpid()}-{int(fd)}", 0x7E0, 0x7E8, params(fd))
    bare = dataclasses.replace(link, channel=f"bench-bare-{os.getpid()}-{int(fd)}")
    payload = os.urandom(size)
    uds_times, bare_times = [], []
    with contextlib.ExitStack() as stack:
        stack.enter_context(UdsEcuThread(UdsEcuConfig(folder, link.reversed())))
        ecu = stack.enter_context(UdsEcu(UdsConfig(link, SECRET)))
        tx = stack.enter_context(IsoTpLink(bare, blocking_send=True))
        rx = stack.enter_context(IsoTpLink(bare.reversed(), blocking_send=False))
        for r in range(rounds):
            data = os.urandom(size)  # a new image each round: a staged one is not rewritten
            path = base / f"image-{int(fd)}-{r}.bin"
            path.write_bytes(data)
            image = ImageRef(path.name, size, hashlib.sha256(data).hexdigest(), f"2.0.{r}")
            start = time.perf_counter()
            ecu.write_inactive(Partition.FIRMWARE, image, path)
            uds_times.append(time.perf_counter() - start)

            start = time.perf_counter()
            for offset in range(0, size, BLOCK):
                chunk = payload[offset : offset + BLOCK]
                tx.stack.send(chunk)
                if rx.stack.recv(block=True, timeout=5) != chunk:
                    raise RuntimeError("the bare transfer lost a message")
            bare_times.append(time.perf_counter() - start)
    return uds_times, bare_times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kib", type=int, default=256, help="image size in KiB")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    size = args.kib << 10
    print(f"{args.kib} KiB on python-can's virtual bus, STmin 0, block size 0, median of {args.rounds}")
    print(f"{'frames':<14}{'UDS write_inactive':>22}{'bare ISO-TP':>16}{'UDS / bare':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for fd, name in ((False, "CAN, 8 B"), (True, "CAN FD, 64 B")):
            uds_times, bare_times = measure(Path(tmp), fd, size, args.rounds)
            uds, bare = statistics.median(uds_times), statistics.median(bare_times)
            uds_rate, bare_rate = args.kib / uds, args.kib / bare
            line = f"{uds_rate:8.0f} KiB/s ({uds:.2f} s)"
            print(f"{name:<14}{line:>22}{bare_rate:>10.0f} KiB/s{uds_rate / bare_rate:>12.2f}")


if __name__ == "__main__":
    main()
