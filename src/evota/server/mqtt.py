"""Telemetry over MQTT: the same KPI batches as `POST /api/v1/device/telemetry`, from a broker.

Vans on cellular links often publish telemetry to an MQTT broker (Mosquitto, EMQX, a cloud
IoT hub) rather than open HTTPS requests. `MqttIngest` subscribes to
`<prefix>/<VIN>/telemetry` (QoS 1, persistent session: what arrives while the server is down
waits at the broker) and stores each message exactly as the HTTP route does:

    {"token": "<device token>", "samples": [{"at": "...", "kpis": {"soc_error_pct": 0.8}}]}

The body is validated by the device API's own model, and the token must belong to the VIN in
the topic: a broker's ACLs may be misconfigured, so the payload proves who sent it, as the
bearer token does over HTTP. A bad message is logged and counted, never fatal; the
subscription outlives it. paho-mqtt runs its own network thread; each message is handled in
it, in one database transaction.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import urllib.parse
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from evota.deployment import Deployment
from evota.errors import ConfigError, EvotaError
from evota.server.device_api import TelemetryBody, handle_telemetry
from evota.server.services.devices import authenticate_device
from evota.server.store.db import Database

__all__ = ["DEFAULT_PREFIX", "IngestStats", "MqttIngest", "telemetry_topic"]

log = logging.getLogger("evota.mqtt")

DEFAULT_PREFIX = "evota/v1/vehicles"
MAX_MESSAGE_BYTES = 1 << 20


def telemetry_topic(vin: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}/{vin}/telemetry"


@dataclasses.dataclass
class IngestStats:
    stored: int = 0  # KPI values stored
    messages: int = 0
    rejected: int = 0
    last_error: str = ""


class MqttIngest:
    """Subscribe to every vehicle's telemetry topic and store what arrives."""

    def __init__(
        self,
        dep: Deployment,
        db: Database,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        client_id: str = "evota-server",
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ConfigError(f"{url!r} is not an MQTT URL (mqtt://host:1883 or mqtts://host:8883)")
        self.dep, self.db, self.prefix, self.client_id = dep, db, prefix.rstrip("/"), client_id
        self.stats = IngestStats()
        self._subscribed = threading.Event()
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if parts.username:
            self._client.username_pw_set(
                urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
            )
        if parts.scheme == "mqtts":
            self._client.tls_set()
        self._host, self._port = parts.hostname, parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    @property
    def topic(self) -> str:
        return f"{self.prefix}/+/telemetry"

    def start(self, *, timeout_s: float = 10.0) -> None:
        """Connect and subscribe (ConfigError if the broker does not answer in time)."""
        try:
            self._client.connect(self._host, self._port, keepalive=30)
        except OSError as e:
            raise ConfigError(f"cannot reach the MQTT broker at {self._host}:{self._port}: {e}") from e
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise ConfigError(
                f"the MQTT broker at {self._host}:{self._port} did not confirm the subscription"
            )

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    # ---- callbacks (paho's network thread) ------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("MQTT connection refused: %s", reason)
            return
        client.subscribe(self.topic, qos=1)  # again after every reconnect

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, _codes: Any, _props: Any
    ) -> None:
        self._subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.stats.messages += 1
            try:
                self.stats.stored += self.handle(message.topic, bytes(message.payload))
            except (EvotaError, ValidationError, ValueError) as e:
                self.stats.rejected += 1
                self.stats.last_error = f"{message.topic}: {e}"[:500]
                log.warning("telemetry message refused: %s", self.stats.last_error)
            except Exception:  # a bug must not end the subscription
                self.stats.rejected += 1
                log.exception("telemetry message on %s failed", message.topic)

    def handle(self, topic: str, payload: bytes) -> int:
        """Store one message (what the callback does); returns how many values were stored."""
        parts = topic.split("/")
        if not topic.startswith(self.prefix + "/") or len(parts) != self.prefix.count("/") + 3:
            raise ValueError("not a telemetry topic")
        vin = parts[-2]
        if len(payload) > MAX_MESSAGE_BYTES:
            raise ValueError(f"message larger than {MAX_MESSAGE_BYTES} bytes")
        envelope = json.loads(payload)
        if not isinstance(envelope, dict) or not isinstance(envelope.get("token"), str):
            raise ValueError("a telemetry message is {token, samples}")
        token = envelope.pop("token")
        if authenticate_device(self.db, token) != vin:
            raise ValueError(f"the token was not issued to {vin}")
        body = TelemetryBody.model_validate_json(json.dumps(envelope))
        return int(str(handle_telemetry(self.dep, self.db, vin, body)["stored"]))
