"""UdsEcu against the ECU simulator over ISO-TP on python-can's virtual bus.

Each test drives the Secondary port as the primary would and checks what the ECU's own
status says afterwards (never what the tester believes), including after the tester or
the simulator died half-way through a transfer.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time

import pytest
from securesystemslib.signer import CryptoSigner

from evota.agent.errors import EcuUnreachableError, FlashError
from evota.agent.secondary import BootHealth, Partition, SlotName
from evota.agent.uds_codec import FIRST_BLOCK_COUNTER, block_payload_size, next_block_counter
from evota.domain.fleet import EcuIdentity, VehicleIdentity
from evota.security.manifest import sign_vehicle_manifest, verify_vehicle_manifest
from tests.agent.uds_bench import Bench

FW, PARAMS, A, B = Partition.FIRMWARE, Partition.PARAMS, SlotName.A, SlotName.B
NOW = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)


def test_flash_256_kib_end_to_end_and_the_signed_report_verifies(bench: Bench) -> None:
    sim = bench.sim()
    ecu = bench.tester()
    assert (ecu.serial, ecu.ecu_type, ecu.hardware_id) == ("BMS-1", "bms", "bms-gen2")
    factory = ecu.status().partitions[FW].running
    image, path = bench.image(256 << 10)
    seen: list[tuple[int, int]] = []
    ecu.write_inactive(FW, image, path, progress=lambda done, total: seen.append((done, total)))

    staged = ecu.status().partitions[FW]
    assert (staged.active, staged.slots[B].health, staged.slots[B].image) == (A, BootHealth.STAGED, image)
    assert seen[-1] == (image.length, image.length) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    # maxNumberOfBlockLength 4095 counts the 0x36 request: 4093 bytes of image per block.
    assert sim.server.stats["blocks"] == math.ceil(image.length / 4093) == len(seen)

    ecu.activate({FW: B})
    trial = ecu.status()
    assert (trial.partitions[FW].active, trial.partitions[FW].slots[B].health) == (B, BootHealth.TRIAL)
    assert trial.boot_attempts == 1 and trial.partitions[FW].slots[A].health is BootHealth.GOOD
    assert ecu.self_test().passed
    ecu.mark_good()
    done = ecu.status()
    assert done.partitions[FW].slots[B].health is BootHealth.GOOD and not done.on_trial
    assert done.installed == image and factory is not None and factory != image

    report = ecu.version_report(counter=7, time=NOW)
    primary = CryptoSigner.generate_ed25519()
    vehicle = VehicleIdentity(
        "WVWZZZ1JZ3W386752",
        "GW-1",
        (
            EcuIdentity(
                "GW-1",
                "gateway",
                "gw-tcu4",
                {"keyid": primary.public_key.keyid, **primary.public_key.to_dict()},
            ),
            EcuIdentity("BMS-1", "bms", "bms-gen2", bench.public_key),
        ),
    )
    manifest = sign_vehicle_manifest(
        vin=vehicle.vin, primary_serial="GW-1", reports={"BMS-1": report}, time=NOW, counter=1, signer=primary
    )
    verified = verify_vehicle_manifest(manifest, vehicle, last=None, now=NOW)
    bms = verified.reports["BMS-1"]
    assert (bms.installed_path, bms.length, bms.hashes["sha256"], bms.counter) == (
        image.path,
        image.length,
        image.sha256,
        7,
    )


def test_block_counter_starts_at_01_and_wraps_from_ff_to_00() -> None:
    assert (FIRST_BLOCK_COUNTER, next_block_counter(0x01), next_block_counter(0xFF)) == (0x01, 0x02, 0x00)


@pytest.mark.parametrize(("maximum", "payload"), [(4095, 4093), (0x2000, 4093), (0x0802, 2048), (3, 1)])
def test_block_payload_is_max_number_of_block_length_minus_two_capped_at_4095(
    maximum: int, payload: int
) -> None:
    assert block_payload_size(maximum) == payload


def test_a_small_max_block_length_is_honoured_and_the_counter_wraps_past_0xff(bench: Bench) -> None:
    # 66 bytes per request = 64 of image: 300 blocks, so the counter runs 01..FF, 00, 01..2C.
    sim = bench.sim(max_block_length=66)
    ecu = bench.tester()
    image, path = bench.image(300 * 64)
    ecu.write_inactive(FW, image, path)
    assert sim.server.stats["blocks"] == 300
    assert ecu.status().partitions[FW].slots[B].image == image


def test_wrong_security_key_is_refused_and_the_slot_is_unchanged(bench: Bench) -> None:
    sim = bench.sim()
    intruder = bench.tester(security_secret=b"a guessed secret")
    image, path = bench.image(8 << 10)
    before = intruder.status()
    with pytest.raises(FlashError, match=r"invalidKey \(0x35\)"):
        intruder.write_inactive(FW, image, path)
    assert intruder.status() == before and sim.server.stats["erases"] == 0
    bench.tester().write_inactive(FW, image, path)
    assert intruder.status().partitions[FW].slots[B].health is BootHealth.STAGED


def test_attempts_exhausted_lock_out_even_the_right_key_until_the_delay_passed(bench: Bench) -> None:
    bench.sim(lockout_delay=0.5, max_attempts=3)
    intruder = bench.tester(security_secret=b"a guessed secret")
    image, path = bench.image(8 << 10)
    for _ in range(2):
        with pytest.raises(FlashError, match="invalidKey"):
            intruder.write_inactive(FW, image, path)
    with pytest.raises(FlashError, match=r"exceededNumberOfAttempts \(0x36\)"):
        intruder.write_inactive(FW, image, path)
    ecu = bench.tester()
    with pytest.raises(FlashError, match=r"requiredTimeDelayNotExpired \(0x37\)"):
        ecu.write_inactive(FW, image, path)
    time.sleep(0.6)
    ecu.write_inactive(FW, image, path)
    assert ecu.status().partitions[FW].slots[B].image == image


def test_corrupted_block_fails_the_hash_check_and_leaves_the_active_slot_good(bench: Bench) -> None:
    bench.faults.corrupt_block = 10
    bench.sim()
    ecu = bench.tester()
    image, path = bench.image(64 << 10)
    running = ecu.status().partitions[FW].running
    with pytest.raises(FlashError, match=r"generalProgrammingFailure \(0x72\)"):
        ecu.write_inactive(FW, image, path)
    fw = ecu.status().partitions[FW]
    assert fw.slots[B].health is BootHealth.EMPTY and fw.slots[B].image is None
    assert (fw.active, fw.slots[A].health, fw.running) == (A, BootHealth.GOOD, running)
    ecu.write_inactive(FW, image, path)  # the fault was one block: the retry goes through
    assert ecu.status().partitions[FW].slots[B].image == image


def test_tester_closed_mid_transfer_leaves_slot_empty_and_the_next_write_restarts_from_erase(
    bench: Bench,
) -> None:
    sim = bench.sim(s3=0.4)
    ecu = bench.tester()
    image, path = bench.image(128 << 10)

    def die(done: int, total: int) -> None:
        if done > total // 2:
            ecu.close()

    with pytest.raises(EcuUnreachableError, match="closed"):
        ecu.write_inactive(FW, image, path, progress=die)
    deadline = time.monotonic() + 3
    while sim.server.stats["s3_timeouts"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.server.stats["s3_timeouts"] == 1  # the ECU gave up the programming session by itself
    again = bench.tester()
    fw = again.status().partitions[FW]
    assert (fw.active, fw.slots[A].health, fw.slots[B].health) == (A, BootHealth.GOOD, BootHealth.EMPTY)
    again.write_inactive(FW, image, path)
    assert again.status().partitions[FW].slots[B].image == image and sim.server.stats["erases"] == 2


def test_simulator_restarted_mid_transfer_keeps_its_flash_and_the_write_restarts(bench: Bench) -> None:
    sim = bench.sim()
    ecu = bench.tester(p2_timeout=0.3, transfer_retries=1)
    old, old_path = bench.image(128 << 10, "bms-1.9.0.bin", "1.9.0")
    ecu.write_inactive(FW, old, old_path)  # slot B holds 1.9.0, STAGED: the erase must forget it
    image, path = bench.image(128 << 10)

    cut = threading.Event()

    def power_cut(done: int, total: int) -> None:
        if done > total // 3 and not cut.is_set():
            cut.set()
            sim.stop()

    with pytest.raises(EcuUnreachableError):
        ecu.write_inactive(FW, image, path, progress=power_cut)
    assert 0 < (bench.folder / "firmware-b.bin").stat().st_size < image.length  # half written
    restarted = bench.sim()
    fw = ecu.status().partitions[FW]
    assert (fw.active, fw.slots[A].health, fw.slots[B].health) == (A, BootHealth.GOOD, BootHealth.EMPTY)
    ecu.write_inactive(FW, image, path)
    assert ecu.status().partitions[FW].slots[B].image == image
    assert restarted.server.stats["erases"] == 1


def test_a_lost_response_is_resent_with_the_same_counter_and_not_written_twice(bench: Bench) -> None:
    bench.faults.drop_block_response = 5
    sim = bench.sim()
    ecu = bench.tester(p2_timeout=0.3)
    image, path = bench.image(64 << 10)
    ecu.write_inactive(FW, image, path)  # the ECU's hash check passes only if block 5 is there once
    assert sim.server.stats["repeated_blocks"] == 1
    assert ecu.status().partitions[FW].slots[B].image == image


def test_erase_answering_response_pending_past_the_request_timeout_is_waited_for_under_p2_star(
    bench: Bench,
) -> None:
    # 4 x 0.4 s of 7F 31 78: past the 0.5 s request timeout, and each gap past the tester's own
    # 0.2 s P2*, but inside the 2 s P2* the ECU announced in its session answer.
    bench.faults.erase_pending, bench.faults.pending_interval = 4, 0.4
    bench.sim(p2_star_ms=2000)
    ecu = bench.tester(request_timeout=0.5, p2_star_timeout=0.2)
    image, path = bench.image(8 << 10)
    ecu.write_inactive(FW, image, path)
    assert ecu.status().partitions[FW].slots[B].image == image


def test_an_erase_silent_for_longer_than_p2_star_is_unreachable(bench: Bench) -> None:
    bench.faults.erase_pending, bench.faults.pending_interval = 2, 0.8
    bench.sim(p2_star_ms=300)
    ecu = bench.tester(p2_star_timeout=0.3)
    image, path = bench.image(8 << 10)
    with pytest.raises(EcuUnreachableError, match=r"0xFF00 \(erase\): no answer"):
        ecu.write_inactive(FW, image, path)


def test_tester_present_keeps_the_programming_session_through_a_slow_primary(bench: Bench) -> None:
    sim = bench.sim(s3=0.4)
    image, path = bench.image(32 << 10)
    slow = threading.Event()

    def pause(done: int, total: int) -> None:
        if not slow.is_set():
            slow.set()
            time.sleep(0.8)  # twice S3: only 3E 80 keeps the session

    bench.tester(tester_present_interval=0.1).write_inactive(FW, image, path, progress=pause)
    assert sim.server.stats["s3_timeouts"] == 0
    silent = bench.tester(tester_present_interval=None)
    slow.clear()
    other, other_path = bench.image(32 << 10, "bms-2.0.1.bin", "2.0.1")
    with pytest.raises(FlashError, match="serviceNotSupportedInActiveSession"):
        silent.write_inactive(FW, other, other_path, progress=pause)
    assert sim.server.stats["s3_timeouts"] == 1


def test_revert_after_a_failing_self_test_boots_the_good_slot(bench: Bench) -> None:
    sim = bench.sim()
    ecu = bench.tester()
    factory = ecu.status().installed
    image, path = bench.image(16 << 10)
    ecu.write_inactive(FW, image, path)
    ecu.activate({FW: B})
    bench.faults.self_test_failure = "cell voltages plausible"
    result = ecu.self_test()
    assert not result.passed and result.reason == "cell voltages plausible"
    assert result.checks["cell voltages plausible"] is False and result.checks["contactors answer"] is True
    ecu.revert()
    fw = ecu.status().partitions[FW]
    assert (fw.active, fw.slots[A].health, fw.slots[B].health) == (A, BootHealth.GOOD, BootHealth.BAD)
    assert ecu.status().installed == factory
    assert ecu.version_report(counter=2, time=NOW)["signed"]["installed_image"]["filepath"] == factory.path
    resets = sim.server.stats["resets"]
    ecu.revert()  # nothing on trial: no reset
    assert sim.server.stats["resets"] == resets


def test_boot_loader_falls_back_to_the_good_slot_past_the_boot_limit(bench: Bench) -> None:
    sim = bench.sim(boot_limit=3)
    ecu = bench.tester()
    image, path = bench.image(16 << 10)
    ecu.write_inactive(FW, image, path)
    ecu.activate({FW: B})  # boot 1 on trial
    for boots in (2, 3):
        sim.stop()  # power cycles that never reach mark_good
        sim = bench.sim()
        assert ecu.status().boot_attempts == boots
    for _ in range(3):  # the 4th boot falls back; later ones never use up the GOOD slot
        sim.stop()
        sim = bench.sim()
        fw = ecu.status().partitions[FW]
        assert (fw.active, fw.slots[A].health, fw.slots[B].health) == (A, BootHealth.GOOD, BootHealth.BAD)
        assert ecu.status().boot_attempts == 0


def test_write_is_refused_while_a_partition_is_on_trial(bench: Bench) -> None:
    bench.sim()
    ecu = bench.tester()
    image, path = bench.image(16 << 10)
    ecu.write_inactive(FW, image, path)
    ecu.activate({FW: B})
    params, params_path = bench.image(2 << 10, "bms-params-2.0.0.bin")
    with pytest.raises(FlashError, match="on trial"):
        ecu.write_inactive(PARAMS, params, params_path)


def test_params_partition_is_written_activated_and_reported(bench: Bench) -> None:
    bench.sim()
    ecu = bench.tester()
    params, path = bench.image(4 << 10, "bms-params-2.0.0.bin")
    ecu.write_inactive(PARAMS, params, path)
    ecu.activate({PARAMS: B})
    status = ecu.status()
    assert status.reported is PARAMS and status.installed == params and status.on_trial
    ecu.mark_good()
    assert ecu.status().partitions[PARAMS].slots[B].health is BootHealth.GOOD
    assert ecu.status().partitions[FW].active is A  # firmware untouched


def test_user_settings_round_trip_and_survive_a_power_cycle(bench: Bench) -> None:
    sim = bench.sim()
    ecu = bench.tester()
    assert ecu.user_settings() == {}
    settings = {"charge_limit_pct": 80, "departure": "07:30", "preconditioning": True}
    ecu.write_user_settings(settings)
    assert ecu.user_settings() == settings
    sim.stop()
    bench.sim()
    assert ecu.user_settings() == settings
    with pytest.raises(ValueError, match="more than the ECU's"):
        ecu.write_user_settings({"blob": "x" * 4000})


def test_every_move_called_twice_does_its_work_once(bench: Bench) -> None:
    sim = bench.sim()
    ecu = bench.tester()
    image, path = bench.image(16 << 10)
    for _ in range(2):
        ecu.write_inactive(FW, image, path)
    assert sim.server.stats["erases"] == 1
    for _ in range(2):
        ecu.activate({FW: B})
    assert sim.server.stats["resets"] == 1 and ecu.status().boot_attempts == 1
    for _ in range(2):
        ecu.mark_good()
    assert ecu.status().partitions[FW].slots[B].health is BootHealth.GOOD
    ecu.activate({FW: B})  # already running on a GOOD slot
    ecu.revert()  # nothing on trial
    assert sim.server.stats["resets"] == 1
    for _ in range(2):
        ecu.write_user_settings({"charge_limit_pct": 90})
    assert ecu.user_settings() == {"charge_limit_pct": 90}
    for _ in range(2):
        ecu.reset_state()
    assert sim.simulator.store.state_resets == 2  # an action, repeated on purpose: state re-learnt


def test_a_source_that_does_not_match_its_image_never_costs_the_slot(bench: Bench) -> None:
    sim = bench.sim()
    ecu = bench.tester()
    image, path = bench.image(16 << 10)
    ecu.write_inactive(FW, image, path)
    other, _ = bench.image(16 << 10, "bms-2.0.1.bin", "2.0.1")
    with pytest.raises(FlashError, match="does not match"):
        ecu.write_inactive(FW, other, path)  # the bytes of 2.0.0 offered as 2.0.1
    assert ecu.status().partitions[FW].slots[B].image == image and sim.server.stats["erases"] == 1


def test_an_ecu_that_does_not_answer_is_unreachable(bench: Bench) -> None:
    with pytest.raises(EcuUnreachableError):
        bench.tester(p2_timeout=0.2)


def test_activate_of_an_empty_slot_is_refused_by_the_ecu(bench: Bench) -> None:
    bench.sim()
    ecu = bench.tester()
    with pytest.raises(FlashError, match="conditionsNotCorrect"):
        ecu.activate({FW: B})
    assert ecu.status().partitions[FW].active is A
