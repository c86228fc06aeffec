"""The virtual fleet at scale: 10,000 vans over 7 simulated days, with the demo's campaigns.

Prints wall and CPU time (building the world, then simulating), simulated vehicle-days per second,
agent cycles per second, and the process's peak memory; and the same figures for a baseline
run of 200 vans over 2 days measured first in the same process, with the ratio of the
per-vehicle-day cost (how the cost grows with the fleet: 1.0 would be linear).

    python benchmarks/fleet_sim.py [--vehicles 10000] [--days 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path

from evota.sim.demo import run_demo

START = dt.datetime(2026, 1, 12, 12, 0, tzinfo=dt.UTC)


def run(vehicles: int, days: float) -> dict[str, float]:
    phases: dict[str, float] = {}
    last = {"what": "", "t": time.perf_counter()}

    def progress(what: str, fraction: float) -> None:
        now = time.perf_counter()
        if what != last["what"]:
            last["what"], last["t0"] = what, now  # type: ignore[assignment]
        phases[what] = now - float(last.get("t0", now))
        del fraction

    with tempfile.TemporaryDirectory() as tmp:
        t0, cpu0 = time.perf_counter(), time.process_time()
        result = run_demo(
            Path(tmp) / "home", vehicles=vehicles, seed=3, start=START, max_days=days, progress=progress
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        result.sim.close()
    r = result.report
    build = phases.get("provisioning", 0.0)
    vehicle_days = vehicles * r["simulated_days"]
    return {
        "vehicles": vehicles,
        "simulated_days": r["simulated_days"],
        "wall_s": wall,
        "cpu_s": cpu,  # this process's CPU time: what a loaded machine does not inflate
        "build_s": build,
        "simulate_s": wall - build,
        "vehicle_days_per_s": vehicle_days / max(wall - build, 1e-9),
        "cycles": r["agent_cycles"],
        "uploads": r["telemetry_uploads"],
        "cycles_per_s": r["agent_cycles"] / max(wall - build, 1e-9),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "campaigns": [(c["campaign"], c["final_state"], c["waves_reached"]) for c in r["campaigns"]],  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=7.0)
    args = parser.parse_args()
    base = run(200, 2.0)
    print(f"baseline 200 vans × 2 days: {base}", flush=True)
    big = run(args.vehicles, args.days)
    print(f"{args.vehicles} vans × {args.days:g} days: {big}", flush=True)
    cost = lambda r: r["simulate_s"] / (r["vehicles"] * r["simulated_days"])  # noqa: E731
    print(
        f"per vehicle-day cost ratio (big / baseline): {cost(big) / cost(base):.2f}; "
        f"provisioning per van: {1000 * big['build_s'] / big['vehicles']:.1f} ms "
        f"(baseline {1000 * base['build_s'] / base['vehicles']:.1f} ms); peak RSS {big['peak_rss_mib']:.0f} MiB",
        flush=True,
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
