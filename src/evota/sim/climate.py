"""Ambient temperature at a depot: climate zone, season, hour of day and weather.

    T = mean - seasonal * cos(2 pi (day - 20) / 365.25)     (coldest around 20 January;
                                                             half a year later in the south)
        - daily * cos(2 pi (local hour - 3) / 24)          (coldest at 03:00, warmest 15:00)
        + weather(t)                                        (smooth anomalies, days long)

The zone figures are rounded climate normals of a representative city (monthly means
and typical daily ranges): nordic ~ Oslo/Stockholm, continental ~ Warsaw/Munich,
temperate ~ London/Paris, mediterranean ~ Barcelona/Athens, hot-arid ~ Phoenix/Riyadh.
The weather anomaly is a sum of a few sinusoids with periods of 1.5 to 12 days and
random phases, scaled to the zone's day-to-day standard deviation, plus a small
intra-day wobble: smooth in time, so a cold snap lasts days as real ones do.

Everything is a pure function of (zone, instant, seed): the same seed gives the same
weather whichever way time is walked. The hemisphere comes from the IANA time zone
(a southern-hemisphere zone flips the seasons); pass it explicitly to override.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import zlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from evota.errors import InputError

__all__ = ["ZONES", "ClimateZone", "DepotClimate", "ambient_c", "hemisphere_of", "local_calendar", "zone"]

FloatArray = NDArray[np.float64]

_SOUTHERN_PREFIXES = (
    "Australia/",
    "Antarctica/",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Pacific/Fiji",
    "Africa/Johannesburg",
    "Africa/Maputo",
    "Africa/Harare",
    "Africa/Windhoek",
    "America/Argentina/",
    "America/Buenos_Aires",
    "America/Santiago",
    "America/Sao_Paulo",
    "America/Montevideo",
    "America/Asuncion",
    "America/La_Paz",
    "America/Lima",
    "Indian/Mauritius",
    "Indian/Reunion",
)
_COLDEST_DAY = 20.0  # day of year of the coldest seasonal mean (northern hemisphere)


@dataclasses.dataclass(frozen=True)
class ClimateZone:
    name: str
    annual_mean_c: float
    seasonal_amplitude_c: float  # half the difference between the warmest and coldest month
    daily_amplitude_c: float  # half the typical daily range
    weather_sigma_c: float  # day-to-day standard deviation of the anomaly


ZONES: dict[str, ClimateZone] = {
    z.name: z
    for z in (
        ClimateZone("nordic", 6.0, 10.5, 3.5, 3.5),
        ClimateZone("continental", 8.5, 11.0, 4.5, 3.5),
        ClimateZone("temperate", 11.5, 7.0, 4.0, 2.5),
        ClimateZone("mediterranean", 17.0, 8.0, 4.5, 2.0),
        ClimateZone("hot-arid", 25.5, 10.0, 7.0, 2.0),
    )
}


def hemisphere_of(time_zone: str) -> str:
    """'south' for IANA zones south of the equator that this table knows, else 'north'."""
    return "south" if time_zone.startswith(_SOUTHERN_PREFIXES) else "north"


def zone(name: str) -> ClimateZone:
    try:
        return ZONES[name]
    except KeyError:
        raise InputError(f"unknown climate zone {name!r} (known: {', '.join(ZONES)})") from None


class DepotClimate:
    """The ambient temperature of several depots at once (arrays over depots, shape (D,)).

    Each depot's weather is drawn from (seed, place): deterministic, independent of which
    other depots exist, and the same as `ambient_c` gives for that depot.
    """

    N_SLOW = 5
    N_FAST = 3

    def __init__(self, zone_names: Sequence[str], places: Sequence[str], southern: Sequence[bool], seed: int):
        climates = [zone(z) for z in zone_names]
        self.mean = np.array([c.annual_mean_c for c in climates])
        self.seasonal = np.array([c.seasonal_amplitude_c for c in climates])
        self.daily = np.array([c.daily_amplitude_c for c in climates])
        self.southern = np.asarray(southern, dtype=bool)
        k = self.N_SLOW + self.N_FAST
        self.period_s = np.empty((len(climates), k))
        self.phase = np.empty((len(climates), k))
        self.amplitude = np.empty((len(climates), k))
        for d, (climate, place) in enumerate(zip(climates, places, strict=True)):
            rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(place.encode())])
            self.period_s[d] = np.concatenate(
                [rng.uniform(1.5, 12.0, self.N_SLOW) * 86400.0, rng.uniform(3.0, 10.0, self.N_FAST) * 3600.0]
            )
            self.phase[d] = rng.uniform(0.0, 2.0 * np.pi, k)
            weights = np.concatenate([rng.uniform(0.5, 1.0, self.N_SLOW), np.full(self.N_FAST, 0.12)])
            # A sum of sinusoids with amplitudes a_i has variance sum(a_i^2)/2.
            norm = np.sqrt(2.0 / np.sum(weights[: self.N_SLOW] ** 2))
            self.amplitude[d] = weights * climate.weather_sigma_c * norm

    def climatology_c(self, day_of_year: FloatArray, local_hour: FloatArray) -> FloatArray:
        """Expected temperature at each depot's local day of year and hour, without weather."""
        season_day = np.asarray(day_of_year) - _COLDEST_DAY - np.where(self.southern, 182.625, 0.0)
        seasonal = -self.seasonal * np.cos(2.0 * np.pi * season_day / 365.25)
        daily = -self.daily * np.cos(2.0 * np.pi * (np.asarray(local_hour) - 3.0) / 24.0)
        return np.asarray(self.mean + seasonal + daily)

    def anomaly_c(self, epoch_s: float) -> FloatArray:
        arg = 2.0 * np.pi * epoch_s / self.period_s + self.phase
        return np.asarray(np.sum(self.amplitude * np.sin(arg), axis=1))

    def ambient_c(self, epoch_s: float, local_epoch_s: FloatArray) -> FloatArray:
        """Ambient (°C) at UTC instant `epoch_s`, given each depot's local wall-clock seconds."""
        day_of_year, local_hour = local_calendar(local_epoch_s)
        return np.asarray(self.climatology_c(day_of_year, local_hour) + self.anomaly_c(epoch_s))


def local_calendar(local_epoch_s: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(fractional day of year from 1.0, hour of day) of local wall-clock seconds since 1970."""
    local = np.asarray(local_epoch_s, dtype=float)
    days = np.floor(local / 86400.0)
    hour = (local - days * 86400.0) / 3600.0
    jan1 = np.asarray(
        days.astype("datetime64[D]").astype("datetime64[Y]").astype("datetime64[D]"), dtype=float
    )
    return np.asarray(days - jan1 + 1.0 + hour / 24.0), np.asarray(hour)


@functools.lru_cache(maxsize=1024)
def _depot(zone_name: str, place: str, southern: bool, seed: int) -> DepotClimate:
    return DepotClimate([zone_name], [place], [southern], seed)


def ambient_c(
    zone_name: str, when: dt.datetime, seed: int, *, place: str = "", hemisphere: str | None = None
) -> float:
    """Ambient temperature (°C) at `when` (aware; its tzinfo is the depot's local zone).

    `place` separates the weather of depots in the same zone (default: one weather per
    zone and seed). The hemisphere defaults to the one of `when`'s IANA zone.
    """
    if when.tzinfo is None:
        raise ValueError("ambient_c needs an aware datetime in the depot's local time zone")
    if hemisphere is None:
        hemisphere = hemisphere_of(str(when.tzinfo))
    if hemisphere not in ("north", "south"):
        raise InputError(f"hemisphere must be 'north' or 'south', not {hemisphere!r}")
    offset = when.utcoffset() or dt.timedelta(0)
    epoch = when.timestamp()
    depot = _depot(zone_name, place or zone_name, hemisphere == "south", seed)
    return float(depot.ambient_c(epoch, np.array([epoch + offset.total_seconds()]))[0])
