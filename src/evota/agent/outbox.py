"""Reports the server has not heard yet, kept on disk and delivered in order.

The install never waits for the server, and never rolls back because a report could not be
sent (mendersoftware/mender#823): each step is queued here, durably, right after the journal
records it, and `flush` sends the queue oldest first whenever the server answers. A report
the server refuses as malformed (4xx) is dropped, so one bad report cannot block the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from evota.agent.errors import ServerError
from evota.fsutil import atomic_write

__all__ = ["Outbox"]

MAX_QUEUED = 1000


class Outbox:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _seq(self) -> int:
        names = [int(p.stem) for p in self.folder.glob("*.json") if p.stem.isdigit()]
        try:
            last = int((self.folder / "seq").read_text())
        except (FileNotFoundError, ValueError):
            last = 0
        return max([last, *names]) + 1

    def put(self, body: Mapping[str, Any]) -> None:
        queued = sorted(self.folder.glob("*.json"))
        if len(queued) >= MAX_QUEUED:  # a vehicle offline for months keeps the newest reports
            queued[0].unlink()
        seq = self._seq()
        atomic_write(self.folder / "seq", str(seq).encode())
        atomic_write(self.folder / f"{seq:012d}.json", json.dumps(dict(body)).encode())

    def pending(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.folder.glob("*.json"))]

    def flush(self, send: Callable[[Mapping[str, Any]], None]) -> int:
        """Send queued reports oldest first; stop at the first one the network loses."""
        sent = 0
        for path in sorted(self.folder.glob("*.json")):
            try:
                body = json.loads(path.read_text())
            except ValueError:
                path.unlink()  # torn by a cut before atomic_write existed: nothing to deliver
                continue
            try:
                send(body)
            except ServerError as e:
                if e.status is None or e.status >= 500 or e.status in (401, 408, 429):
                    return sent
            path.unlink()
            sent += 1
        return sent
