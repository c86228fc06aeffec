"""What a simulated charger is told: who it is, where the CSMS is, how it behaves and fails.

`image_version` is how the simulator learns the version an image carries (real stations read
it from the image's own header).
"""

from __future__ import annotations

import dataclasses
import enum
import re

from evota.domain.chargers import Protocol

__all__ = ["MAX_IMAGE", "REGRESSION_MARKER", "Fault", "SimConfig", "image_version"]

REGRESSION_MARKER = b"evota-sim:regression"
_VERSION_LINE = re.compile(rb"evota-sim:version=([A-Za-z0-9._+~-]{1,50})")
_VERSION_NAME = re.compile(r"(\d+(?:\.\d+)+(?:[-+~][A-Za-z0-9.]+)?)")
MAX_IMAGE = 64 * 1024 * 1024


class Fault(enum.StrEnum):
    DOWNLOAD = "download"
    SIGNATURE = "signature"
    INSTALL = "install"
    VERIFICATION = "verification"
    POWER_LOSS = "power-loss"
    REGRESSION = "regression"


@dataclasses.dataclass(frozen=True)
class SimConfig:
    charge_point_id: str
    csms_url: str  # ws://host:port/ocpp (the id is appended unless the URL ends with it)
    password: str | None = None
    protocol: Protocol = Protocol.V201
    vendor: str = "Acme"
    model: str = "AC22"
    firmware_version: str = "1.0.0"
    connectors: int = 1
    security_extension: bool = True  # 1.6 only: SignedUpdateFirmware instead of UpdateFirmware
    root_certificate: bytes | None = None  # the ManufacturerRootCertificate; None: trust the signer
    faults: frozenset[Fault] = frozenset()
    session_every_s: float | None = 5.0  # None: no sessions
    session_s: float = 1.0
    regression_every: int = 2
    heartbeat_s: float | None = None  # None: as the CSMS says
    reboot_s: float = 0.5
    reconnect_s: float = 1.0
    step_s: float = 0.05  # the pause between firmware steps
    retry_cap_s: float = 0.2  # a retry interval longer than this is shortened (simulation speed)

    @property
    def url(self) -> str:
        base = self.csms_url.rstrip("/")
        return base if base.endswith(f"/{self.charge_point_id}") else f"{base}/{self.charge_point_id}"


def image_version(data: bytes, location: str) -> str:
    """The version a firmware image carries (see the module docstring)."""
    found = _VERSION_LINE.search(data[:65536])
    if found:
        return found.group(1).decode()
    name = location.rsplit("/", 1)[-1]
    match = _VERSION_NAME.search(name)
    return match.group(1).rstrip(".") if match else name[:50]
