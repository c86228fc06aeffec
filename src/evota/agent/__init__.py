"""The vehicle side: the agent on the primary ECU (gateway / telematics unit).

It polls the server, performs Uptane full verification, re-checks the energy-state
preconditions on the vehicle, downloads with resume, writes every ECU's inactive slot,
switches the whole bundle at once, self-tests, and commits or rolls back, journalling each
step durably before it acts so that a power cut at any instant resumes or rolls back.
"""
