"""The two-phase install of a bundle across its ECUs, and its recovery after any cut.

The installer drives one `InstallRecord` through the phases of `evota.domain.lifecycle`,
writing the journal before each phase's work (so the journal never claims less than was
done) and doing only idempotent work in each phase (so redoing a phase after a cut is safe):

  DOWNLOADING   fetch each image into the primary's image store (resumable, hash-checked)
  STAGING       write each ECU's inactive slot; the ECU verifies length and SHA-256
  STAGED        wait for the vehicle-side go (preconditions re-checked on the vehicle)
  ACTIVATING    the commit point: switch every ECU of the bundle onto its new slots, on trial
  TRIAL         migrate user settings, reset state machines where an image asks, self-test all
  COMMITTING    mark every ECU good (or turn back if one fell back on its own)
  ROLLING_BACK  drive every ECU back to the slots it ran before, restore user settings

`recover()` is called at every start: it reads the journal and resumes from the phase it
names, so after power loss at any instant each ECU boots a verified image and the bundle ends
all-old or all-new. It never needs the server: reports go to an outbox.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from evota.agent.errors import AgentError, DownloadError, EcuError
from evota.agent.images import ImageStore
from evota.agent.journal import InstallItem, InstallRecord, Journal
from evota.agent.secondary import BootHealth, ImageRef, Partition, Secondary, SlotName
from evota.clock import Clock
from evota.domain.lifecycle import MAX_RESUMES, TERMINAL, Event, Phase, next_phase, past_commit_point, step_of
from evota.domain.params import SettingsSchema, migrate, parse_params
from evota.domain.steps import Step

__all__ = ["Installer", "Reporter"]

Reporter = Callable[[InstallRecord, Step, str], None]
Fetch = Callable[[InstallItem], None]
Gate = Callable[[InstallRecord], list[str]]

# Phases in which a crash might be caused by the install itself: their restarts are counted.
_GUARDED = frozenset({Phase.STAGING, Phase.ACTIVATING, Phase.TRIAL, Phase.COMMITTING})
MAX_DOWNLOAD_ATTEMPTS = 3


class Installer:
    def __init__(
        self,
        *,
        secondaries: Mapping[str, Secondary],
        journal: Journal,
        images: ImageStore,
        clock: Clock,
        report: Reporter,
        fetch: Fetch,
        gate: Gate,
    ) -> None:
        self.secondaries = secondaries
        self.journal = journal
        self.images = images
        self.clock = clock
        self._report = report
        self._fetch = fetch
        self._gate = gate

    # ---- entry points -------------------------------------------------------------------------
    def start(self, record: InstallRecord) -> InstallRecord:
        """Begin a new install (nothing may be in flight)."""
        if self.journal.current() is not None:
            raise RuntimeError("an install is already in flight; recover() it first")
        self.journal.write(record)
        self._announce(record)
        return self.run(record)

    def recover(self) -> InstallRecord | None:
        """Resume whatever the journal says was in flight; returns where it ended (or None)."""
        record = self.journal.current()
        if record is None:
            return None
        if record.phase in _GUARDED:
            # Judged before the resume is written: a cut that always strikes right after that
            # write must still end the loop.
            if record.resumes >= MAX_RESUMES:
                reason = f"{record.phase.value} restarted {record.resumes} times (a loop); giving up"
                record = self._move(record, Event.LOOP_DETECTED, reason=reason)
            else:
                record = dataclasses.replace(record, resumes=record.resumes + 1, updated_at=self.clock.now())
                self.journal.write(record)
        return self.run(record)

    def abandon(self, record: InstallRecord, reason: str) -> InstallRecord:
        """End an install that has not reached its commit point (nothing was switched)."""
        if past_commit_point(record.phase):
            raise RuntimeError("past the commit point an install ends by commit or rollback only")
        ended = self._move(record, Event.ERROR, reason=reason)
        self.journal.finish(ended)
        return ended

    def run(self, record: InstallRecord) -> InstallRecord:
        """Advance `record` until it ends or has to wait (preconditions, network)."""
        while record.phase not in TERMINAL:
            nxt = self._step(record)
            if nxt is None:
                return record  # waiting: the record stays in flight
            record = nxt
        self.journal.finish(record)
        return record

    # ---- one phase ----------------------------------------------------------------------------
    def _step(self, record: InstallRecord) -> InstallRecord | None:
        handler = {
            Phase.DOWNLOADING: self._download,
            Phase.STAGING: self._stage,
            Phase.STAGED: self._go,
            Phase.ACTIVATING: self._activate,
            Phase.TRIAL: self._trial,
            Phase.COMMITTING: self._commit,
            Phase.ROLLING_BACK: self._roll_back,
        }[record.phase]
        return handler(record)

    def _download(self, record: InstallRecord) -> InstallRecord | None:
        for item in record.items:
            if self.images.has(item.image):
                continue
            try:
                self._fetch(item)
            except DownloadError as e:
                if not e.bad_data:
                    return None  # the network: try again at the next poll, resuming the transfer
                attempts = int(record.policy.get("download_failures", 0)) + 1
                if attempts >= MAX_DOWNLOAD_ATTEMPTS:
                    return self._move(record, Event.ERROR, reason=f"download of {item.image.path}: {e}")
                policy = {**record.policy, "download_failures": attempts}
                self.journal.write(dataclasses.replace(record, policy=policy))
                return None  # the bad bytes are gone; the next poll downloads again from zero
        return self._move(record, Event.DOWNLOADED)

    def _stage(self, record: InstallRecord) -> InstallRecord:
        for item in record.items:
            ecu = self.secondaries[item.ecu_serial]
            try:
                ecu.write_inactive(item.partition, item.image, self.images.path(item.image))
            except (EcuError, FileNotFoundError) as e:
                return self._move(record, Event.ERROR, reason=f"staging on {item.ecu_serial}: {e}")
        return self._move(record, Event.STAGED)

    def _go(self, record: InstallRecord) -> InstallRecord | None:
        reasons = self._gate(record)
        if reasons:
            self._report(record, Step.WAITING, "; ".join(reasons))
            return None
        # Capture every ECU's user settings before anything switches: a rollback restores them.
        try:
            before = {s: self.secondaries[s].user_settings() for s in record.serials}
        except EcuError as e:
            return self._move(record, Event.ERROR, reason=f"reading user settings: {e}")
        return self._move(record, Event.GO, settings_before=before)

    def _activate(self, record: InstallRecord) -> InstallRecord:
        try:
            for serial in record.serials:
                slots = {i.partition: i.slot_to for i in record.items_of(serial)}
                self.secondaries[serial].activate(slots)
            self._check_on(record, "slot_to", trial_ok=True)
        except AgentError as e:
            return self._move(record, Event.ERROR, reason=f"activating: {e}")
        return self._move(record, Event.ACTIVATED)

    def _trial(self, record: InstallRecord) -> InstallRecord:
        tests: dict[str, Any] = {}
        try:
            self._check_on(record, "slot_to", trial_ok=True)
            for serial in record.serials:
                self._migrate_settings(record, serial)
                if serial in record.policy.get("state_reset", []):
                    self.secondaries[serial].reset_state()
            for serial in record.serials:
                result = self.secondaries[serial].self_test()
                tests[serial] = {
                    "passed": result.passed,
                    "reason": result.reason,
                    "checks": dict(result.checks),
                }
        except AgentError as e:
            return self._move(record, Event.ERROR, reason=f"trial: {e}", tests=tests)
        failed = {s: t for s, t in tests.items() if not t["passed"]}
        if failed:
            why = "; ".join(
                f"{s} self-test failed: {t['reason'] or 'no reason given'}" for s, t in failed.items()
            )
            return self._move(record, Event.TESTS_FAILED, reason=why, tests=tests)
        return self._move(record, Event.TESTS_PASSED, tests=tests)

    def _commit(self, record: InstallRecord) -> InstallRecord:
        try:
            self._check_on(record, "slot_to", trial_ok=True)
            for serial in record.serials:
                self.secondaries[serial].mark_good()
            self._check_on(record, "slot_to", trial_ok=False)
        except AgentError as e:
            return self._move(record, Event.ERROR, reason=f"committing: {e}")
        return self._move(record, Event.MARKED_GOOD, committed_at=self.clock.now())

    def _roll_back(self, record: InstallRecord) -> InstallRecord | None:
        try:
            for serial in record.serials:
                self._drive_back(record, serial)
            self._check_on(record, "slot_from", trial_ok=False)
            for serial, settings in record.settings_before.items():
                if self.secondaries[serial].user_settings() != dict(settings):
                    self.secondaries[serial].write_user_settings(settings)
        except AgentError as e:
            # No way out but success: stay in ROLLING_BACK and try again at the next poll.
            self._report(record, Step.WAITING, f"rolling back: {e}")
            return None
        return self._move(record, Event.REVERTED)

    # ---- helpers ------------------------------------------------------------------------------
    def _move(self, record: InstallRecord, event: Event, **changes: Any) -> InstallRecord:
        reason = changes.get("reason")
        if reason and record.reason:
            changes["reason"] = f"{record.reason}; {reason}"
        moved = record.moved(next_phase(record.phase, event), self.clock.now(), **changes)
        self.journal.write(moved)
        self._announce(moved)
        return moved

    def _announce(self, record: InstallRecord) -> None:
        step = step_of(record.phase)
        if step is not None:
            self._report(record, step, record.reason)

    def _check_on(self, record: InstallRecord, side: str, *, trial_ok: bool) -> None:
        """Every item's ECU partition runs the slot of `side`; raise EcuError if not."""
        for serial in record.serials:
            status = self.secondaries[serial].status()
            for item in record.items_of(serial):
                want: SlotName = getattr(item, side)
                part = status.partitions[item.partition]
                health = part.slots[part.active].health
                ok = {BootHealth.GOOD, BootHealth.TRIAL} if trial_ok else {BootHealth.GOOD}
                if part.active is not want or health not in ok:
                    raise EcuError(
                        f"ECU {serial} {item.partition.value} runs slot {part.active.value} "
                        f"({health.value}), not {want.value}: its boot loader fell back"
                    )

    def _drive_back(self, record: InstallRecord, serial: str) -> None:
        """Bring one ECU to the slots it ran before this install, each GOOD."""
        ecu = self.secondaries[serial]
        status = ecu.status()
        if any(
            status.partitions[i.partition].active is not i.slot_from
            and status.partitions[i.partition].slots[status.partitions[i.partition].active].health
            in (BootHealth.TRIAL, BootHealth.BAD)
            for i in record.items_of(serial)
        ):
            ecu.revert()
            status = ecu.status()
        # Already marked good on the new side (a bundle-mate fell back after the commit began):
        # the old slot is still GOOD, so go back to it through a trial and mark it good again.
        away = {
            i.partition: i.slot_from
            for i in record.items_of(serial)
            if status.partitions[i.partition].active is not i.slot_from
        }
        if away:
            ecu.activate(away)
        if ecu.status().on_trial:
            ecu.mark_good()

    def _migrate_settings(self, record: InstallRecord, serial: str) -> None:
        params = [i for i in record.items_of(serial) if i.partition is Partition.PARAMS]
        if not params:
            return
        new = _schema_of(self.images, params[0].image)
        if new is None:
            return
        undo = None
        if record.kind in ("user_rollback", "fleet_rollback") and params[0].previous is not None:
            newer = _schema_of(self.images, params[0].previous)
            undo = dict(newer.renamed) if newer else None
        current = self.secondaries[serial].user_settings()
        base = record.settings_before.get(serial, current)
        migrated, notes = migrate(base, new, undo=undo)
        if migrated != current:
            self.secondaries[serial].write_user_settings(migrated)
        if notes:
            self._report(record, Step.SELF_TEST, f"{serial} user settings: " + "; ".join(notes))


def _schema_of(images: ImageStore, ref: ImageRef) -> SettingsSchema | None:
    if not images.has(ref):
        return None
    try:
        return parse_params(images.path(ref).read_bytes()).schema
    except ValueError:
        return None
