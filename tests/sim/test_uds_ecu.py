"""The ECU simulator on its own: its UDS state machine refuses what a boot loader refuses,
its flash survives a cut in the erase, and it runs as a process from the command line.

The state machine is driven with raw request bytes (no bus), so each refusal is checked
against the exact negative response a tester would receive.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from evota.agent.secondary import BootHealth, Partition, SlotName
from evota.agent.uds_codec import SECURITY_LEVEL, security_key
from evota.agent.uds_records import encode_erase, encode_image
from evota.domain.fleet import EcuIdentity
from evota.security.manifest import check_public_key
from evota.sim.uds_ecu import factory_image, provision_uds_ecu
from evota.sim.uds_flash import FlashStore
from evota.sim.uds_server import ServerTiming, UdsServer

SECRET = b"sim secret"
FW, B = Partition.FIRMWARE, SlotName.B


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UdsServer]:
    provision_uds_ecu(
        tmp_path / "ecu", serial="BMS-9", ecu_type="bms", hardware_id="bms-gen2", security_secret=SECRET
    )
    srv = UdsServer(FlashStore(tmp_path / "ecu"), ServerTiming(s3=5.0))
    srv.power_on(0.0)
    yield srv
    srv.close()  # a download left open holds the slot file


def ask(srv: UdsServer, hex_request: str, now: float = 1.0) -> str:
    reply = srv.handle(bytes.fromhex(hex_request.replace(" ", "")), now)
    return reply.response.hex(" ").upper() if reply.response is not None else ""


def unlock(srv: UdsServer) -> None:
    assert ask(srv, "10 03").startswith("50 03")
    assert ask(srv, "10 02").startswith("50 02")
    seed = bytes.fromhex(ask(srv, "27 01")[6:])
    assert ask(srv, "27 02" + security_key(seed, SECRET, SECURITY_LEVEL).hex()) == "67 02"


def erase_b(srv: UdsServer) -> str:
    region = srv.store.layout[FW][B]
    return ask(srv, "31 01 FF 00" + encode_erase(region).hex())


def download_b(srv: UdsServer, size: int = 16) -> str:
    region = srv.store.layout[FW][B]
    return ask(srv, f"34 00 44 {region.address:08X} {size:08X}")


def _in_default(srv: UdsServer) -> str:
    return ask(srv, "34 00 44 00100000 00000010")


def _programming_from_default(srv: UdsServer) -> str:
    return ask(srv, "10 02")


def _erase_without_security(srv: UdsServer) -> str:
    ask(srv, "10 03")
    ask(srv, "10 02")
    return erase_b(srv)


def _download_without_erase(srv: UdsServer) -> str:
    unlock(srv)
    return download_b(srv)


def _transfer_without_download(srv: UdsServer) -> str:
    unlock(srv)
    erase_b(srv)
    return ask(srv, "36 01 AA")


def _wrong_block_counter(srv: UdsServer) -> str:
    unlock(srv)
    erase_b(srv)
    download_b(srv)
    assert ask(srv, "36 01 " + "AA" * 8) == "76 01"
    return ask(srv, "36 03 " + "AA" * 8)


def _exit_before_the_last_byte(srv: UdsServer) -> str:
    unlock(srv)
    erase_b(srv)
    download_b(srv)
    ask(srv, "36 01 " + "AA" * 8)
    return ask(srv, "37")


def _check_before_transfer_exit(srv: UdsServer) -> str:
    unlock(srv)
    erase_b(srv)
    return ask(srv, "31 01 FF 01" + encode_image(factory_image("bms-2.bin", "2", 16)[0]).hex())


def _key_without_seed(srv: UdsServer) -> str:
    ask(srv, "10 03")
    return ask(srv, "27 02 " + "00" * 16)


def _erase_the_running_slot(srv: UdsServer) -> str:
    unlock(srv)
    return ask(srv, "31 01 FF 00" + encode_erase(srv.store.layout[FW][SlotName.A]).hex())


def _erase_an_unknown_region(srv: UdsServer) -> str:
    unlock(srv)
    return ask(srv, "31 01 FF 00 00000000 00001000")


REFUSALS: dict[str, tuple[Callable[[UdsServer], str], str]] = {
    "download in the default session": (_in_default, "7F 34 7F"),
    "programming session straight from default": (_programming_from_default, "7F 10 7E"),
    "erase without security access": (_erase_without_security, "7F 31 33"),
    "download without erase": (_download_without_erase, "7F 34 22"),
    "transfer without download": (_transfer_without_download, "7F 36 24"),
    "block counter skipped": (_wrong_block_counter, "7F 36 73"),
    "transfer exit before the last byte": (_exit_before_the_last_byte, "7F 37 24"),
    "check dependencies before transfer exit": (_check_before_transfer_exit, "7F 31 24"),
    "key without a seed": (_key_without_seed, "7F 27 24"),
    "erase of the running slot": (_erase_the_running_slot, "7F 31 22"),
    "erase of a region that is no slot": (_erase_an_unknown_region, "7F 31 31"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_state_machine_refuses_a_bad_sequence(server: UdsServer, case: str) -> None:
    steps, expected = REFUSALS[case]
    assert steps(server) == expected


def test_s3_timeout_ends_the_programming_session_and_drops_the_download(server: UdsServer) -> None:
    unlock(server)
    erase_b(server)
    assert download_b(server) == "74 20 0F FF"
    server.tick(1.0 + 5.1)
    assert server.session.name == "DEFAULT"
    assert ask(server, "36 01 AA", now=6.2) == "7F 36 7F"
    assert server.store.health(FW, B) is BootHealth.EMPTY


def test_a_cut_during_erase_leaves_the_slot_empty_not_claiming_its_old_image(
    server: UdsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, data = factory_image("bms-1.9.0.bin", "1.9.0", 4096)
    store = server.store
    store.erase(FW, B)
    with store.writer(FW, B) as f:
        f.write(data)
    store.stage(FW, B, ref)
    assert FlashStore(tmp_path / "ecu").health(FW, B) is BootHealth.STAGED

    def power_cut(*args: object, **kwargs: object) -> None:
        raise OSError("power lost while erasing")

    monkeypatch.setattr(Path, "open", power_cut)  # the bytes are never destroyed
    with pytest.raises(OSError, match="power lost"):
        store.erase(FW, B)
    monkeypatch.undo()
    after = FlashStore(tmp_path / "ecu")
    assert after.health(FW, B) is BootHealth.EMPTY and after.status().partitions[FW].slots[B].image is None


def test_provisioning_returns_a_usable_key_and_refuses_an_existing_ecu(tmp_path: Path) -> None:
    key = provision_uds_ecu(
        tmp_path / "e", serial="BMS-7", ecu_type="bms", hardware_id="bms-gen2", security_secret=SECRET
    )
    check_public_key(EcuIdentity("BMS-7", "bms", "bms-gen2", key))
    status = FlashStore(tmp_path / "e").status()
    assert status.partitions[FW].slots[SlotName.A].health is BootHealth.GOOD
    assert status.partitions[FW].slots[B].health is BootHealth.EMPTY
    with pytest.raises(Exception, match="already holds an ECU"):
        provision_uds_ecu(
            tmp_path / "e", serial="BMS-8", ecu_type="bms", hardware_id="bms-gen2", security_secret=SECRET
        )


def test_command_line_provisions_serves_until_sigterm_and_refuses_another_ecus_folder(tmp_path: Path) -> None:
    base = [
        sys.executable,
        "-m",
        "evota.sim.uds_ecu",
        "--state-dir",
        str(tmp_path / "cli"),
        "--interface",
        "virtual",
    ]
    base += [
        "--channel",
        "cli-test",
        "--txid",
        "0x7E8",
        "--rxid",
        "0x7E0",
        "--ecu-type",
        "bms",
        "--hardware-id",
        "hw-1",
    ]
    proc = subprocess.Popen([*base, "--serial", "BMS-3"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        provisioned = json.loads(proc.stdout.readline())
        assert provisioned["public_key"]["keytype"] == "ed25519"
        assert "ECU BMS-3 serving on virtual:cli-test" in proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    other = subprocess.run(
        [*base, "--serial", "BMS-4"], capture_output=True, text=True, timeout=60, check=False
    )
    assert other.returncode == 2 and "holds ECU BMS-3" in other.stderr
