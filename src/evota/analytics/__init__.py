"""Battery analytics: cell model, SoC, SoH, anomalies, RUL and state of safety.

    cellmodel   the typed, versioned 2RC cell model (JSON round trip, validation)
    identify    fit that model from OCV and pulse (HPPC) tests at several temperatures
    grid        the model resampled into a dense table the filters read for every cell
    soc         coulomb counting, EKF and UKF, batched over cells with NumPy
    gp          a small Gaussian-process regressor (NumPy, JSON round trip)
    soh         capacity from a partial charge (GP), resistance growth, dQ/dV features
    isoforest   an isolation forest in NumPy
    anomalies   peer SPC, the forest, internal-short screening of a string at rest
    faults      injected faults on the physics fixtures, for tests and benchmarks
    rul         a particle filter on fade-law parameters: cycles to 80 % SoH
    safety      Arrhenius reaction progress, the SoS formula, dT/dt and voltage collapse
    timeseries  CSV in, checked arrays out: bad data stops here with a clear InputError

NumPy and SciPy load with this package, never with `evota --help`: the CLI imports it
inside the analytics commands only. No module here does I/O except `timeseries.read_csv`.
"""
