"""What the fleet physics costs: 10,000 vans for 7 simulated days, against a demo-sized run.

    PYTHONPATH=src .venv/bin/python benchmarks/fleet_physics.py [--vehicles 10000] [--days 7]

1. Baseline: 200 vans for 10 days (the demo's size), the same operator and calibrations.
2. The fleet: `--vehicles` vans for `--days` days at the default steps (120 s while any
   van is on shift, 600 s when none is).

Both runs are one process on one core (NumPy is single-threaded for these operations).
The operator has 25 depots in 5 climate zones and 8 time zones, so some van is on shift
most of the day; it starts in mid-January, with 10 % of the BMSs on the better SoC
calibration and 5 % on the cold regression. Printed: wall and CPU time, time per
simulated vehicle-day, steps taken, the ratio of the two runs' time per vehicle-day
(how well the cost amortises over a larger fleet), and peak memory: the process's max
RSS (which the large run sets), and tracemalloc's peak of Python and NumPy allocations
in a separate one-day run of the large fleet (tracing slows NumPy, so the timed runs are
not traced). Machines here are shared: the CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import time
import tracemalloc

from evota.sim import presets
from evota.sim.physics import FleetPhysics, VehicleSetup

DEPOTS = (
    ("oslo", "nordic", "Europe/Oslo"),
    ("stockholm", "nordic", "Europe/Stockholm"),
    ("helsinki", "nordic", "Europe/Helsinki"),
    ("tampere", "nordic", "Europe/Helsinki"),
    ("trondheim", "nordic", "Europe/Oslo"),
    ("warsaw", "continental", "Europe/Warsaw"),
    ("munich", "continental", "Europe/Berlin"),
    ("vienna", "continental", "Europe/Vienna"),
    ("prague", "continental", "Europe/Prague"),
    ("krakow", "continental", "Europe/Warsaw"),
    ("london", "temperate", "Europe/London"),
    ("paris", "temperate", "Europe/Paris"),
    ("amsterdam", "temperate", "Europe/Amsterdam"),
    ("brussels", "temperate", "Europe/Brussels"),
    ("dublin", "temperate", "Europe/Dublin"),
    ("madrid", "mediterranean", "Europe/Madrid"),
    ("barcelona", "mediterranean", "Europe/Madrid"),
    ("rome", "mediterranean", "Europe/Rome"),
    ("athens", "mediterranean", "Europe/Athens"),
    ("lisbon", "mediterranean", "Europe/Lisbon"),
    ("seville", "hot-arid", "Europe/Madrid"),
    ("phoenix", "hot-arid", "America/Phoenix"),
    ("tucson", "hot-arid", "America/Phoenix"),
    ("dubai", "hot-arid", "Asia/Dubai"),
    ("riyadh", "hot-arid", "Asia/Riyadh"),
)
ROUTES = ("urban", "urban", "mixed", "mixed", "highway")
START = dt.datetime(2026, 1, 12, tzinfo=dt.UTC)


def fleet(n: int) -> list[VehicleSetup]:
    return [
        VehicleSetup(
            f"VAN{i:06d}",
            *DEPOTS[i % len(DEPOTS)],
            ROUTES[(i // len(DEPOTS)) % len(ROUTES)],
            (i * 7919) % 2000,
        )
        for i in range(n)
    ]


def run(n: int, days: float, *, trace: bool = False) -> dict[str, float]:
    if trace:
        tracemalloc.start()
    wall, cpu = time.perf_counter(), time.process_time()
    physics = FleetPhysics(fleet(n), seed=2026, start=START)
    for i in range(0, n, 10):
        physics.set_calibration(i, "bms", presets.good_soc_improvement())
    for i in range(5, n, 20):
        physics.set_calibration(i, "bms", presets.bad_cold_calibration())
    for hour in range(1, int(days * 24) + 1):  # as a fleet simulator would: hour by hour, reading KPIs daily
        physics.advance(START + dt.timedelta(hours=hour))
        if hour % 24 == 0:
            physics.take_kpis()
    result = {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "steps": float(physics._steps),
        "vehicle_days": n * days,
    }
    if trace:
        result["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return result


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--vehicles", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=7.0)
    args = parser.parse_args()
    base = run(200, 10.0)
    big = run(args.vehicles, args.days)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    traced = run(args.vehicles, 1.0, trace=True)
    named = (("baseline, 200 vans x 10 days", base), (f"{args.vehicles} vans x {args.days:g} days", big))
    for name, r in named:
        per = r["cpu_s"] / r["vehicle_days"] * 1e3
        print(
            f"{name:>28}: wall {r['wall_s']:7.1f} s, cpu {r['cpu_s']:7.1f} s, "
            f"{int(r['steps'])} steps, {per:.2f} ms cpu per vehicle-day"
        )
    ratio = (big["cpu_s"] / big["vehicle_days"]) / (base["cpu_s"] / base["vehicle_days"])
    print(f"{'ratio':>28}: {ratio:.3f} x the baseline's cpu per vehicle-day")
    print(
        f"{'peak memory':>28}: {rss_mb:.0f} MiB max RSS (process), "
        f"{traced['tracemalloc_peak_mb']:.0f} MiB traced peak (large fleet, one day)"
    )


if __name__ == "__main__":
    main()
