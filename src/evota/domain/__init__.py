"""The pure core: values and decisions with no I/O, no clock reads, no database.

Modules here import only each other and `evota.errors` (a leaf module of exception types),
plus pure third-party libraries (`packaging`; the health gate also uses NumPy and SciPy,
loaded only when it first judges).
"""
