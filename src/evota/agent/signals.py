"""The vehicle's energy state as the agent reads it: SoC, gear, charging, plug, ambient.

On a vehicle these come from the buses (the BMS's SoC, the VCU's gear); here a `SignalSource`
port stands for them. `FileSignals` reads `signals.json` in the state folder, which the fleet
simulator, a test or `evota agent signals` writes. A missing or unreadable file means "not
known", and the preconditions then say so: the agent never installs on a guess.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Protocol

from evota.domain.gates import EnergyState, Gear
from evota.fsutil import atomic_write

__all__ = ["FileSignals", "SignalSource", "energy_to_dict"]


class SignalSource(Protocol):
    def read(self) -> EnergyState | None: ...


def energy_to_dict(state: EnergyState) -> dict[str, Any]:
    """The energy state as the device API's check-in takes it (the HV state stays on board)."""
    return {
        "soc_pct": state.soc_pct,
        "charging": state.charging,
        "plugged_in": state.plugged_in,
        "gear": state.gear.value,
        "ambient_c": state.ambient_c,
        "at": state.reported_at.isoformat(),
        **({"soh_pct": state.soh_pct} if state.soh_pct is not None else {}),
    }


class FileSignals:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> EnergyState | None:
        try:
            d = json.loads(self.path.read_text())
            return EnergyState(
                soc_pct=float(d["soc_pct"]),
                charging=bool(d["charging"]),
                plugged_in=bool(d["plugged_in"]),
                gear=Gear(d["gear"]),
                ambient_c=float(d["ambient_c"]),
                reported_at=dt.datetime.fromisoformat(d["at"]),
                soh_pct=float(d["soh_pct"]) if d.get("soh_pct") is not None else None,
                hv_on=bool(d["hv_on"]) if d.get("hv_on") is not None else None,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, state: EnergyState) -> None:
        body = energy_to_dict(state) | ({"hv_on": state.hv_on} if state.hv_on is not None else {})
        atomic_write(self.path, json.dumps(body).encode())
