"""Power cut at every step boundary and inside every transfer of a 3-ECU bundle.

A dry run records every point where power could be lost: each journal write (before and
after), each boot-environment write of each ECU, each 4 KiB block written to a slot, each
4 KiB chunk downloaded. Then, for each point, a fresh copy of the vehicle installs the bundle
and loses power there (the exception unwinds everything in memory; what is on disk stays,
half-written slot files included). Power returns: every ECU's boot loader runs, a new
installer recovers from the journal, and the invariant is read from the ECUs' flash. Every
fifth cut also cuts the recovery itself once, at a seeded point.
"""

from __future__ import annotations

import collections
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from evota.agent.download import download
from evota.agent.images import ImageStore
from evota.agent.installer import Installer
from evota.agent.journal import InstallRecord, Journal
from evota.agent.secondary import Secondary
from evota.agent.simulated import SimulatedEcu
from evota.agent.transport import target_url_path
from evota.deployment import Deployment
from evota.domain.lifecycle import Phase
from evota.domain.steps import Step
from tests.agent.conftest import NEXT, SECONDARIES, Fleet, relaxed
from tests.agent.invariant import check_invariant, folders


class PowerCut(BaseException):
    """Not an Exception: nothing in the agent may catch a power cut."""


class Points:
    """The fault hook: records every point, and cuts power at the `cut_at`-th one."""

    def __init__(self, cut_at: int | None = None) -> None:
        self.cut_at = cut_at
        self.seen: list[str] = []

    def __call__(self, label: str) -> None:
        self.seen.append(label)
        if self.cut_at is not None and len(self.seen) - 1 == self.cut_at:
            raise PowerCut(label)


class LocalTargets:
    """The target-reading part of the server port, from the deployment's folder (4 KiB chunks)."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep

    def fetch_target(self, path: str, sha256: str, start: int) -> Iterator[bytes]:
        stored = self.dep.images.target_file(target_url_path(path, sha256))
        assert stored is not None
        data = stored.read_bytes()[start:]
        for i in range(0, len(data), 4096):
            yield data[i : i + 4096]


def _installer(state: Path, dep: Deployment, points: Points | None) -> Installer:
    hook = points or (lambda label: None)
    ecus: dict[str, Secondary] = {s: SimulatedEcu(state / "ecus" / s, faults=hook) for s in SECONDARIES}
    images = ImageStore(state / "images")
    port = LocalTargets(dep)
    reports: list[tuple[Step, str]] = []
    return Installer(
        secondaries=ecus,
        journal=Journal(state / "journal", faults=hook),
        images=images,
        clock=dep.clock,
        report=lambda record, step, reason: reports.append((step, reason)),
        fetch=lambda item: download(port, images, item.image, item.hashes, faults=hook),  # type: ignore[arg-type]
        gate=lambda record: [],
    )


def _power_on(state: Path) -> None:
    for s in SECONDARIES:
        SimulatedEcu(state / "ecus" / s).power_on()


def _plan(fleet: Fleet) -> InstallRecord:
    agent = fleet.agent()
    record = agent.plan_install(agent._primary().verify())
    assert record is not None and len(record.items) == 3
    return record


def _restore(template: Path, state: Path) -> None:
    shutil.rmtree(state, ignore_errors=True)
    shutil.copytree(template, state)


@pytest.mark.parametrize("bad_tms", [False, True], ids=["good-bundle", "tms-fails-self-test"])
def test_a_power_cut_at_every_point_of_a_3_ecu_install_leaves_all_old_or_all_new(
    fleet: Fleet, tmp_path: Path, bad_tms: bool
) -> None:
    from evota.agent.simulated import SELF_TEST_FAIL_MARKER

    markers = {"tms": SELF_TEST_FAIL_MARKER + b"thermal loop pressure\n"} if bad_tms else {}
    bundle = fleet.publish("energy-2026-12", NEXT, policy=relaxed(), markers=markers)
    fleet.assign(bundle)
    record = _plan(fleet)
    old = fleet.running()
    new = {i.ecu_serial: i.image.path for i in record.items}
    template = tmp_path / "template"
    shutil.copytree(fleet.state.path, template)
    state = tmp_path / "cut"

    _restore(template, state)
    dry = Points()
    ended = _installer(state, fleet.dep, dry).start(record)
    assert ended.phase is (Phase.ROLLED_BACK if bad_tms else Phase.COMMITTED)
    total = len(dry.seen)
    assert total >= 50, f"only {total} cut points"
    kinds = collections.Counter(
        label.split(":")[1 if label.startswith(("BMS", "VCMS", "TMS")) else 0] for label in dry.seen
    )

    rng = random.Random(20261202)
    outcomes: collections.Counter[str] = collections.Counter()
    violations = []
    for cut in range(total):
        _restore(template, state)
        with pytest.raises(PowerCut):
            _installer(state, fleet.dep, Points(cut)).start(record)
        _power_on(state)
        if cut % 5 == 0:  # the recovery itself loses power once, somewhere
            second = Points(rng.randrange(0, 40))
            try:
                _installer(state, fleet.dep, second).recover()
            except PowerCut:
                _power_on(state)
        final = _installer(state, fleet.dep, None).recover()
        outcome = final.phase.value if final else "nothing in flight"
        if Journal(state / "journal").current() is not None:
            violations.append(f"cut {cut} ({dry.seen[cut]}): still in flight after recovery")
        outcomes[outcome] += 1
        problems = check_invariant(folders(state, SECONDARIES), old, new)
        violations.extend(f"cut {cut} ({dry.seen[cut]}): {p}" for p in problems)
    assert not violations, "\n".join(violations[:20])
    print(f"\n{total} cut points ({dict(kinds)}); outcomes after recovery: {dict(outcomes)}")
    if bad_tms:
        assert set(outcomes) <= {"rolled_back", "failed", "nothing in flight"}  # never committed
    else:
        assert outcomes["committed"] > 0


class CutEveryTrial:
    """Cuts power each time the journal enters or resumes the trial: a boot loop."""

    def __init__(self) -> None:
        self.cuts = 0

    def __call__(self, label: str) -> None:
        if label == "journal:trial:after":
            self.cuts += 1
            raise PowerCut(label)


def test_a_cut_that_repeats_in_the_trial_ends_in_a_rollback_not_a_boot_loop(
    fleet: Fleet, tmp_path: Path
) -> None:
    fleet.assign(fleet.publish("energy-2026-12", NEXT, policy=relaxed()))
    record = _plan(fleet)
    old = fleet.running()
    state = fleet.state.path
    hook = CutEveryTrial()
    with pytest.raises(PowerCut):
        _installer(state, fleet.dep, hook).start(record)  # type: ignore[arg-type]
    ended = None
    for _ in range(10):
        _power_on(state)
        try:
            ended = _installer(state, fleet.dep, hook).recover()  # type: ignore[arg-type]
            break
        except PowerCut:
            continue
    assert ended is not None and ended.phase is Phase.ROLLED_BACK, ended
    assert "restarted" in ended.reason or "fell back" in ended.reason
    assert hook.cuts <= 4  # the loop guard (MAX_RESUMES) or the ECUs' own boot limit ended it
    assert not check_invariant(folders(state, SECONDARIES), old, {})
