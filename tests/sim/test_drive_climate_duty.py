"""Drive cycles and the van, the depots' climate, and the logistics duty."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pytest

from evota.errors import InputError
from evota.sim.climate import ZONES, DepotClimate, ambient_c, hemisphere_of
from evota.sim.drive import CYCLES, VanSpec, battery_power_w, cycle, cycle_table, energy_per_km
from evota.sim.duty import DutyRoster, LocalClock
from evota.sim.wltc import PHASES, SPEED_DECI_KMH

OSLO = zoneinfo.ZoneInfo("Europe/Oslo")


def test_wltc_class3_is_the_regulation_trace() -> None:
    wltc = cycle("wltc3")
    assert wltc.duration_s == 1800
    assert wltc.distance_km == pytest.approx(23.266, abs=0.002)
    speeds = np.asarray(SPEED_DECI_KMH) / 10.0
    expected = {
        "low": (3095, 56.5),
        "medium": (4756, 76.6),
        "high": (7162, 97.4),
        "extra_high": (8254, 131.3),
    }
    for phase, (first, last) in PHASES.items():
        metres, top = expected[phase]
        assert speeds[first : last + 1].sum() / 3.6 == pytest.approx(metres, abs=1.0)
        assert speeds[first : last + 1].max() == top


def test_a_loaded_e_van_uses_a_plausible_energy_per_km() -> None:
    van = VanSpec()
    per_km = {name: energy_per_km(van, cycle(name), 3200.0) for name in CYCLES}
    assert 0.2 <= per_km["wltc3"] <= 0.35
    assert per_km["urban"] < per_km["wltc3"] < per_km["highway"]
    assert energy_per_km(van, cycle("wltc3"), 3500.0) > energy_per_km(van, cycle("wltc3"), 2600.0)
    assert energy_per_km(van, cycle("urban"), 3200.0, regen_fraction=0.0) > per_km["urban"] * 1.2
    assert cycle("urban").mean_speed_kmh < 20.0 < cycle("highway").mean_speed_kmh


def test_the_fleet_table_keeps_each_cycles_energy_and_distance() -> None:
    van = VanSpec()
    table = cycle_table(van, 60.0)
    j, w = table.mass_weights(np.full(1, 3000.0))
    for c, name in enumerate(CYCLES):
        drive = cycle(name)
        traction, regen = battery_power_w(van, drive, 3000.0)
        windows = np.arange(table.n_windows[c])
        got = table.lookup(
            np.full(windows.size, c), windows, (np.repeat(j, windows.size), np.repeat(w, windows.size))
        )
        assert got[0].sum() * 60.0 == pytest.approx(traction.sum(), rel=1e-9)
        assert got[1].sum() * 60.0 == pytest.approx(regen.sum(), rel=1e-9)
        assert got[4].sum() == pytest.approx(drive.distance_km, rel=1e-9)
        assert np.all(got[3] >= got[1])  # the peak second brakes at least as hard as the mean
    with pytest.raises(ValueError, match="whole"):
        cycle_table(van, 0.5)


def test_ambient_is_a_pure_function_of_zone_time_and_seed() -> None:
    when = dt.datetime(2026, 1, 20, 14, 0, tzinfo=OSLO)
    assert ambient_c("nordic", when, 1) == ambient_c("nordic", when, 1)
    assert ambient_c("nordic", when, 1) != ambient_c("nordic", when, 2)
    assert ambient_c("nordic", when, 1, place="osl") != ambient_c("nordic", when, 1, place="bgo")
    depot = DepotClimate(["nordic"], ["osl"], [False], 1)
    offset = (when.utcoffset() or dt.timedelta()).total_seconds()
    got = depot.ambient_c(when.timestamp(), np.array([when.timestamp() + offset]))
    assert float(got[0]) == pytest.approx(ambient_c("nordic", when, 1, place="osl"))


def _mean_ambient(zone: str, month: int, hour: int, tz: str) -> float:
    tzinfo = zoneinfo.ZoneInfo(tz)
    days = [dt.datetime(2026, month, d, hour, tzinfo=tzinfo) for d in range(1, 29)]
    return float(np.mean([ambient_c(zone, when, seed) for when in days for seed in range(3)]))


def test_zones_seasons_hours_and_hemispheres() -> None:
    means = [_mean_ambient(z, 1, 12, "Europe/Oslo") for z in ZONES]
    assert means == sorted(means)  # nordic coldest ... hot-arid warmest
    assert _mean_ambient("nordic", 1, 12, "Europe/Oslo") < 0.0 < _mean_ambient("nordic", 7, 12, "Europe/Oslo")
    assert _mean_ambient("continental", 1, 4, "Europe/Warsaw") < _mean_ambient(
        "continental", 1, 15, "Europe/Warsaw"
    )
    assert hemisphere_of("Australia/Perth") == "south" and hemisphere_of("Europe/Oslo") == "north"
    assert _mean_ambient("mediterranean", 1, 12, "Australia/Perth") > _mean_ambient(
        "mediterranean", 7, 12, "Australia/Perth"
    )
    with pytest.raises(InputError, match="unknown climate zone"):
        ambient_c("tropical", dt.datetime(2026, 1, 1, tzinfo=OSLO), 1)
    with pytest.raises(ValueError, match="aware"):
        ambient_c("nordic", dt.datetime(2026, 1, 1), 1)


def _day_plans(routes: list[str], day: dt.date, seed: int = 4) -> DutyRoster:
    roster = DutyRoster(routes, np.random.default_rng(seed))
    local_day = (day - dt.date(1970, 1, 1)).days
    roster.plan(np.full(len(routes), local_day, dtype=np.int64))
    return roster


def test_vans_leave_in_the_morning_and_are_back_in_the_afternoon() -> None:
    routes = ["urban", "mixed", "highway"] * 100
    roster = _day_plans(routes, dt.date(2026, 1, 14))  # a Wednesday
    works = roster.works
    assert works.mean() > 0.9
    depart_h, return_h = roster.depart_s[works] / 3600.0, roster.return_s[works] / 3600.0
    assert depart_h.min() > 5.5 and depart_h.max() < 9.0
    assert 12.0 < np.median(return_h) < 19.0 and return_h.max() <= 20.5 + 1e-9
    assert np.all(roster.leg_end >= roster.leg_start)
    assert np.all(roster.leg_start[:, 1:] >= roster.leg_end[:, :-1])  # legs do not overlap
    noon = roster.now(np.full(len(routes), 10.5 * 3600.0))
    night = roster.now(np.full(len(routes), 2.0 * 3600.0))
    assert 0.3 < noon.driving.mean() < 1.0 and not night.on_shift.any()
    highway = np.array(routes) == "highway"
    assert np.mean(noon.cycle_idx[noon.driving & highway] == CYCLES.index("highway")) > 0.4
    sunday = _day_plans(routes, dt.date(2026, 1, 18))
    assert sunday.works.mean() < 0.3
    with pytest.raises(InputError, match="unknown route"):
        DutyRoster(["suburban"], np.random.default_rng(0))


def test_local_time_follows_daylight_saving() -> None:
    clock = LocalClock(["Europe/Oslo", "America/Phoenix"])
    winter = clock.offsets_s(dt.datetime(2026, 1, 10, tzinfo=dt.UTC).timestamp()).copy()
    summer = clock.offsets_s(dt.datetime(2026, 7, 10, tzinfo=dt.UTC).timestamp())
    assert list(winter) == [3600.0, -7 * 3600.0] and list(summer) == [7200.0, -7 * 3600.0]
    with pytest.raises(InputError, match="time zone"):
        LocalClock(["Mars/Olympus"])
