"""Downloads: a transfer cut by the network resumes with HTTP Range from what is on disk;
bytes that do not match the verified target are thrown away and never installed."""

from __future__ import annotations

from collections.abc import Iterator

from evota.agent.errors import DownloadError
from evota.agent.transport import HttpServer
from tests.agent.conftest import VIN, Fleet, relaxed


class FlakyServer(HttpServer):
    """The real HTTP port, with a network that drops after `budget` bytes, or flips a byte."""

    def __init__(self, *args: object, budget: int | None = None, flip: bool = False, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.budget, self.flip = budget, flip
        self.starts: list[int] = []

    def fetch_target(self, path: str, sha256: str, start: int) -> Iterator[bytes]:
        self.starts.append(start)
        for chunk in super().fetch_target(path, sha256, start):
            if self.flip:
                chunk = bytes([chunk[0] ^ 1]) + chunk[1:]
            if self.budget is not None:
                if self.budget <= 0:
                    raise DownloadError("connection reset by peer")
                chunk = chunk[: self.budget]
                self.budget -= len(chunk)
            yield chunk


def _agent(fleet: Fleet, port: FlakyServer):  # type: ignore[no-untyped-def]
    from evota.agent.agent import Agent

    agent = Agent(fleet.state, port, clock=fleet.clock)
    fleet.agents.append(agent)
    return agent


def test_a_cut_transfer_resumes_from_the_bytes_on_disk(fleet: Fleet) -> None:
    bundle = fleet.publish("energy-2026-12", {"bms": "2.4.0"}, size=300_000, policy=relaxed())
    fleet.assign(bundle)
    port = FlakyServer(fleet.url, vin=VIN, token=fleet.state.token(), budget=100_000)
    assert _agent(fleet, port).cycle().outcome == "in_flight"
    parts = list((fleet.state / "images").glob("*.part"))
    assert [p.stat().st_size for p in parts] == [100_000]
    port.budget = None
    assert _agent(fleet, port).cycle().outcome == "installed"
    assert port.starts == [0, 100_000]  # the second request asked only for the rest
    assert fleet.running()["BMS-1"] == bundle.meta.images[0]


def test_bytes_that_do_not_match_the_verified_target_are_never_installed(fleet: Fleet) -> None:
    before = fleet.running()
    fleet.assign(fleet.publish("energy-2026-12", {"bms": "2.4.0"}, policy=relaxed()))
    port = FlakyServer(fleet.url, vin=VIN, token=fleet.state.token(), flip=True)
    outcomes = [_agent(fleet, port).cycle() for _ in range(3)]
    assert [o.outcome for o in outcomes] == ["in_flight", "in_flight", "failed"]
    assert "sha256 does not match the verified target" in outcomes[-1].detail
    assert port.starts == [0, 0, 0]  # never resumed on bad bytes
    assert list((fleet.state / "images").glob("*.part")) == []
    assert fleet.running() == before
