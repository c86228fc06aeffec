"""Measured time series in, checked arrays out: the edge where bad battery data is stopped.

A state-of-charge estimate is only as right as its inputs, and the usual faults in logged
data do not crash anything: a current in mA integrates to a SoC off by 1000x, a flipped sign
runs the SoC backwards, a gap integrates nothing. So every check here either raises an
`InputError` that names the problem and the fix, or applies a repair that is documented and
reported back (`DriveData.notes`). Nothing is repaired silently.

| Fault | Detection | Outcome |
|---|---|---|
| missing column, unparsable number, NaN/inf | per cell | error naming the row |
| time not strictly increasing | per row | error (sorting could hide a merge bug) |
| gap longer than `max_gap_s` | per row | error: split the file at the gap |
| voltage in mV | median above 100 | error |
| voltage outside the cell's window +- 0.5 V | per row | error |
| current in mA | any abs value above 20 C | error |
| temperature in kelvin / implausible | above 150 / outside -40..85 | error |
| current sign flipped | voltage rises with current | error, or negate with charge-positive |
| soc_init in percent | value above 1 | error |

The sign check regresses voltage steps on current steps: with discharge positive, any real
cell answers a current step with a voltage step of the opposite sign (-R0 dI). It only
decides when the data has at least 10 current steps above C/20; a constant-current file
cannot reveal its sign, which docs/analytics.md says.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from evota.analytics.identify import CharRecord
from evota.errors import InputError

__all__ = [
    "DriveData",
    "Segment",
    "SignConvention",
    "parse_capacity_labels",
    "parse_characterization",
    "parse_checkups",
    "parse_drive",
    "parse_segment",
    "read_csv",
]

FloatArray = NDArray[np.float64]
SignConvention = Literal["discharge-positive", "charge-positive"]
MAX_CSV_BYTES = 1024 * 1024 * 1024
MAX_C_RATE = 20.0
DRIVE_COLUMNS = ("time_s", "current_a", "voltage_v", "temperature_c")
CHAR_COLUMNS = ("test", "temperature_c", "time_s", "current_a", "voltage_v")


def read_csv(path: Path) -> dict[str, list[str]]:
    """Columns of a CSV file (plain or .gz) by header name, as text."""
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    if path.stat().st_size > MAX_CSV_BYTES:
        raise InputError(f"{path} is larger than {MAX_CSV_BYTES // 2**20} MiB; split it")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise InputError(f"{path} is not a readable gzip file: {e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text: {e}") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise InputError(f"{path} is empty")
    header = [h.strip() for h in rows[0]]
    cols: dict[str, list[str]] = {h: [] for h in header}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise InputError(f"{path} line {line}: {len(row)} fields, the header has {len(header)}")
        for h, value in zip(header, row, strict=True):
            cols[h].append(value)
    return cols


def _numbers(cols: Mapping[str, Sequence[str]], name: str) -> FloatArray:
    if name not in cols:
        hint = ""
        if name == "voltage_v" and "voltage_mv" in cols:
            hint = " (found voltage_mv: evota reads volts; divide by 1000)"
        if name == "current_a" and "current_ma" in cols:
            hint = " (found current_ma: evota reads amperes; divide by 1000)"
        raise InputError(f"missing column {name!r}{hint}; columns are {', '.join(cols) or 'none'}")
    values = np.empty(len(cols[name]))
    for k, text in enumerate(cols[name]):
        try:
            values[k] = float(text)
        except ValueError:
            raise InputError(f"row {k + 2}: {name} is {text!r}, not a number") from None
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        rows = ", ".join(str(int(b) + 2) for b in bad[:5]) + (" ..." if bad.size > 5 else "")
        raise InputError(f"{name} is missing or not finite (NaN/inf) in {bad.size} row(s): {rows}")
    return values


def _check_time(time_s: FloatArray, max_gap_s: float, where: str = "") -> None:
    if time_s.size < 2:
        raise InputError(f"{where}need at least two samples")
    dt = np.diff(time_s)
    back = np.flatnonzero(dt <= 0)
    if back.size:
        k = int(back[0])
        what = "repeats" if dt[k] == 0 else "goes backwards"
        raise InputError(
            f"{where}time_s {what} at row {k + 3} ({time_s[k + 1]:g} after {time_s[k]:g}); "
            "samples must be in time order with no duplicates"
        )
    gaps = np.flatnonzero(dt > max_gap_s)
    if gaps.size:
        k = int(gaps[0])
        raise InputError(
            f"{where}gap of {dt[k]:g} s in time_s at row {k + 3} (limit {max_gap_s:g} s): the current "
            "during it is unknown; split the file at the gap, or raise the limit if the cell rested"
        )


def _check_units(
    current: FloatArray,
    voltage: FloatArray,
    temperature: FloatArray,
    capacity_ah: float,
    window: tuple[float, float],
) -> None:
    med_v = float(np.median(voltage))
    if med_v > 100:
        raise InputError(f"voltage_v looks like millivolts (median {med_v:g}); evota reads volts per cell")
    lo, hi = window[0] - 0.5, window[1] + 0.5
    out = np.flatnonzero((voltage < lo) | (voltage > hi))
    if out.size:
        k = int(out[0])
        raise InputError(
            f"row {k + 2}: voltage_v {voltage[k]:g} V is outside this cell's {lo:g}..{hi:g} V "
            "(a pack or module voltage? evota reads one cell)"
        )
    peak = float(np.max(np.abs(current)))
    if peak > MAX_C_RATE * capacity_ah:
        raise InputError(
            f"current_a reaches {peak:g} A, over {MAX_C_RATE:g}C for this {capacity_ah:g} Ah cell: "
            "is it in mA, or a pack current? evota reads one cell's current in amperes"
        )
    if float(np.max(temperature)) > 150:
        raise InputError("temperature_c looks like kelvin (above 150); subtract 273.15")
    bad_t = np.flatnonzero((temperature < -40) | (temperature > 85))
    if bad_t.size:
        k = int(bad_t[0])
        raise InputError(f"row {k + 2}: temperature_c {temperature[k]:g} °C is outside -40..85 °C")


def current_sign_slope(current: FloatArray, voltage: FloatArray, capacity_ah: float) -> float | None:
    """dV/dI over the current steps (ohm), or None when there are too few to tell.

    Negative for discharge-positive data (V = OCV - R0 I): the basis of the sign check.
    """
    di, dv = np.diff(current), np.diff(voltage)
    steps = np.abs(di) > capacity_ah / 20.0
    if int(steps.sum()) < 10:
        return None
    return float(np.sum(di[steps] * dv[steps]) / np.sum(di[steps] ** 2))


@dataclasses.dataclass(frozen=True, eq=False)
class DriveData:
    """A checked drive (or any operating) record for one cell."""

    time_s: FloatArray
    current_a: FloatArray
    voltage_v: FloatArray
    temperature_c: FloatArray
    soc_init: float | None
    notes: tuple[str, ...] = ()


def parse_drive(
    cols: Mapping[str, Sequence[str]],
    *,
    capacity_ah: float,
    voltage_window_v: tuple[float, float],
    sign: SignConvention = "discharge-positive",
    max_gap_s: float = 10.0,
) -> DriveData:
    """Check a drive record against the cell it claims to be from (see the module table)."""
    time_s, current, voltage, temperature = (_numbers(cols, c) for c in DRIVE_COLUMNS)
    _check_time(time_s, max_gap_s)
    notes: list[str] = []
    if sign == "charge-positive":
        current = -current
        notes.append("current negated: the input was declared charge-positive")
    _check_units(current, voltage, temperature, capacity_ah, voltage_window_v)
    slope = current_sign_slope(current, voltage, capacity_ah)
    if slope is not None and slope > 0:
        raise InputError(
            "current sign looks flipped: voltage rises when current rises "
            f"(dV/dI = {slope * 1000:+.1f} mOhm). "
            "evota takes positive current as discharge; pass --current-sign charge-positive if the "
            "log counts charge as positive"
        )
    if slope is None:
        notes.append("too few current steps to check the current's sign")
    soc_init: float | None = None
    if "soc_init" in cols and cols["soc_init"] and cols["soc_init"][0].strip():
        soc_init = float(_numbers({"soc_init": cols["soc_init"][:1]}, "soc_init")[0])
        if 1.0 < soc_init <= 100.0:
            raise InputError(f"soc_init {soc_init:g} looks like percent; evota reads a fraction 0..1")
        if not 0.0 <= soc_init <= 1.0:
            raise InputError(f"soc_init {soc_init:g} is outside 0..1")
    return DriveData(time_s, current, voltage, temperature, soc_init, tuple(notes))


def parse_characterization(cols: Mapping[str, Sequence[str]]) -> dict[tuple[str, float], CharRecord]:
    """Group a characterization file into tests by (test, temperature_c) and check each."""
    if "test" not in cols:
        raise InputError(f"missing column 'test'; columns are {', '.join(cols) or 'none'}")
    kinds = np.asarray([k.strip().lower() for k in cols["test"]])
    temps, time_s, current, voltage = (_numbers(cols, c) for c in CHAR_COLUMNS[1:])
    unknown = sorted(set(kinds.tolist()) - {"ocv", "hppc"})
    if unknown:
        raise InputError(f"unknown test kind(s) {', '.join(unknown)}: expected 'ocv' or 'hppc'")
    if float(np.median(voltage)) > 100:
        raise InputError("voltage_v looks like millivolts; evota reads volts per cell")
    out: dict[tuple[str, float], CharRecord] = {}
    for kind in ("ocv", "hppc"):
        for temp in np.unique(temps[kinds == kind]):
            sel = (kinds == kind) & (temps == temp)
            rec = CharRecord(time_s[sel], current[sel], voltage[sel])
            _check_time(rec.time_s, max_gap_s=3600.0, where=f"{kind} test at {temp:g} °C: ")
            out[(kind, float(temp))] = rec
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class Segment:
    """A short checked record (a charge segment or a pulse) for one cell."""

    time_s: FloatArray
    current_a: FloatArray
    voltage_v: FloatArray
    temperature_c: float | None
    notes: tuple[str, ...] = ()


def _segment(
    time_s: FloatArray,
    current: FloatArray,
    voltage: FloatArray,
    temperature: FloatArray | None,
    *,
    max_gap_s: float,
    where: str,
) -> Segment:
    _check_time(time_s, max_gap_s, where)
    if float(np.median(voltage)) > 100:
        raise InputError(f"{where}voltage_v looks like millivolts; evota reads volts per cell")
    if float(np.max(voltage)) > 10 or float(np.min(voltage)) < 0.5:
        raise InputError(f"{where}voltage_v outside 0.5..10 V: a pack voltage? evota reads one cell")
    temp: float | None = None
    if temperature is not None:
        if float(np.max(temperature)) > 150:
            raise InputError(f"{where}temperature_c looks like kelvin (above 150); subtract 273.15")
        if float(np.min(temperature)) < -40 or float(np.max(temperature)) > 85:
            raise InputError(f"{where}temperature_c is outside -40..85 °C")
        temp = float(np.median(temperature))
    return Segment(time_s, current, voltage, temp)


def parse_segment(
    cols: Mapping[str, Sequence[str]],
    *,
    sign: SignConvention = "discharge-positive",
    max_gap_s: float = 60.0,
) -> Segment:
    """A charge segment or pulse: time_s, current_a, voltage_v[, temperature_c]."""
    time_s, current, voltage = (_numbers(cols, c) for c in DRIVE_COLUMNS[:3])
    temperature = _numbers(cols, "temperature_c") if "temperature_c" in cols else None
    seg = _segment(time_s, current, voltage, temperature, max_gap_s=max_gap_s, where="")
    if sign == "charge-positive":
        return Segment(
            seg.time_s, -seg.current_a, seg.voltage_v, seg.temperature_c,
            ("current negated: the input was declared charge-positive",),
        )  # fmt: skip
    return seg


CHECKUP_COLUMNS = ("cell", "cycle", "test", "time_s", "current_a", "voltage_v")


def parse_checkups(cols: Mapping[str, Sequence[str]]) -> dict[tuple[str, int], dict[str, Segment]]:
    """Check-ups by (cell, cycle): {"charge": ..., "pulse": ...}, as the ageing fixture has them.

    Every segment is assumed at 25 °C unless a temperature_c column says otherwise.
    """
    for c in CHECKUP_COLUMNS[:3]:
        if c not in cols:
            raise InputError(f"missing column {c!r}; columns are {', '.join(cols) or 'none'}")
    cells = np.asarray([c.strip() for c in cols["cell"]])
    tests = np.asarray([t.strip().lower() for t in cols["test"]])
    cycles = _numbers(cols, "cycle")
    if np.any(cycles != np.round(cycles)) or np.any(cycles < 0):
        raise InputError("cycle must be a whole number of cycles, 0 or more")
    unknown = sorted(set(tests.tolist()) - {"charge", "pulse"})
    if unknown:
        raise InputError(f"unknown test kind(s) {', '.join(unknown)}: expected 'charge' or 'pulse'")
    time_s, current, voltage = (_numbers(cols, c) for c in CHECKUP_COLUMNS[3:])
    temperature = _numbers(cols, "temperature_c") if "temperature_c" in cols else np.full(cells.size, 25.0)
    groups: dict[tuple[str, int, str], list[int]] = {}
    for row, key in enumerate(zip(cells.tolist(), cycles.astype(int).tolist(), tests.tolist(), strict=True)):
        groups.setdefault(key, []).append(row)
    out: dict[tuple[str, int], dict[str, Segment]] = {}
    for (cell, cycle, test), rows in groups.items():
        sel = np.asarray(rows)
        out.setdefault((cell, cycle), {})[test] = _segment(
            time_s[sel], current[sel], voltage[sel], temperature[sel],
            max_gap_s=600.0, where=f"cell {cell} cycle {cycle} {test}: ",
        )  # fmt: skip
    return out


def parse_capacity_labels(cols: Mapping[str, Sequence[str]]) -> dict[tuple[str, int], float]:
    """Measured capacities by (cell, cycle): columns cell, cycle, capacity_ah."""
    if "cell" not in cols:
        raise InputError(f"missing column 'cell'; columns are {', '.join(cols) or 'none'}")
    cycles, capacity = _numbers(cols, "cycle"), _numbers(cols, "capacity_ah")
    if np.any(capacity <= 0) or np.any(capacity > 1000):
        raise InputError("capacity_ah must be positive and in Ah (not mAh)")
    return {(c.strip(), int(n)): float(q) for c, n, q in zip(cols["cell"], cycles, capacity, strict=True)}
