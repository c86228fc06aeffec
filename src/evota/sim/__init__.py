"""Simulators of what evota talks to: ECUs on a diagnostic bus."""
