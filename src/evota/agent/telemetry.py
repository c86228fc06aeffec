"""KPI telemetry as the agent sends it: samples from the vehicle, batched, delivered in order.

What the health gate compares (estimated SoC against a reference from rested OCV, cell voltage
spread, maximum temperature, charge sessions started and completed, fault codes, energy per
km) is computed on board, by the BMS and VCMS, and reaches the agent as samples through the
`TelemetrySource` port: the fleet simulator's battery models are one source, `FileTelemetry`
(a spool folder a data logger drops JSON files into) is the other. The agent queues each
batch in a durable outbox right away and sends the queue oldest first after each check-in:
a vehicle out of coverage for days delivers its days later, and a batch the server refuses
as malformed is dropped so it cannot block the rest.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

__all__ = ["MAX_BATCH_SAMPLES", "FileTelemetry", "TelemetrySource", "sample"]

MAX_BATCH_SAMPLES = 200


def sample(at: dt.datetime, kpis: Mapping[str, float]) -> dict[str, Any]:
    """One sample as the device API takes it; values that are not finite numbers are left out
    (a KPI with no reference this period, e.g. no rest for an OCV reading, is absent, not 0)."""
    return {
        "at": at.isoformat(),
        "kpis": {k: float(v) for k, v in kpis.items() if isinstance(v, int | float) and math.isfinite(v)},
    }


class TelemetrySource(Protocol):
    def take(self) -> list[dict[str, Any]]:
        """The samples gathered since the last call (each `{"at": …, "kpis": {…}}`)."""
        ...


class FileTelemetry:
    """A spool folder: each `*.json` file holds one sample; taken in name order, then removed.

    A file that is not a sample (torn, hand-edited) is moved aside to `rejected/` rather than
    sent or lost silently.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def take(self) -> list[dict[str, Any]]:
        if not self.folder.is_dir():
            return []
        out = []
        for path in sorted(self.folder.glob("*.json"))[:MAX_BATCH_SAMPLES]:
            try:
                body = json.loads(path.read_text())
                out.append(sample(dt.datetime.fromisoformat(body["at"]), body["kpis"]))
                path.unlink()
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                rejected = self.folder / "rejected"
                rejected.mkdir(exist_ok=True)
                path.replace(rejected / path.name)
        return out
