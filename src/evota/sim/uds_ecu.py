"""A simulated UDS ECU: the server side udsoncan lacks, on a real ISO-TP link.

`UdsEcuSimulator` puts `evota.sim.uds_server.UdsServer` (the state machine) on an ISO-TP
stack (`evota.agent.uds_link`) over its flash folder (`evota.sim.uds_flash`). It runs in
a thread for tests (`UdsEcuThread`, python-can's `virtual` bus) or as a process:

    python -m evota.sim.uds_ecu --state-dir D --interface udp_multicast \\
        --channel 239.74.163.2 --txid 0x7E8 --rxid 0x7E0 \\
        --serial BMS-1 --ecu-type bms --hardware-id bms-gen2

Ids are the ECU's own view: it answers on `--txid` and listens on `--rxid` (the tester's
txid). A folder not yet provisioned is provisioned first with a factory image in slot A
and a new Ed25519 key; the public key is printed as JSON for the vehicle's registration.
`run_uds_ecu(config, stop_event)` is the entry point a CLI command wraps.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import secrets
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from evota.agent.errors import ProvisioningError
from evota.agent.secondary import ImageRef, Partition
from evota.agent.uds_link import CanLink, Interface, IsoTpLink, IsoTpParams
from evota.domain.fleet import EcuIdentity
from evota.sim.uds_flash import FlashStore, provision_flash
from evota.sim.uds_server import Faults, ServerTiming, UdsServer

__all__ = ["UdsEcuConfig", "UdsEcuSimulator", "UdsEcuThread", "main", "provision_uds_ecu", "run_uds_ecu"]


@dataclasses.dataclass(frozen=True)
class UdsEcuConfig:
    state_dir: Path
    link: CanLink  # the ECU's view: txid = its answers, rxid = the tester's requests
    timing: ServerTiming = dataclasses.field(default_factory=ServerTiming)


def factory_image(name: str, version: str, size: int) -> tuple[ImageRef, bytes]:
    """A deterministic stand-in for an image a plant would flash: bytes and reference."""
    seed = hashlib.sha256(f"{name}:{version}".encode()).digest()
    data = (seed * (size // len(seed) + 1))[:size]
    return ImageRef(name, size, hashlib.sha256(data).hexdigest(), version), data


def provision_uds_ecu(
    state_dir: Path,
    *,
    serial: str,
    ecu_type: str,
    hardware_id: str,
    security_secret: bytes,
    factory: Mapping[Partition, tuple[ImageRef, bytes]] | None = None,
    slot_sizes: Mapping[Partition, int] | None = None,
) -> dict[str, Any]:
    """Create a simulator's state folder; return its public key for `EcuIdentity.public_key`.

    Without `factory`, slot A of each partition gets a generated image (version 1.0.0).
    """
    factory = factory or {
        Partition.FIRMWARE: factory_image(f"{ecu_type}-firmware-1.0.0.bin", "1.0.0", 16 << 10),
        Partition.PARAMS: factory_image(f"{ecu_type}-params-1.0.0.bin", "1.0.0", 1 << 10),
    }
    identity = EcuIdentity(serial, ecu_type, hardware_id)
    return provision_flash(
        state_dir, identity=identity, security_secret=security_secret, factory=factory, slot_sizes=slot_sizes
    )


class UdsEcuSimulator:
    """The flash, the server and the serving loop of one simulated ECU."""

    def __init__(self, config: UdsEcuConfig, faults: Faults | None = None) -> None:
        self.config = config
        self.store = FlashStore(config.state_dir)
        self.server = UdsServer(self.store, config.timing, faults)

    def serve(self, stop_event: threading.Event, ready: threading.Event | None = None) -> None:
        """Answer requests until `stop_event` is set. Powers the ECU on first (boot loader)."""
        self.server.power_on(time.monotonic())
        try:
            with IsoTpLink(self.config.link, blocking_send=False) as link:
                if ready is not None:
                    ready.set()
                while not stop_event.is_set():
                    request = link.stack.recv(block=True, timeout=0.05)
                    self.server.tick(time.monotonic())
                    if request is None:
                        continue
                    reply = self.server.handle(bytes(request), time.monotonic())
                    for _ in range(reply.pending):
                        link.stack.send(bytes([0x7F, request[0], 0x78]))
                        if stop_event.wait(reply.pending_interval):
                            return
                    if reply.response is not None:
                        link.stack.send(reply.response)
                    self.server.touch(time.monotonic())
        finally:
            self.server.close()


def run_uds_ecu(config: UdsEcuConfig, stop_event: threading.Event) -> None:
    """Serve the ECU in `config.state_dir` until `stop_event` is set (for `evota sim`)."""
    UdsEcuSimulator(config).serve(stop_event)


class UdsEcuThread:
    """A simulator in a thread, for tests: `with UdsEcuThread(config) as ecu: ...`.

    An exception in the thread is re-raised by `stop`, so a test cannot pass over it.
    """

    def __init__(self, config: UdsEcuConfig, faults: Faults | None = None) -> None:
        self.simulator = UdsEcuSimulator(config, faults)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"uds-ecu-{config.link.channel}", daemon=True)

    @property
    def server(self) -> UdsServer:
        return self.simulator.server

    def _run(self) -> None:
        try:
            self.simulator.serve(self._stop, self._ready)
        except BaseException as e:  # handed to stop(), which re-raises it in the test
            self._error = e
            self._ready.set()

    def start(self) -> UdsEcuThread:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            self.stop()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __enter__(self) -> UdsEcuThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evota.sim.uds_ecu", description=__doc__.split("\n")[0])
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--interface", choices=[i.value for i in Interface], default=Interface.UDP_MULTICAST.value)
    p.add_argument("--channel", required=True, help="vcan0, a multicast group, or a virtual bus name")
    p.add_argument("--txid", type=lambda s: int(s, 0), required=True, help="ECU answers (0x7E8)")
    p.add_argument("--rxid", type=lambda s: int(s, 0), required=True, help="tester requests (0x7E0)")
    p.add_argument("--serial", required=True)
    p.add_argument("--ecu-type", required=True)
    p.add_argument("--hardware-id", required=True)
    p.add_argument("--security-secret", help="hex; at provisioning only (default: random, in the folder)")
    p.add_argument("--can-fd", action="store_true", help="CAN FD frames of 64 bytes")
    p.add_argument("--stmin", type=int, default=0, help="ms the tester must leave between frames")
    p.add_argument("--blocksize", type=int, default=8)
    p.add_argument("--s3", type=float, default=5.0, help="seconds of silence that end a session")
    p.add_argument("--lockout-delay", type=float, default=10.0)
    p.add_argument("--boot-limit", type=int, default=3)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    state_dir: Path = args.state_dir
    if not (state_dir / "ecu.json").exists():
        secret = bytes.fromhex(args.security_secret) if args.security_secret else secrets.token_bytes(16)
        key = provision_uds_ecu(
            state_dir,
            serial=args.serial,
            ecu_type=args.ecu_type,
            hardware_id=args.hardware_id,
            security_secret=secret,
        )
        print(json.dumps({"provisioned": str(state_dir), "public_key": key}), flush=True)
    fd = bool(args.can_fd)
    frame = 64 if fd else 8
    params = IsoTpParams(stmin=args.stmin, blocksize=args.blocksize, tx_data_length=frame, can_fd=fd)
    link = CanLink(Interface(args.interface), args.channel, args.txid, args.rxid, params)
    timing = ServerTiming(s3=args.s3, lockout_delay=args.lockout_delay, boot_limit=args.boot_limit)
    try:
        simulator = UdsEcuSimulator(UdsEcuConfig(state_dir, link, timing))
    except ProvisioningError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    held = simulator.store.identity
    if (held.serial, held.ecu_type, held.hardware_id) != (args.serial, args.ecu_type, args.hardware_id):
        print(
            f"error: {state_dir} holds ECU {held.serial} ({held.ecu_type}, {held.hardware_id})",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    where = f"{args.interface}:{args.channel} rx 0x{args.rxid:X} tx 0x{args.txid:X}"
    print(f"ECU {held.serial} serving on {where}", flush=True)
    simulator.serve(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
