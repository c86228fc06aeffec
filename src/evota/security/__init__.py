"""Uptane on python-tuf: keys, the image and director repositories, vehicle-side
verification (full for the primary, partial for secondaries) and signed version manifests.

What this package does not do: transport beyond fetching metadata and images, scheduling,
or deciding *what* a vehicle should run. The director only signs what it is told.
"""
