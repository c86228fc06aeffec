"""Bad input is stopped at the edge with a message that names the fault, never estimated on.

Each case starts from a clean slice of the 25 °C drive fixture and injects one fault.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from evota.analytics.timeseries import current_sign_slope, parse_characterization, parse_drive
from evota.errors import InputError

from .conftest import load_drive

Cols = dict[str, list[str]]


def clean(n: int = 900) -> Cols:
    d = load_drive(25)
    names = ("time_s", "current_a", "voltage_v", "temperature_c")
    return {k: [repr(float(x)) for x in d[k][:n]] for k in names}


def parse(cols: Cols, **kw: object) -> object:
    return parse_drive(cols, capacity_ah=5.0, voltage_window_v=(2.5, 4.4), **kw)  # type: ignore[arg-type]


def scaled(col: str, factor: float) -> Callable[[Cols], None]:
    def f(c: Cols) -> None:
        c[col] = [repr(float(x) * factor) for x in c[col]]

    return f


def shifted(col: str, offset: float) -> Callable[[Cols], None]:
    def f(c: Cols) -> None:
        c[col] = [repr(float(x) + offset) for x in c[col]]

    return f


def set_row(col: str, row: int, value: str) -> Callable[[Cols], None]:
    def f(c: Cols) -> None:
        c[col][row] = value

    return f


def swap_rows(a: int, b: int) -> Callable[[Cols], None]:
    def f(c: Cols) -> None:
        for col in c.values():
            col[a], col[b] = col[b], col[a]

    return f


def shift_after(row: int, seconds: float) -> Callable[[Cols], None]:
    def f(c: Cols) -> None:
        c["time_s"] = [repr(float(t) + (seconds if k >= row else 0.0)) for k, t in enumerate(c["time_s"])]

    return f


def rename(old: str, new: str) -> Callable[[Cols], None]:
    def f(c: Cols) -> None:
        c[new] = c.pop(old)

    return f


def add_soc_init(value: str) -> Callable[[Cols], None]:
    def f(c: Cols) -> None:
        c["soc_init"] = [value] + [""] * (len(c["time_s"]) - 1)

    return f


BAD_INPUT = {
    "nan voltage": (
        set_row("voltage_v", 10, "nan"),
        "voltage_v is missing or not finite (NaN/inf) in 1 row(s): 12",
    ),
    "empty current": (set_row("current_a", 3, ""), "row 5: current_a is '', not a number"),
    "text in time": (set_row("time_s", 7, "12:00:07"), "row 9: time_s is '12:00:07', not a number"),
    "unsorted time": (swap_rows(100, 101), "time_s goes backwards at row 103"),
    "duplicate time": (set_row("time_s", 51, "50.0"), "time_s repeats at row 53"),
    "gap": (shift_after(300, 600.0), "gap of 601 s in time_s at row 302"),
    "voltage in mV": (scaled("voltage_v", 1000.0), "voltage_v looks like millivolts"),
    "module voltage": (scaled("voltage_v", 2.0), "outside this cell's 2..4.9 V"),
    "current in mA": (scaled("current_a", 1000.0), "is it in mA"),
    "temperature in K": (shifted("temperature_c", 273.15), "temperature_c looks like kelvin"),
    "flipped current sign": (scaled("current_a", -1.0), "current sign looks flipped"),
    "missing column": (lambda c: c.pop("voltage_v"), "missing column 'voltage_v'"),
    "mV column name": (rename("voltage_v", "voltage_mv"), "found voltage_mv: evota reads volts"),
    "soc_init in percent": (add_soc_init("80"), "soc_init 80 looks like percent"),
    "soc_init negative": (add_soc_init("-0.1"), "soc_init -0.1 is outside 0..1"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
def test_bad_drive_input_is_refused_with_a_clear_message(case: str) -> None:
    inject, message = BAD_INPUT[case]
    cols = clean()
    parse(cols)  # the clean slice passes, so the fault alone is what is refused
    inject(cols)
    with pytest.raises(InputError) as e:
        parse(cols)
    assert message in e.value.message


def test_charge_positive_logs_are_repaired_by_negating_and_say_so() -> None:
    cols = clean()
    scaled("current_a", -1.0)(cols)
    data = parse(cols, sign="charge-positive")
    reference = parse(clean())
    assert np.array_equal(data.current_a, reference.current_a)  # type: ignore[attr-defined]
    assert "current negated" in data.notes[0]  # type: ignore[attr-defined]


def test_a_constant_current_log_cannot_show_its_sign_and_the_result_says_so() -> None:
    cols = clean(50)
    cols["current_a"] = ["2.5"] * 50
    data = parse(cols)
    assert any("too few current steps" in n for n in data.notes)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("r0", "expected_sign"),
    [(0.02, -1.0), (0.005, -1.0), (-0.02, 1.0)],
)
def test_sign_slope_recovers_the_ohmic_response(r0: float, expected_sign: float) -> None:
    rng = np.random.default_rng(0)
    current = np.repeat(rng.uniform(-5, 20, 40), 5)
    voltage = 3.7 - r0 * current + rng.normal(0, 0.001, current.size)
    slope = current_sign_slope(current, voltage, 5.0)
    assert slope is not None
    assert np.sign(slope) == expected_sign
    assert slope == pytest.approx(-r0, rel=0.1)


def test_characterization_groups_by_test_and_temperature_and_names_unknown_kinds() -> None:
    cols = {
        "test": ["ocv", "ocv", "hppc", "hppc", "ocv", "ocv"],
        "temperature_c": ["25", "25", "25", "25", "0", "0"],
        "time_s": ["0", "1", "0", "1", "0", "1"],
        "current_a": ["0.25"] * 6,
        "voltage_v": ["4.1"] * 6,
    }
    tests = parse_characterization(cols)
    assert sorted(tests) == [("hppc", 25.0), ("ocv", 0.0), ("ocv", 25.0)]
    cols["test"][0] = "gitt"
    with pytest.raises(InputError, match="unknown test kind"):
        parse_characterization(cols)
