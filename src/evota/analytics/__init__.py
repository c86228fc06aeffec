"""Battery analytics: identify a cell model, then estimate state of charge for many cells.

    cellmodel   the typed, versioned 2RC cell model (JSON round trip, validation)
    identify    fit that model from OCV and pulse (HPPC) tests at several temperatures
    grid        the model resampled into a dense table the filters read for every cell
    soc         coulomb counting, EKF and UKF, batched over cells with NumPy
    timeseries  CSV in, checked arrays out: bad data stops here with a clear InputError

NumPy and SciPy load with this package, never with `evota --help`: the CLI imports it
inside the analytics commands only. No module here does I/O except `timeseries.read_csv`.
"""
