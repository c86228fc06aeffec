"""One ISO-TP link on python-can, as both the tester and the ECU simulator open it.

A link is a CAN bus (python-can's `virtual` in one process, `socketcan` on a real or
`vcan` interface, `udp_multicast` between processes on a host), a notifier that reads it,
and a can-isotp stack with its own thread on one pair of arbitration ids. `IsoTpLink`
owns the three and closes them in reverse order, so no thread or socket outlives it.

This module does not speak UDS; `evota.agent.uds` (tester) and `evota.sim.uds_ecu` (ECU)
do, over the stack it opens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from typing import Any

import can
import isotp

__all__ = ["CanLink", "Interface", "IsoTpLink", "IsoTpParams"]


class Interface(enum.StrEnum):
    VIRTUAL = "virtual"  # python-can's in-process bus: tests and benchmarks
    SOCKETCAN = "socketcan"  # Linux: can0, or vcan0 for a virtual kernel bus
    UDP_MULTICAST = "udp_multicast"  # processes on one host, no CAN driver needed


@dataclasses.dataclass(frozen=True)
class IsoTpParams:
    """ISO-TP settings of one side (ISO 15765-2).

    `stmin` and `blocksize` are what this side asks of its peer in the flow control frames
    it sends; what the peer asks of this side is honoured, unless `override_receiver_stmin`
    (seconds) replaces it for an ECU known to lie about its STmin.
    """

    stmin: int = 0  # ms between the peer's consecutive frames (0x00-0x7F ms, 0xF1-0xF9 = 100-900 µs)
    blocksize: int = 8  # consecutive frames between flow controls; 0 = no further flow control
    tx_data_length: int = 8  # CAN frame payload: 8 on classic CAN, up to 64 on CAN FD
    can_fd: bool = False
    bitrate_switch: bool = False  # CAN FD data phase at the higher bit rate
    override_receiver_stmin: float | None = None
    rx_flowcontrol_timeout_ms: int = 1000  # ISO N_Bs
    rx_consecutive_frame_timeout_ms: int = 1000  # ISO N_Cr
    tx_padding: int | None = 0xCC  # pad short frames to the full DLC, as most ECUs expect

    def __post_init__(self) -> None:
        if self.tx_data_length > 8 and not self.can_fd:
            raise ValueError("frames longer than 8 bytes need can_fd")

    def to_isotp(self, *, blocking_send: bool) -> dict[str, Any]:
        """The parameter dict can-isotp takes (`isotp.TransportLayer`'s `params`)."""
        return {
            "stmin": self.stmin,
            "blocksize": self.blocksize,
            "tx_data_length": self.tx_data_length,
            "can_fd": self.can_fd,
            "bitrate_switch": self.bitrate_switch,
            "override_receiver_stmin": self.override_receiver_stmin,
            "rx_flowcontrol_timeout": self.rx_flowcontrol_timeout_ms,
            "rx_consecutive_frame_timeout": self.rx_consecutive_frame_timeout_ms,
            "tx_padding": self.tx_padding,
            "max_frame_size": 4095,  # never accept the 2016 escape sequence's longer frames
            "blocking_send": blocking_send,
        }


@dataclasses.dataclass(frozen=True)
class CanLink:
    """Where an ECU is: the bus and the ids. `txid` is what this side sends on."""

    interface: Interface
    channel: str  # virtual: any name; socketcan: vcan0; udp_multicast: a group such as 239.74.163.2
    txid: int
    rxid: int
    isotp: IsoTpParams = dataclasses.field(default_factory=IsoTpParams)
    extended_ids: bool = False  # 29-bit arbitration ids

    def __post_init__(self) -> None:
        limit = 0x1FFFFFFF if self.extended_ids else 0x7FF
        for name, value in (("txid", self.txid), ("rxid", self.rxid)):
            if not 0 <= value <= limit:
                raise ValueError(f"{name} 0x{value:X} does not fit a {limit.bit_length()}-bit id")
        if self.txid == self.rxid:
            raise ValueError("txid and rxid must differ")

    def reversed(self) -> CanLink:
        """The same link seen from the other end (the ECU's view of the tester's link)."""
        return dataclasses.replace(self, txid=self.rxid, rxid=self.txid)


def _open_bus(link: CanLink) -> can.BusABC:
    if link.interface is Interface.VIRTUAL:
        protocol = can.CanProtocol.CAN_FD if link.isotp.can_fd else can.CanProtocol.CAN_20
        return can.Bus(interface="virtual", channel=link.channel, protocol=protocol)
    if link.interface is Interface.UDP_MULTICAST:
        return can.Bus(interface="udp_multicast", channel=link.channel, fd=link.isotp.can_fd)
    return can.Bus(interface=str(link.interface), channel=link.channel, fd=link.isotp.can_fd)


class IsoTpLink:
    """An open bus, its notifier and an ISO-TP stack. Close it (or use `with`).

    The stack is started here unless `start` is False: udsoncan's connection starts and
    stops the stack it is given itself, and refuses one already running.
    """

    def __init__(self, link: CanLink, *, blocking_send: bool, start: bool = True) -> None:
        mode = isotp.AddressingMode.Normal_29bits if link.extended_ids else isotp.AddressingMode.Normal_11bits
        address = isotp.Address(mode, txid=link.txid, rxid=link.rxid)
        params = link.isotp.to_isotp(blocking_send=blocking_send)
        with contextlib.ExitStack() as stack:
            self.bus = _open_bus(link)
            stack.callback(self.bus.shutdown)
            self.notifier = can.Notifier(self.bus, [], timeout=0.05)
            stack.callback(self.notifier.stop)
            self.stack = isotp.NotifierBasedCanStack(self.bus, self.notifier, address=address, params=params)
            if start:
                self.stack.start()
            self._closer = stack.pop_all()
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.stack.started:
            self.stack.stop()
        self._closer.close()

    def __enter__(self) -> IsoTpLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
