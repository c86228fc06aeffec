"""The steps an agent reports while it works on a release, and what each means for a campaign.

A step is progress (downloading … installed), a wait (a vehicle-side precondition says no:
deferred, not failed), or an outcome that ends the vehicle's part in the campaign.
"""

from __future__ import annotations

import enum

from evota.domain.planner import DeviceStatus

__all__ = ["Step", "outcome"]


class Step(enum.StrEnum):
    WAITING = "waiting"  # a vehicle-side precondition holds the install back (reason says which)
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    INSTALLING = "installing"
    INSTALLED = "installed"  # written to the inactive slots, not active yet
    ACTIVATING = "activating"
    SELF_TEST = "self_test"
    COMMITTED = "committed"  # every ECU of the release runs it and passed self-test
    ROLLED_BACK = "rolled_back"  # activated, then went back to the previous slots
    FAILED = "failed"  # stopped before activation; the vehicle runs what it ran


_OUTCOMES = {
    Step.COMMITTED: DeviceStatus.UPDATED,
    Step.ROLLED_BACK: DeviceStatus.ROLLED_BACK,
    Step.FAILED: DeviceStatus.FAILED,
}


def outcome(step: Step) -> DeviceStatus | None:
    """The campaign status a step ends in, or None while the vehicle is still working."""
    return _OUTCOMES.get(step)
