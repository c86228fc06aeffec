"""The invariant every recovery must restore, read straight from the ECUs' flash folders
(never from the agent's own view): each ECU boots a complete, verified image that is marked
good, and the ECUs of a bundle run all-old or all-new, never a mix."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path


def running_firmware(folder: Path) -> str:
    env = json.loads((folder / "boot.json").read_text())
    p = env["partitions"]["firmware"]
    return str(p["slots"][p["active"]]["image"]["path"])


def check_invariant(
    ecu_folders: Mapping[str, Path], old: Mapping[str, str], new: Mapping[str, str]
) -> list[str]:
    """Problems found (empty: the invariant holds). `old`/`new`: serial -> firmware path."""
    problems: list[str] = []
    running: dict[str, str] = {}
    for serial, folder in ecu_folders.items():
        env = json.loads((folder / "boot.json").read_text())
        for name, p in env["partitions"].items():
            slot = p["slots"][p["active"]]
            if slot["health"] != "good":
                problems.append(f"{serial} {name}: active slot {p['active']} is {slot['health']}, not good")
            image = slot.get("image")
            if not image:
                problems.append(f"{serial} {name}: active slot {p['active']} holds no image")
                continue
            data = (folder / f"{name}-{p['active']}.bin").read_bytes()
            if (len(data), hashlib.sha256(data).hexdigest()) != (image["length"], image["sha256"]):
                problems.append(f"{serial} {name}: active slot {p['active']} does not hold {image['path']}")
        if env.get("boot_attempts"):
            problems.append(f"{serial}: still counting boots on trial")
        running[serial] = running_firmware(folder)
    if running != dict(old) and running != dict(new):
        problems.append(f"mixed bundle: {sorted(running.items())}")
    return problems


def folders(state_path: Path, serials: Sequence[str]) -> dict[str, Path]:
    return {s: state_path / "ecus" / s for s in serials}
