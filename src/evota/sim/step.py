"""One time step of the whole fleet (the arithmetic behind `FleetPhysics.advance`).

The order is the order of a real minute: duty events (departures unplug, returns plug
in), charge-session decisions, the TMS, power or current, the pack's electrical and
thermal step, faults and session ends, the BMS's count and resets, and the KPIs.
Everything is an array over vehicles; the only branches are on `any()` of a mask, to
skip work nobody needs this step. See `physics` for the interface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from evota.sim.arrays import some
from evota.sim.charging import allowed_current
from evota.sim.duty import Mode
from evota.sim.kpis import FaultCode
from evota.sim.thermal import thermal_step

if TYPE_CHECKING:
    from evota.sim.physics import FleetPhysics

__all__ = ["step"]

FloatArray = NDArray[np.float64]
AC, DC = np.int8(Mode.CHARGING_AC), np.int8(Mode.CHARGING_DC)


def step(fp: FleetPhysics, dt: float) -> None:
    """Advance the fleet by `dt` seconds (a base step, or a quiet step with nobody on shift)."""
    sp, t = fp.spec, fp.t
    pk, ctr, ses, kpi, roster = fp.pack, fp.counter, fp.sessions, fp.kpi, fp.roster
    cell, th = sp.pack.cell, sp.thermal
    bms, tms, vcms = fp._params["bms"], fp._params["tms"], fp._params["vcms"]
    bms_rows, bms_idx = fp._rows["bms"], fp._row_idx["bms"]
    n_series = sp.pack.n_series

    # 1. Time, duty, weather.
    sod, day, outside = fp._local()
    roster.plan(day)
    duty = roster.now(sod)
    # A van nearly empty ends its shift and heads home (dispatch gives its stops to others).
    empty = duty.on_shift & (ses.kind == 0) & (ctr.soc < sp.limp_home_soc)
    if some(empty):
        roster.end_shift(empty, sod)
        duty = roster.now(sod)
    # A van at a DC charger stays out until it leaves the charger: target, fault, or the
    # driver's patience (its planned return waits for it).
    at_dc = (ses.kind == DC) | (ses.retry_kind == DC)
    over = at_dc & (t >= ses.dc_until)
    if some(over):
        ses.unplug(over, ctr.soc)
        fp.plugged &= ~over
        at_dc &= ~over
    on_shift = duty.on_shift | at_dc
    fp.ambient = amb = fp.surroundings_c(outside, on_shift)
    departed = on_shift & ~fp.prev_on_shift
    returned = fp.prev_on_shift & ~on_shift
    fp.prev_on_shift = on_shift

    # 2. Departures unplug; returns plug in at the depot.
    if some(departed) or some(returned):
        ses.unplug(departed, ctr.soc)
        fp.plugged &= ~(departed | returned)
        arrive = returned & roster.plugs
        fp.plugged |= arrive
        ses.new_plug_in(arrive)
        ses.depot_done &= ~arrive
        fp.ac_allowed_at = np.where(arrive, t + roster.smart_start_in_s(sod), fp.ac_allowed_at)

    # 3. DC stops: lunch top-ups and low-SoC detours.
    if some(duty.on_shift):
        idle = duty.on_shift & (ses.kind == 0) & ~np.isfinite(ses.retry_at)
        need = np.where(roster.dc_user, vcms["dc_trigger"], sp.lunch_dc_soc)
        lunch_dc = idle & duty.at_lunch & (ctr.soc < need) & (fp.dc_lunch_day != day)
        low = idle & duty.driving & (ctr.soc < sp.low_soc_dc)
        start_dc = lunch_dc | low
        if some(start_dc):
            ses.new_plug_in(start_dc)
            ses.start(start_dc, Mode.CHARGING_DC, vcms["dc_target"])
            ses.dc_until = np.where(start_dc, t + vcms["dc_max_s"], ses.dc_until)
            fp.dc_lunch_day = np.where(lunch_dc, day, fp.dc_lunch_day)
            fp.plugged |= start_dc

    # 4. Depot AC: start when allowed, retries after faults, top-ups after a long stand.
    retry = ses.due_retries(t)
    if some(retry):
        ses.start(retry & (ses.retry_kind == DC) & (t < ses.dc_until), Mode.CHARGING_DC, vcms["dc_target"])
        ses.start(
            retry & (ses.retry_kind == AC) & fp.plugged & ~on_shift, Mode.CHARGING_AC, vcms["ac_target"]
        )
    at_depot = fp.plugged & ~on_shift & (ses.kind == 0) & ~np.isfinite(ses.retry_at)
    if some(at_depot):
        top_up = (
            ses.depot_done & (ctr.soc < vcms["ac_target"] - 0.05) & (ses.retries < sp.charger.max_retries)
        )
        ses.depot_done &= ~(at_depot & top_up)
        want_ac = at_depot & ~ses.depot_done & (t >= fp.ac_allowed_at) & (ctr.soc < vcms["ac_target"] - 0.002)
        if some(want_ac):
            ses.start(want_ac, Mode.CHARGING_AC, vcms["ac_target"])

    charging = ses.kind != 0
    any_charging = bool(some(charging))
    driving = duty.driving & ~charging
    temp = fp.temp

    # 5. The TMS: pre-conditioning (plugged in, before departure), heating while charging, cooling.
    plugged = fp.plugged
    pre = (tms["precondition"] > 0) & plugged & ~on_shift & (duty.to_departure_s <= tms["lead_s"])
    pre &= temp < tms["pre_below_c"]
    warm = (tms["charge_heating"] > 0) & charging & (temp < tms["heat_below_c"])
    if some(pre) or some(warm):
        fp.heat_target = np.where(
            pre, tms["pre_target_c"], np.where(warm, tms["heat_target_c"], fp.heat_target)
        )
    heating = (pre | warm | fp.heating) & (temp < fp.heat_target) & plugged
    fp.heating = heating
    heater_w = np.where(heating, tms["heater_w"], 0.0)
    hot = temp - tms["cool_above_c"]
    cool_w = np.where(
        (hot > 0.0) & (driving | plugged),
        np.minimum(th.cooler_kw * 1e3, th.cooler_gain_kw_per_k * 1e3 * (hot + 1.0)),
        0.0,
    )
    tms_w = heater_w / th.heater_efficiency + cool_w / th.cooler_cop  # electrical

    # 6. Power while driving (the TMS on the battery unless plugged), current while charging.
    ev = cell.evaluate(pk.soc_mean, temp)
    resp = pk.step_response(ev, dt)
    v_pack = n_series * ev.ocv
    c_limit = bms_rows.c_rate(bms_idx, temp)
    power = np.where(plugged, 0.0, tms_w)
    power_ms = km = np.zeros(fp.n)
    safe_c = cell.plating_c_rate(pk.soc_mean + pk.dev_hi, temp) * fp.plating_factor * (1.0 - 2.0 * pk.fade)
    regen_plating = np.zeros(fp.n, dtype=bool)
    drivers = np.flatnonzero(driving)
    if drivers.size:
        cyc = duty.cycle_idx[drivers]
        window = fp.cyc_pos[drivers] % fp.table.n_windows[cyc]
        mass = (fp.mass_weights[0][drivers], fp.mass_weights[1][drivers])
        traction, regen, ms, peak, km_d = fp.table.lookup(cyc, window, mass)
        # Regen is charging in pulses: the BMS caps the pulse current (twice its continuous
        # limit), which trims the window's regen energy in proportion.
        share = vcms["regen_fraction"][drivers]
        v_d = v_pack[drivers]
        pulse_a = np.minimum(share * peak / v_d, 2.0 * c_limit[drivers] * bms["capacity_ah"][drivers])
        trim = np.where(peak > 0.0, np.minimum(pulse_a * v_d / np.maximum(share * peak, 1e-9), 1.0), 1.0)
        regen = share * regen * trim
        regen_plating[drivers] = pulse_a / pk.capacity_ah[drivers] > sp.plating_pulse_factor * safe_c[drivers]
        t_amb = amb[drivers]
        cabin_w = np.minimum(sp.cabin_heat_kw_per_k * 1e3 * np.maximum(16.0 - t_amb, 0.0), 4e3)
        cabin_w += sp.cabin_cool_kw_per_k * 1e3 * np.maximum(t_amb - 24.0, 0.0)
        power[drivers] += traction - regen + sp.van.aux_base_kw * 1e3 + cabin_w
        power_ms, km = np.zeros(fp.n), np.zeros(fp.n)
        power_ms[drivers], km[drivers] = ms, km_d
    current = pk.solve_current(ev, resp, power).current_a
    cv_bound = command = None
    if any_charging:
        charger_w = np.where(
            ses.kind == AC,
            sp.charger.ac_kw * 1e3 * sp.charger.ac_efficiency,
            np.minimum(vcms["dc_max_w"], sp.charger.dc_station_kw * 1e3),
        )
        command, cv_bound = allowed_current(
            pk,
            ev,
            resp,
            bms,
            c_rate=c_limit,
            soc_bms=ctr.soc,
            derate=ses.derate,
            supply_w=charger_w - tms_w - sp.charger.hv_load_w,
        )
        command = np.where(charging, command, 0.0)
        cv_bound &= charging
        current = np.where(charging, -command, current)

    # 7. The pack: KPI references first (state before this step), then RC, charge and heat.
    rest_before = fp.was_resting
    resting = ~driving & ~charging & (np.abs(current) < sp.rest_current_a)
    ended_rest = rest_before & ~resting & (ctr.rest_s >= sp.reference_rest_s)
    if some(ended_rest):
        kpi.soc_err_sum += np.where(ended_rest, np.abs(ctr.soc - pk.soc_mean), 0.0)
        kpi.rest_samples += ended_rest
        upper = ended_rest & (ctr.soc >= sp.spread_min_soc)
        kpi.spread_sum += np.where(upper, pk.spread_v, 0.0)
        kpi.spread_samples += upper
    pk.rc_step(ev, resp, current)
    eta = pk.overpotential(ev, current)
    v_term = n_series * (ev.ocv - eta)
    i_ms = np.where(driving, power_ms / np.maximum(v_term, 1.0) ** 2, current * current)
    heat_w = n_series * pk.r_age * ((ev.r0 + ev.r1) * i_ms + pk.v2 * pk.v2 / ev.r2)
    capacity = pk.capacity_ah
    excess_c = None
    if any_charging:
        excess_c = np.where(charging, np.maximum(-current / capacity - safe_c, 0.0), 0.0)
        fp._plated_ah += excess_c * capacity * dt / 3600.0
    pk.pass_charge(current, dt)
    awake = driving | charging | (plugged & (heating | (cool_w > 0.0)))
    ctr.count(current, awake, bms["capacity_ah"], dt)
    ha = np.where(driving, th.ha_driving_w_k, np.where(charging, th.ha_charging_w_k, th.ha_parked_w_k))
    fp.temp = temp = thermal_step(th, temp, amb, heat_w + heater_w - cool_w, ha, dt)
    hottest = temp + th.hotspot_k_per_w * heat_w * fp.hotspot
    np.maximum(kpi.max_temp, hottest, out=kpi.max_temp)

    # 8. Faults; the BMS aborts a charge on any of its own. Then sessions that are done.
    over_v = kpi.raise_faults(
        FaultCode.CELL_OVERVOLTAGE, pk.element_voltage("hi", ev, eta) > sp.hw_max_cell_v
    )
    kpi.raise_faults(FaultCode.CELL_UNDERVOLTAGE, pk.element_voltage("lo", ev, eta) < cell.voltage_min_v)
    over_t = kpi.raise_faults(FaultCode.OVERTEMPERATURE, hottest > sp.max_cell_temp_c)
    plating = regen_plating
    if excess_c is not None:
        plating = plating | (excess_c > 0.0)
    plating = kpi.raise_faults(FaultCode.PLATING_RISK, plating)
    if excess_c is not None and command is not None and cv_bound is not None:
        _end_sessions(fp, charging, plating | over_v | over_t, cv_bound, command, temp)

    # 9. The BMS at rest: a long enough rest resets its count to the OCV (twice if long).
    ctr.resets_in_rest[~resting | ~rest_before] = 0
    ctr.rest_s = np.where(resting, ctr.rest_s + dt, 0.0)
    fp.was_resting = resting
    first = (ctr.resets_in_rest == 0) & (
        ctr.rest_s >= np.where(temp < bms["cold_below_c"], bms["cold_rest_s"], bms["rest_s"])
    )
    second = (ctr.resets_in_rest == 1) & (bms["second_reset_s"] > 0) & (ctr.rest_s >= bms["second_reset_s"])
    due = resting & (first | second)
    if some(due):
        measured = ev.ocv - pk.r_age * (pk.v1 + pk.v2) + 0.001 * fp.noise() + ctr.voltage_bias_v
        jump = ctr.reset(due, bms_rows.believed_soc(bms_idx, measured, temp), bms["reset_gain"])
        kpi.raise_faults(FaultCode.SOC_JUMP, np.abs(jump) > sp.soc_jump_fault)

    # 10. KPIs and bookkeeping.
    kpi.energy_kwh += np.where(driving, current * v_term * (dt / 3.6e6), 0.0)
    kpi.distance_km += km
    fp.cyc_pos += driving
    mode = np.where(driving, np.int8(Mode.DRIVING), np.where(charging, ses.kind, np.int8(Mode.PARKED)))
    kpi.new_operating_cycle(mode != fp.mode)
    fp.mode = mode
    fp.hv_on = awake
    fp._throughput_ah += np.abs(current) * (dt / 3600.0)
    fp._since_sync += dt
    if fp._since_sync >= sp.sync_s - 1e-6:
        balance = (resting & (ctr.rest_s >= sp.balance_rest_s)) | charging
        balance &= ev.ocv - eta >= bms["balance_min_v"]
        elapsed, fp._since_sync = fp._since_sync, 0.0
        pk.sync(elapsed, slope=ev.slope, eta_v=eta, balance_enabled=balance, threshold_v=bms["balance_v"])
    fp._since_ageing += dt
    if fp._since_ageing >= sp.ageing_every_s:
        _age(fp, temp)


def _end_sessions(
    fp: FleetPhysics,
    charging: NDArray[np.bool_],
    fault: NDArray[np.bool_],
    cv_bound: NDArray[np.bool_],
    command: FloatArray,
    temp: FloatArray,
) -> None:
    """Abort on a fault (retry later, derated); end at the target or at the voltage limit."""
    sp, ses, bms = fp.spec, fp.sessions, fp._params["bms"]
    abort = charging & fault
    if some(abort):
        gave_up_dc = abort & (ses.kind == DC) & (ses.retries >= sp.charger.max_retries)
        ses.fault(abort, fp.t, bms["fault_derate"])
        fp.plugged &= ~gave_up_dc
    still = ses.kind != 0
    done = still & (fp.counter.soc >= ses.target)
    full = still & cv_bound & (command < sp.charger.taper_end_c_rate * bms["capacity_ah"])
    done |= full
    if not some(done):
        return
    full_reset = full & (bms["full_reset"] > 0)
    if some(full_reset):
        at_limit = fp._rows["bms"].believed_soc(fp._row_idx["bms"], bms["max_cell_v"], temp)
        fp.counter.soc = np.where(full_reset, at_limit, fp.counter.soc)
    ses.depot_done |= done & (ses.kind == AC)
    fp.plugged &= ~(done & (ses.kind == DC))
    ses.end(done, np.ones_like(done))


def _age(fp: FleetPhysics, temperature_c: FloatArray) -> None:
    sp = fp.spec
    fp.ageing.advance(
        sp.ageing,
        days=fp._since_ageing / 86400.0,
        temperature_c=temperature_c,
        soc=fp.pack.soc_mean,
        full_cycles=fp._throughput_ah / (2.0 * fp.pack.capacity_ah),
        plated_ah=fp._plated_ah,
    )
    fp.pack.fade = fp.ageing.capacity_fade
    fp.pack.r_age = fp.ageing.resistance_factor(sp.ageing)
    fp.counter.soh = (1.0 - fp.pack.fade) * (1.0 + fp._soh_error)
    fp._throughput_ah[:] = 0.0
    fp._plated_ah[:] = 0.0
    fp._since_ageing = 0.0
    if int(fp.t) % 86400 < sp.ageing_every_s:
        fp.pack.recentre()
