"""The agent as a real process, killed with SIGKILL at seeded random moments of an install.

A real `evota serve`-equivalent server (the app on loopback, system clock), a vehicle
provisioned from the home with three simulated ECUs whose flash and self-test take as long
as real ones, and `evota agent run` as a subprocess. Each round assigns the next release,
starts the agent, kills it at a random moment, restarts it with `--once` (which first
recovers from the journal), and reads the invariant from the ECUs' folders.
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from evota.agent.provision import provision_vehicle
from evota.agent.simulated import SimulatedEcu
from evota.clock import SystemClock
from evota.deployment import Deployment, init_home
from evota.domain.registry import parse_vehicle_csv
from evota.server.app import create_app
from evota.server.runner import serve_in_thread
from evota.server.services.fleet import import_vehicles
from evota.server.store.db import open_database
from tests.agent.conftest import FLEET_CSV, SECONDARIES, VIN, image_bytes, relaxed
from tests.agent.invariant import check_invariant, folders, running_firmware

pytestmark = pytest.mark.integration

KILLS = 30
EVOTA = str(Path(sys.executable).with_name("evota"))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Deployment, str, Path]]:
    dep = init_home(tmp_path / "home", SystemClock())
    db = open_database(dep.home.database_url())
    import_vehicles(db, parse_vehicle_csv(FLEET_CSV), dep.clock.now(), actor="test")
    with serve_in_thread(create_app(dep, db, refresh_interval_s=None, tick_interval_s=None)) as url:
        state = tmp_path / "vehicle"
        provision_vehicle(dep, db, vin=VIN, state_dir=state, server_url=url, now=dep.clock.now())
        yield dep, url, state
    db.dispose()


def _publish(dep: Deployment, tmp: Path, k: int) -> str:
    hw = {"bms": "bms-gen2", "vcms": "vcms-gen3", "tms": "tms-gen1"}
    base = {"bms": "2.4", "vcms": "3.1", "tms": "1.1"}
    paths = []
    for ecu_type, prefix in base.items():
        f = tmp / f"{ecu_type}-{prefix}.{k}.bin"
        f.write_bytes(image_bytes(f"{k}-{ecu_type}", 32 * 1024))
        paths.append(
            dep.images.add_image(
                f, ecu_type=ecu_type, hardware_ids=[hw[ecu_type]], version=f"{prefix}.{k}"
            ).path
        )
    name = f"energy-r{k}"
    dep.images.add_bundle(name, paths, policy=relaxed())
    return name


def _signals(state: Path) -> None:
    now = SystemClock().now().isoformat()
    body = {"soc_pct": 80.0, "charging": False, "plugged_in": True, "gear": "P", "ambient_c": 15.0, "at": now}
    (state / "signals.json").write_text(json.dumps(body))


def _phase(state: Path) -> str:
    try:
        record = json.loads((state / "journal" / "current.json").read_text()).get("record")
    except FileNotFoundError:
        return "none"
    return str(record["phase"]) if record else "none"


def test_sigkill_at_random_moments_of_installs_never_leaves_a_mixed_or_unverified_vehicle(
    served: tuple[Deployment, str, Path], tmp_path: Path
) -> None:
    dep, _url, state = served
    for serial in SECONDARIES:
        ecu = SimulatedEcu(state / "ecus" / serial)
        ecu.set_fault("block_delay_s", 0.02)
        ecu.set_fault("self_test_delay_s", 0.15)
    firmware = tmp_path / "fw"
    firmware.mkdir()
    rng = random.Random(4242)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    at_kill: collections.Counter[str] = collections.Counter()
    outcomes: collections.Counter[str] = collections.Counter()
    violations: list[str] = []
    for k in range(KILLS):
        old = {s: running_firmware(state / "ecus" / s) for s in SECONDARIES}
        name = _publish(dep, firmware, k)
        dep.director.assign_release(VIN, name)
        new = {s: p for s, p in dep.director.assignments(VIN).items() if s in SECONDARIES}
        _signals(state)
        agent = subprocess.Popen(
            [EVOTA, "agent", "run", "--state-dir", str(state), "--interval", "0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        time.sleep(rng.uniform(0.9, 2.6))
        at_kill[_phase(state)] += 1
        agent.send_signal(signal.SIGKILL)
        _, err = agent.communicate(timeout=30)
        assert agent.returncode == -signal.SIGKILL, err.decode()[-2000:]
        again = subprocess.run(
            [EVOTA, "agent", "run", "--state-dir", str(state), "--once"],
            capture_output=True,
            env=env,
            timeout=120,
        )
        assert again.returncode == 0, again.stderr.decode()[-2000:]
        outcomes[again.stdout.decode().split(":")[0].strip()] += 1
        if _phase(state) != "none":
            violations.append(f"kill {k}: still {_phase(state)} after the restart")
        violations.extend(f"kill {k}: {p}" for p in check_invariant(folders(state, SECONDARIES), old, new))
    print(f"\n{KILLS} kills; journal phase at the kill: {dict(at_kill)}; after restart: {dict(outcomes)}")
    assert not violations, "\n".join(violations)
    # The kills must land inside installs, not only between them.
    assert sum(n for phase, n in at_kill.items() if phase != "none") >= KILLS // 2, at_kill
