"""evota: over-the-air updates for the energy side of electric vehicles.

Uptane-secured releases for BMS, VCMS, thermal ECUs and chargers, staged rollouts,
A/B rollback and health-gated campaigns. See docs/architecture.md for the map.
"""

__version__ = "0.1.0"
