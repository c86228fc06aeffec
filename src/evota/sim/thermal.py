"""The pack's lumped thermal model: one heat capacity, convection, a heater and a cooler.

    C dT/dt = Q_cells + P_heat - P_cool - hA (T - T_ambient)

Q_cells is the I²R heat of R0 plus the losses in the two RC resistors. The conductance hA
depends on what the van is doing (parked: insulated pack, time constant about ten
hours; driving: air flow and coolant loop). Over one step the inputs are held, so the
step is the exact solution of the linear ODE (no stability limit on the step length).

The hottest cell runs above the pack mean by a hot-spot term proportional to the heat
generated (internal conduction, position in the coolant loop); `max_cell_c` is what a
BMS's hottest sensor reads and what the max-temperature KPI reports.

Heater and cooler powers are decided by the TMS's calibration (`calibration.
ThermalConditioning`, applied in `step`); this module only integrates. All arrays are
per vehicle, shape (n,).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

__all__ = ["ThermalSpec", "thermal_step"]

FloatArray = NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class ThermalSpec:
    heat_capacity_j_k: float = 420_000.0  # ~450 kg of cells, modules and coolant
    ha_parked_w_k: float = 12.0  # tau about 9.7 h
    ha_driving_w_k: float = 30.0
    ha_charging_w_k: float = 16.0  # coolant pump running
    hotspot_k_per_w: float = 1.5e-3  # 4 kW of heat puts the hottest cell 6 K above the mean
    cooler_kw: float = 6.0
    cooler_gain_kw_per_k: float = 1.5  # proportional cooling above the TMS threshold
    cooler_cop: float = 2.5
    heater_efficiency: float = 0.95


def thermal_step(
    spec: ThermalSpec,
    temperature_c: FloatArray,
    ambient_c: FloatArray,
    heat_w: FloatArray,
    ha_w_k: FloatArray,
    dt_s: float,
) -> FloatArray:
    """Pack temperature after `dt_s` with the net heat input held (exact for the linear ODE)."""
    t_inf = ambient_c + heat_w / ha_w_k
    decay = np.exp(-dt_s * ha_w_k / spec.heat_capacity_j_k)
    return np.asarray(t_inf + (temperature_c - t_inf) * decay)
