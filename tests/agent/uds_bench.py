"""A UDS test bench (conftest.py registers its `bench` fixture):
 a provisioned ECU simulator and testers on python-can's virtual bus.

Each test gets its own virtual channel, so simulators of other tests never answer. The
bench starts simulators from one state folder (a restart keeps the flash, as a power cycle
does) and closes every tester and simulator it made, re-raising a simulator's crash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evota.agent.secondary import ImageRef, Partition
from evota.agent.uds import UdsConfig, UdsEcu
from evota.agent.uds_link import CanLink, Interface, IsoTpParams
from evota.sim.uds_ecu import UdsEcuConfig, UdsEcuThread, provision_uds_ecu
from evota.sim.uds_server import Faults, ServerTiming

SECRET = b"BMS-1 seed/key secret"
_channels = itertools.count()

# Fast on the virtual bus: no STmin, one flow control per message; short ISO-TP timeouts
# so a silent peer is noticed in half a second.
FAST = IsoTpParams(stmin=0, blocksize=0, rx_flowcontrol_timeout_ms=500, rx_consecutive_frame_timeout_ms=500)


def image_file(folder: Path, name: str, size: int, version: str = "2.0.0") -> tuple[ImageRef, Path]:
    data = os.urandom(size)
    path = folder / name
    path.write_bytes(data)
    return ImageRef(name, size, hashlib.sha256(data).hexdigest(), version), path


@dataclasses.dataclass
class Bench:
    folder: Path
    link: CanLink  # the tester's view
    public_key: dict[str, Any]
    timing: ServerTiming
    faults: Faults
    images: Path
    _open: list[Any] = dataclasses.field(default_factory=list)

    def sim(self, **timing: Any) -> UdsEcuThread:
        """Start a simulator on the state folder (a power-on: its boot loader runs)."""
        if timing:
            self.timing = dataclasses.replace(self.timing, **timing)
        sim = UdsEcuThread(UdsEcuConfig(self.folder, self.link.reversed(), self.timing), self.faults).start()
        self._open.append(sim)
        return sim

    def tester(self, **config: Any) -> UdsEcu:
        config.setdefault("security_secret", SECRET)
        ecu = UdsEcu(UdsConfig(self.link, **config))
        self._open.append(ecu)
        return ecu

    def image(self, size: int, name: str = "bms-2.0.0.bin", version: str = "2.0.0") -> tuple[ImageRef, Path]:
        return image_file(self.images, name, size, version)

    def close(self) -> None:
        for thing in reversed(self._open):
            if isinstance(thing, UdsEcu):
                thing.close()
            else:
                thing.stop()


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    folder = tmp_path / "ecu"
    public_key = provision_uds_ecu(
        folder,
        serial="BMS-1",
        ecu_type="bms",
        hardware_id="bms-gen2",
        security_secret=SECRET,
        slot_sizes={Partition.FIRMWARE: 512 << 10},
    )
    link = CanLink(Interface.VIRTUAL, f"uds-test-{os.getpid()}-{next(_channels)}", 0x7E0, 0x7E8, FAST)
    images = tmp_path / "images"
    images.mkdir()
    b = Bench(folder, link, public_key, ServerTiming(), Faults(), images)
    try:
        yield b
    finally:
        b.close()
