"""FleetPhysics: determinism, the signals a vehicle reports, KPIs, and what calibrations do."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from evota.domain.gates import EnergyState, Gear
from evota.errors import InputError
from evota.sim import presets
from evota.sim.calibration import Calibration
from evota.sim.duty import Mode
from evota.sim.kpis import SAMPLE_NAMES, KpiBatch
from evota.sim.physics import FleetPhysics, PhysicsSpec, VehicleSetup

START = dt.datetime(2026, 1, 12, tzinfo=dt.UTC)  # a Monday in the northern winter
FAST = PhysicsSpec()  # the default steps: 120 s, 600 s when nobody is on shift
ROUTES = ("urban", "mixed", "highway")


def _fleet(n_cold: int, n_warm: int) -> list[VehicleSetup]:
    cold = [
        VehicleSetup(f"COLD{i:03d}", "oslo", "nordic", "Europe/Oslo", ROUTES[i % 3], 300 + 40 * i)
        for i in range(n_cold)
    ]
    warm = [
        VehicleSetup(f"WARM{i:03d}", "perth", "mediterranean", "Australia/Perth", ROUTES[i % 3], 300 + 40 * i)
        for i in range(n_warm)
    ]
    return cold + warm


def _run(bms: Calibration, days: float = 2.0, seed: int = 11, n: int = 24) -> tuple[FleetPhysics, KpiBatch]:
    physics = FleetPhysics(_fleet(n, n), seed=seed, start=START, spec=FAST, calibrations={"bms": bms})
    physics.advance(START + dt.timedelta(days=days))
    return physics, physics.take_kpis()


@pytest.fixture(scope="module")
def runs() -> dict[str, KpiBatch]:
    return {
        "factory": _run(presets.factory_bms())[1],
        "good": _run(presets.good_soc_improvement())[1],
        "bad": _run(presets.bad_cold_calibration())[1],
    }


COLD, WARM = slice(0, 24), slice(24, 48)


def test_the_same_seed_gives_the_same_fleet_and_another_seed_another() -> None:
    a, ka = _run(presets.factory_bms(), days=0.5, n=4)
    b, kb = _run(presets.factory_bms(), days=0.5, n=4)
    _, kc = _run(presets.factory_bms(), days=0.5, n=4, seed=12)
    for name in ("energy_kwh", "distance_km", "max_temp_c", "charge_started"):
        np.testing.assert_array_equal(getattr(ka, name), getattr(kb, name))
    assert a.energy_state(3) == b.energy_state(3)
    assert not np.array_equal(ka.energy_kwh, kc.energy_kwh)


def test_advancing_in_pieces_is_advancing_at_once() -> None:
    whole = FleetPhysics(_fleet(3, 3), seed=5, start=START, spec=FAST)
    whole.advance(START + dt.timedelta(hours=30))
    pieces = FleetPhysics(_fleet(3, 3), seed=5, start=START, spec=FAST)
    for minutes in range(0, 30 * 60 + 1, 47):
        pieces.advance(START + dt.timedelta(minutes=minutes))
    pieces.advance(START + dt.timedelta(hours=30))
    assert whole.now == pieces.now
    np.testing.assert_array_equal(whole.true_soc(), pieces.true_soc())
    np.testing.assert_array_equal(whole.counter.soc, pieces.counter.soc)


def test_signals_follow_the_day_of_a_van() -> None:
    physics = FleetPhysics(_fleet(6, 0), seed=3, start=START, spec=FAST)
    seen: dict[Mode, list[tuple[Gear, bool, bool, bool]]] = {}
    for minutes in range(0, 24 * 60, 10):
        physics.advance(START + dt.timedelta(minutes=minutes))
        for i in range(6):
            r = physics.energy_state(i)
            assert 0.0 <= r.soc_pct <= 100.0 and 85.0 < r.soh_pct <= 100.0
            assert -30.0 < r.ambient_c < 15.0 and r.at == physics.now
            seen.setdefault(r.mode, []).append((r.gear, r.hv_on, r.charging, r.plugged_in))
    assert set(seen) >= {Mode.PARKED, Mode.DRIVING, Mode.CHARGING_AC}
    assert all(g == Gear.DRIVE and hv and not ch and not pl for g, hv, ch, pl in seen[Mode.DRIVING])
    assert all(g == Gear.PARK and hv and ch and pl for g, hv, ch, pl in seen[Mode.CHARGING_AC])
    assert all(g == Gear.PARK and not ch for g, _, ch, _ in seen[Mode.PARKED])
    assert physics.energy_states([4, 1]) == [physics.energy_state(4), physics.energy_state(1)]
    assert len(physics.energy_states()) == 6
    with pytest.raises(IndexError):
        physics.energy_states([6])
    state = physics.energy_state(0).to_energy_state()
    assert isinstance(state, EnergyState) and state.reported_at == physics.now
    assert abs(float(np.mean(physics.counter.soc - physics.true_soc()))) < 0.03


def test_kpis_have_their_names_and_meanings(runs: dict[str, KpiBatch]) -> None:
    k = runs["factory"]
    samples = k.to_samples(0)
    assert tuple(samples) == SAMPLE_NAMES
    assert np.all(k.vehicle_days == pytest.approx(2.0))
    assert np.all(k.charge_completed <= k.charge_started) and k.charge_started.sum() > 48
    per_km = k.energy_kwh.sum() / k.distance_km.sum()
    assert 0.25 < per_km < 0.45
    assert np.all(k.distance_km > 50.0)
    assert np.all((k.max_temp_c > -10.0) & (k.max_temp_c < 55.0))
    assert np.nanmean(k.soc_error_pct) < 1.5 and np.nanmean(k.cell_spread_mv) < 40.0
    assert k.fault_codes.sum() == sum(int(v.sum()) for v in k.faults_by_code.values())
    # The winter vans use more energy per km (cabin heating, cold pack) than the summer ones.
    assert (
        k.energy_kwh[COLD].sum() / k.distance_km[COLD].sum()
        > k.energy_kwh[WARM].sum() / k.distance_km[WARM].sum()
    )


def test_a_take_starts_a_new_window() -> None:
    physics, _ = _run(presets.factory_bms(), days=0.25, n=2)
    empty = physics.take_kpis()
    assert np.all(empty.vehicle_days == 0.0) and np.all(empty.distance_km == 0.0)
    assert math.isnan(empty.to_samples(0)["energy_kwh_per_km"]) and math.isnan(
        empty.to_samples(0)["soc_error_pct"]
    )


def test_the_bad_cold_calibration_shows_in_cold_depots_only(runs: dict[str, KpiBatch]) -> None:
    factory, bad = runs["factory"], runs["bad"]
    assert np.nanmean(bad.soc_error_pct[COLD]) > np.nanmean(factory.soc_error_pct[COLD]) + 0.8
    assert bad.fault_codes[COLD].sum() > factory.fault_codes[COLD].sum() + 10
    # Ten cold vans over two days are enough to see it.
    assert np.nanmean(bad.soc_error_pct[:10]) > np.nanmean(factory.soc_error_pct[:10]) + 0.5
    # ... but single vans overlap: the best bad van is no worse than the worst factory van.
    assert np.nanmin(bad.soc_error_pct[COLD]) < np.nanmax(factory.soc_error_pct[COLD])
    # Warm depots: the same numbers.
    np.testing.assert_allclose(bad.soc_error_pct[WARM], factory.soc_error_pct[WARM], atol=0.05)
    np.testing.assert_array_equal(bad.fault_codes[WARM], factory.fault_codes[WARM])
    np.testing.assert_array_equal(bad.charge_completed[WARM], factory.charge_completed[WARM])


def test_the_good_calibration_is_no_worse_anywhere(runs: dict[str, KpiBatch]) -> None:
    factory, good = runs["factory"], runs["good"]
    for part in (COLD, WARM):
        assert np.nanmean(good.soc_error_pct[part]) < np.nanmean(factory.soc_error_pct[part])
        assert good.fault_codes[part].sum() <= factory.fault_codes[part].sum() + 1
        rate = good.charge_completed[part].sum() / good.charge_started[part].sum()
        assert rate >= factory.charge_completed[part].sum() / factory.charge_started[part].sum() - 0.03
        assert np.mean(good.max_temp_c[part]) < np.mean(factory.max_temp_c[part]) + 1.0
    assert np.nanmean(good.soc_error_pct[COLD]) < 0.6 * np.nanmean(factory.soc_error_pct[COLD])


def test_firmware_changes_take_effect_and_misuse_is_refused() -> None:
    physics = FleetPhysics(_fleet(2, 0), seed=1, start=START, spec=FAST)
    assert physics.calibration(0, "bms") == presets.factory_bms()
    physics.set_calibration(0, "bms", presets.good_soc_improvement())
    assert physics.calibration(0, "bms") == presets.good_soc_improvement()
    assert physics.calibration(1, "bms") == presets.factory_bms()
    physics.set_calibration(0, "bms", presets.factory_bms())  # rollback
    assert physics.calibration(0, "bms") == presets.factory_bms()
    _, vcms = presets.needs_newer_vcms()
    physics.set_calibration(1, "vcms", vcms)
    assert physics._params["vcms"]["dc_max_w"].tolist() == [100e3, 150e3]
    with pytest.raises(ValueError, match="cannot go on the tms"):
        physics.set_calibration(0, "tms", presets.factory_bms())
    with pytest.raises(ValueError, match="unknown ECU type"):
        physics.set_calibration(0, "inverter", presets.factory_bms())
    with pytest.raises(IndexError):
        physics.set_calibration(2, "bms", presets.factory_bms())


def test_departure_preconditioning_warms_cold_packs_before_they_leave() -> None:
    temps = {}
    for name, tms in (("factory", presets.factory_tms()), ("precondition", presets.tms_preconditioning())):
        physics = FleetPhysics(_fleet(8, 0), seed=2, start=START, spec=FAST, calibrations={"tms": tms})
        leaving: list[float] = []
        for minutes in range(0, 32 * 60, 6):
            was = physics.prev_on_shift.copy()
            physics.advance(START + dt.timedelta(minutes=minutes))
            left = physics.prev_on_shift & ~was & ~physics.garaged
            leaving += physics.temp[left].tolist()
        temps[name] = float(np.mean(leaving))
    assert temps["precondition"] > temps["factory"] + 4.0


def test_bad_setups_are_input_errors() -> None:
    with pytest.raises(InputError, match="at least one vehicle"):
        FleetPhysics([], seed=1, start=START)
    with pytest.raises(InputError, match="unknown climate zone"):
        FleetPhysics([VehicleSetup("V", "d", "arctic", "Europe/Oslo", "urban")], seed=1, start=START)
    with pytest.raises(InputError, match="two climate zones"):
        FleetPhysics(
            [
                VehicleSetup("A", "d", "nordic", "Europe/Oslo", "urban"),
                VehicleSetup("B", "d", "temperate", "Europe/Oslo", "urban"),
            ],
            seed=1,
            start=START,
        )
    with pytest.raises(InputError, match="time zone"):
        FleetPhysics([VehicleSetup("V", "d", "nordic", "Europe/Nowhere", "urban")], seed=1, start=START)
    with pytest.raises(ValueError, match="aware"):
        FleetPhysics(_fleet(1, 0), seed=1, start=dt.datetime(2026, 1, 1))
