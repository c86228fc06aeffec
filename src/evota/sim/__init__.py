"""Simulators of what evota talks to: ECUs on a diagnostic bus, and a fleet's batteries
(`physics.FleetPhysics`, docs/simulator.md)."""
