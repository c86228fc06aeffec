"""KPI telemetry: from the vehicle's spool through the agent's outbox to the server, and the
same batches through the real local MQTT broker (Mosquitto on 127.0.0.1:1883)."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest

from evota.server.mqtt import MqttIngest, telemetry_topic
from tests.agent.conftest import VIN, Fleet

BROKER = "mqtt://127.0.0.1:1883"


def stored(fleet: Fleet) -> list[tuple[str, float]]:
    with fleet.db.engine.connect() as c:
        return [(k, v) for k, v in c.exec_driver_sql("SELECT kpi, value FROM telemetry ORDER BY id").all()]


def spool(fleet: Fleet, name: str, body: object) -> None:
    folder = fleet.state / "telemetry"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps(body))


def test_samples_in_the_spool_reach_the_server_after_the_check_in(fleet: Fleet) -> None:
    at = fleet.clock.now().isoformat()
    spool(fleet, "0001.json", {"at": at, "kpis": {"soc_error_pct": 0.7, "cell_spread_mv": 12.0}})
    spool(fleet, "0002.json", {"at": at, "kpis": {"max_temp_c": 31.5, "nan_is_left_out": float("nan")}})
    spool(fleet, "0003.json", "not a sample")
    assert fleet.agent().cycle().outcome == "idle"
    assert sorted(stored(fleet)) == [("cell_spread_mv", 12.0), ("max_temp_c", 31.5), ("soc_error_pct", 0.7)]
    assert (fleet.state / "telemetry" / "rejected" / "0003.json").exists()  # set aside, not lost


def test_an_upload_sends_telemetry_without_an_update_check(fleet: Fleet) -> None:
    """The evening upload from the depot: samples go, no manifest is signed or checked in."""
    spool(fleet, "0001.json", {"at": fleet.clock.now().isoformat(), "kpis": {"cell_spread_mv": 9.0}})
    counters = (
        (fleet.state / "counters.json").read_bytes() if (fleet.state / "counters.json").exists() else None
    )
    agent = fleet.agent()
    assert agent.upload_telemetry() == 1
    assert stored(fleet) == [("cell_spread_mv", 9.0)]
    after = (fleet.state / "counters.json").read_bytes() if (fleet.state / "counters.json").exists() else None
    assert after == counters  # no version report was signed
    assert agent.upload_telemetry() == 0  # nothing new: nothing sent


def test_telemetry_waits_in_the_outbox_while_the_server_is_unreachable(fleet: Fleet) -> None:
    from evota.agent.agent import Agent
    from evota.agent.transport import HttpServer

    spool(fleet, "0001.json", {"at": fleet.clock.now().isoformat(), "kpis": {"fault_codes": 2.0}})
    offline = Agent(fleet.state, HttpServer("http://127.0.0.1:9", vin=VIN, token="x"), clock=fleet.clock)
    try:
        assert offline.cycle().outcome == "offline"
    finally:
        offline.close()
    assert stored(fleet) == []
    assert fleet.agent().cycle().outcome == "idle"
    assert stored(fleet) == [("fault_codes", 2.0)]


def _publish(topic: str, payload: dict[str, object]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"van-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        client.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.fixture
def ingest(fleet: Fleet) -> MqttIngest:
    # A unique prefix and client id per test: the broker is shared and keeps sessions.
    prefix = f"evota-test/{uuid.uuid4().hex[:10]}"
    return MqttIngest(fleet.dep, fleet.db, BROKER, prefix=prefix, client_id=f"evota-{uuid.uuid4().hex[:8]}")


def test_batches_published_to_the_broker_are_stored(fleet: Fleet, ingest: MqttIngest) -> None:
    ingest.start()
    try:
        at = fleet.clock.now().isoformat()
        topic = telemetry_topic(VIN, ingest.prefix)
        _publish(
            topic, {"token": fleet.state.token(), "samples": [{"at": at, "kpis": {"soc_error_pct": 1.25}}]}
        )
        _until(lambda: ingest.stats.stored == 1)
        assert stored(fleet) == [("soc_error_pct", 1.25)]
        # Refused, counted, and the subscription lives on: a token of no vehicle, another VIN's
        # topic, a body the device API would refuse (a string where a number belongs).
        _publish(topic, {"token": "evd_forged", "samples": []})
        _publish(
            telemetry_topic("WVWZZZ1JZ3W000001", ingest.prefix), {"token": fleet.state.token(), "samples": []}
        )
        _publish(
            topic, {"token": fleet.state.token(), "samples": [{"at": at, "kpis": {"soc_error_pct": "1"}}]}
        )
        _until(lambda: ingest.stats.rejected == 3)
        _publish(topic, {"token": fleet.state.token(), "samples": [{"at": at, "kpis": {"max_temp_c": 30.0}}]})
        _until(lambda: ingest.stats.stored == 2)
    finally:
        ingest.stop()
    assert stored(fleet) == [("soc_error_pct", 1.25), ("max_temp_c", 30.0)]


def test_what_arrives_while_the_server_is_down_waits_at_the_broker(fleet: Fleet, ingest: MqttIngest) -> None:
    ingest.start()  # the persistent session is made
    ingest.stop()
    at = (fleet.clock.now() - dt.timedelta(minutes=1)).isoformat()
    _publish(
        telemetry_topic(VIN, ingest.prefix),
        {"token": fleet.state.token(), "samples": [{"at": at, "kpis": {"charge_started": 1.0}}]},
    )
    again = MqttIngest(fleet.dep, fleet.db, BROKER, prefix=ingest.prefix, client_id=ingest.client_id)
    again.start()
    try:
        _until(lambda: again.stats.stored == 1)
    finally:
        again.stop()
    assert stored(fleet) == [("charge_started", 1.0)]
