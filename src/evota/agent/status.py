"""`evota agent status`: per ECU the slots, the active and committed versions, the pending
step, and the last result with its reason; read from the ECUs and the journal, never cached."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evota.agent.errors import EcuError
from evota.agent.journal import InstallRecord, Journal
from evota.agent.outbox import Outbox
from evota.agent.secondary import BootHealth, EcuStatus, Secondary
from evota.agent.state import StateDir

__all__ = ["agent_status"]


def _ecu(status: EcuStatus) -> dict[str, Any]:
    partitions = {}
    for name, p in status.partitions.items():
        good = [s for s, v in p.slots.items() if v.health is BootHealth.GOOD]
        committed = p.slots[p.active] if p.slots[p.active].health is BootHealth.GOOD else None
        if committed is None and good:
            committed = p.slots[good[0]]
        partitions[name.value] = {
            "active_slot": p.active.value,
            "active_version": p.running.version if p.running else None,
            "committed_version": committed.image.version if committed and committed.image else None,
            "on_trial": p.on_trial,
            "slots": {
                s.value: {
                    "health": v.health.value,
                    "image": v.image.path if v.image else None,
                    "version": v.image.version if v.image else None,
                }
                for s, v in p.slots.items()
            },
        }
    installed = status.installed
    return {
        "installed": installed.path if installed else None,
        "version": installed.version if installed else None,
        "boot_attempts": status.boot_attempts,
        "partitions": partitions,
    }


def _result(record: InstallRecord) -> dict[str, Any]:
    return {
        "install": record.id,
        "kind": record.kind,
        "release": record.release,
        "phase": record.phase.value,
        "reason": record.reason,
        "at": record.updated_at.isoformat(),
    }


def agent_status(state: StateDir, secondaries: Mapping[str, Secondary]) -> dict[str, Any]:
    config = state.config()
    journal = Journal(state / "journal")
    current = journal.current()
    history = journal.history()
    ecus: dict[str, Any] = {}
    for serial, ecu in secondaries.items():
        try:
            entry = _ecu(ecu.status())
        except EcuError as e:
            entry = {"error": str(e)}
        entry["ecu_type"] = ecu.ecu_type
        entry["pending_step"] = current.phase.value if current and serial in current.serials else None
        last = next((r for r in reversed(history) if serial in r.serials), None)
        entry["last_result"] = _result(last) if last else None
        ecus[serial] = entry
    return {
        "vin": config.vin,
        "primary": config.primary_serial,
        "server": config.server_url,
        "in_flight": _result(current) if current else None,
        "ecus": ecus,
        "outbox": len(Outbox(state / "outbox").pending()),
        "waiting": state.read_json("last_wait.json", {}).get("reason"),
        "attack": state.read_json("attack.json", {}).get("message"),
    }
