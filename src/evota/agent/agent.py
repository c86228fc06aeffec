"""The agent on the primary ECU: one poll cycle, a user's rollback, and the status.

A cycle, in the order safety asks for (docs/agent.md):
  1. recover whatever the journal says was in flight (before talking to anybody);
  2. deliver queued reports, then check in with a signed version manifest, the energy state
     and the user's consents;
  3. Uptane full verification of both repositories (an attack is reported in the next
     manifest and nothing is installed);
  4. plan: the images the director assigns that the ECUs do not run yet, unless that very
     install failed or was rolled back here before (failed targets are not retried);
  5. re-check the release's preconditions on the vehicle itself; if one fails, wait and say
     why, and install nothing;
  6. hand the install to the `Installer` (download, stage, switch all, self-test, commit or
     roll back), which journals every step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from evota.agent.download import download
from evota.agent.errors import AgentError, EcuError, PreconditionError, ServerError
from evota.agent.images import ImageStore
from evota.agent.installer import Installer
from evota.agent.journal import InstallItem, InstallRecord, Journal
from evota.agent.outbox import Outbox
from evota.agent.secondary import BootHealth, ImageRef, Partition, Secondary
from evota.agent.signals import FileSignals, SignalSource, energy_to_dict
from evota.agent.simulated import FaultHook
from evota.agent.state import StateDir
from evota.agent.telemetry import MAX_BATCH_SAMPLES, FileTelemetry, TelemetrySource
from evota.agent.transport import ServerPort
from evota.clock import Clock
from evota.domain.gates import check_preconditions
from evota.domain.lifecycle import Phase, past_commit_point
from evota.domain.policy import InstallPolicy, safety_rollback_preconditions
from evota.domain.release import ImageKind
from evota.domain.steps import Step
from evota.fsutil import exclusive_lock
from evota.security.errors import VerificationError
from evota.security.manifest import EcuReport, sign_ecu_report, sign_vehicle_manifest
from evota.security.uptane import Directive, EcuState, InstalledImage, Primary, RepositoryAccess

__all__ = ["Agent", "CycleResult"]

RETRY_FAILED_AFTER = dt.timedelta(hours=24)  # a pre-commit failure (network, ECU busy) may recur
# Records that switch ECUs back to the slots they ran before: asked for by the user, or by the
# director after a health gate's verdict.
ROLLBACK_KINDS = ("user_rollback", "fleet_rollback")


@dataclasses.dataclass(frozen=True)
class CycleResult:
    outcome: str  # idle, installed, rolled_back, failed, waiting, offline, refused, in_flight
    detail: str = ""
    next_poll_s: float | None = None


class Agent:
    def __init__(
        self,
        state: StateDir,
        server: ServerPort,
        *,
        clock: Clock,
        signals: SignalSource | None = None,
        secondaries: Mapping[str, Secondary] | None = None,
        faults: FaultHook | None = None,
        telemetry: TelemetrySource | None = None,
    ) -> None:
        self.state = state
        self.config = state.config()
        self.server = server
        self.clock = clock
        self.signals = signals or FileSignals(state / "signals.json")
        self._faults = faults
        self.secondaries = (
            dict(secondaries) if secondaries is not None else state.open_secondaries(faults=faults)
        )
        self.journal = Journal(state / "journal", faults=faults)
        self.images = ImageStore(state / "images")
        self.outbox = Outbox(state / "outbox")
        self.telemetry = telemetry or FileTelemetry(state / "telemetry")
        self.telemetry_outbox = Outbox(state / "outbox-telemetry")
        self.installer = Installer(
            secondaries=self.secondaries,
            journal=self.journal,
            images=self.images,
            clock=clock,
            report=self._queue_step,
            fetch=self._fetch,
            gate=self._gate,
        )

    def close(self) -> None:
        """Release the server connection and the ECUs' connections (their state stays)."""
        closer = getattr(self.server, "close", None)
        if callable(closer):
            closer()
        for ecu in self.secondaries.values():
            ecu.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the cycle -----------------------------------------------------------------------------
    def cycle(self) -> CycleResult:
        with exclusive_lock(self.state.lock_file):
            return self._cycle()

    def upload_telemetry(self) -> int:
        """Send what the vehicle measured, without an update check: a telematics upload
        between polls (evening, back at the depot). Returns how many batches the server took;
        the rest stay queued for the next upload or cycle."""
        with exclusive_lock(self.state.lock_file):
            return self._send_telemetry()

    def _cycle(self) -> CycleResult:
        in_flight = self.installer.recover()
        self._remember_installed()
        try:
            self.outbox.flush(self.server.report_step)
            response = self.server.check_in(self._check_in_body())
        except ServerError as e:
            return self._result_of(in_flight) if in_flight else CycleResult("offline", str(e))
        self.outbox.flush(self.server.report_step)
        self._send_telemetry()
        next_poll = float(response.get("next_check_in_s", self.config.poll_interval_s))
        try:
            directive = self._primary().verify()
        except VerificationError as e:
            self.state.write_json("attack.json", {"code": e.code, "message": str(e)})
            return CycleResult("refused", f"{e.code}: {e}", next_poll)
        self.state.write_json("attack.json", {})
        current = self.journal.current()
        if current is not None:
            if not past_commit_point(current.phase) and not self._still_assigned(current, directive):
                ended = self.installer.abandon(current, "the director no longer assigns this install")
                return self._result_of(ended, next_poll)
            return self._result_of(current, next_poll)
        if in_flight is not None:  # the recovery finished an install this cycle: say how it ended
            return self._result_of(in_flight, next_poll)
        return self._install(directive, next_poll)

    def plan_install(self, directive: Directive) -> InstallRecord | None:
        """The install a verified directive asks for (None: every ECU runs what it assigns)."""
        items = self._plan(directive)
        if not items:
            return None
        if rollback := self._fleet_rollback(items):
            return rollback
        release, policy = self._release_of(directive)
        now = self.clock.now()
        return InstallRecord(
            id=f"{release}@{directive.director_version}",
            kind="install",
            release=release,
            items=tuple(items),
            phase=Phase.DOWNLOADING,
            started_at=now,
            updated_at=now,
            policy={"install": policy.to_dict(), "state_reset": self._state_resets(directive, items)},
        )

    def _install(self, directive: Directive, next_poll: float) -> CycleResult:
        record = self.plan_install(directive)
        if record is None:
            return CycleResult("idle", "nothing to install", next_poll)
        items = list(record.items)
        if refused := self._refused(items):
            return CycleResult("refused", f"not retried: {refused}", next_poll)
        if reasons := self._gate(record):
            self._queue_step(record, Step.WAITING, "; ".join(reasons))
            self.outbox.flush(self.server.report_step)
            return CycleResult("waiting", "waiting: " + "; ".join(reasons), next_poll)
        self.state.remember(
            {i.image.path: {"version": i.image.version, "release_counter": i.release_counter} for i in items}
        )
        ended = self.installer.start(record)
        self._remember_installed()
        self._flush_quietly()
        return self._result_of(ended, next_poll)

    def _result_of(self, record: InstallRecord | None, next_poll: float | None = None) -> CycleResult:
        if record is None:
            return CycleResult("idle", "", next_poll)
        outcome = {
            Phase.COMMITTED: "installed",
            Phase.ROLLED_BACK: "rolled_back",
            Phase.FAILED: "failed",
            Phase.STAGED: "waiting",
        }.get(record.phase, "in_flight")
        detail = record.reason or f"{record.kind} {record.release}: {record.phase.value}"
        if record.phase is Phase.STAGED:
            detail = "waiting: " + "; ".join(self._gate(record))
        return CycleResult(outcome, detail, next_poll)

    # ---- planning ------------------------------------------------------------------------------
    def _plan(self, directive: Directive) -> list[InstallItem]:
        items = []
        for image in directive.pending(self._ecu_states()):
            ecu = self.secondaries.get(image.ecu_serial)
            if ecu is None:
                raise AgentError(
                    f"the director assigns {image.path} to {image.ecu_serial}, which this agent cannot update"
                )
            if image.meta.kind is ImageKind.DELTA:
                raise AgentError(f"{image.path} is a delta image, which this agent does not apply yet")
            partition = Partition.PARAMS if image.meta.kind is ImageKind.PARAMS else Partition.FIRMWARE
            part = ecu.status().partitions[partition]
            hashes = dict(image.target.hashes)
            ref = ImageRef(image.path, image.target.length, hashes["sha256"], image.meta.version)
            items.append(
                InstallItem(
                    image.ecu_serial,
                    partition,
                    ref,
                    part.active,
                    part.inactive,
                    part.running,
                    image.meta.release_counter,
                    hashes,
                )
            )
        return items

    def _fleet_rollback(self, items: Sequence[InstallItem]) -> InstallRecord | None:
        """The director sends ECUs back to what they ran before the last install (the only
        lower release counters verification lets through, see `_rollback_candidate`): switch
        back to the other slots, as a user rollback does, with no download."""
        candidate = self._rollback_candidate()
        if candidate is None:
            return None
        last, back = candidate
        wanted = {(i.ecu_serial, i.image.path) for i in items}
        undo = [b for b in back if (b.ecu_serial, b.image.path) in wanted]
        if not undo:
            return None
        if len(undo) != len(items):
            raise AgentError("the director mixes a rollback with new images; each must come on its own")
        now = self.clock.now()
        return InstallRecord(
            id=f"fleet-rollback:{last.id}",
            kind="fleet_rollback",
            release=last.release,
            items=tuple(undo),
            phase=Phase.STAGED,
            started_at=now,
            updated_at=now,
            policy={
                "install": last.policy.get("install", {}),
                "reason": "the director assigns the images run before",
            },
        )

    def _rollback_candidate(self) -> tuple[InstallRecord, tuple[InstallItem, ...]] | None:
        """The last committed install and the items undoing it, while its signed rollback
        window is open and every ECU still holds its previous image, good, in the other slot."""
        try:
            last = self._last_committed()
            policy = InstallPolicy.from_dict(last.policy.get("install", {}))
            if last.committed_at is None or self.clock.now() - last.committed_at > policy.rollback_window:
                return None
            return last, tuple(self._reverse(i) for i in last.items)
        except (AgentError, ValueError):
            return None

    def _release_of(self, directive: Directive) -> tuple[str, InstallPolicy]:
        for path in directive.releases:
            bundle = directive.bundles.get(path)
            if bundle is not None:
                return bundle.name, bundle.install_policy
        return f"director-{directive.director_version}", InstallPolicy()

    @staticmethod
    def _state_resets(directive: Directive, items: list[InstallItem]) -> list[str]:
        resets = {i.ecu_serial for i in directive.images if i.meta.requires_state_reset}
        return sorted(resets & {i.ecu_serial for i in items})

    def _still_assigned(self, record: InstallRecord, directive: Directive) -> bool:
        assigned = {(i.ecu_serial, i.path) for i in directive.images}
        return all((i.ecu_serial, i.image.path) in assigned for i in record.items)

    def _refused(self, items: list[InstallItem]) -> str:
        """Why this very install is not tried again ('' if it may be)."""
        key = {(i.ecu_serial, i.image.path) for i in items}
        now = self.clock.now()
        for r in reversed(self.journal.history()):
            if r.kind == "install" and {(i.ecu_serial, i.image.path) for i in r.items} == key:
                if r.phase is Phase.ROLLED_BACK:
                    return f"{r.release} was rolled back here ({r.reason})"
                if r.phase is Phase.FAILED and now - r.updated_at < RETRY_FAILED_AFTER:
                    return f"{r.release} failed here at {r.updated_at:%Y-%m-%d %H:%M} ({r.reason})"
            undone = {(i.ecu_serial, i.previous.path) for i in r.items if i.previous}
            if r.kind in ROLLBACK_KINDS and r.phase is Phase.COMMITTED and undone == key:
                who = "the user" if r.kind == "user_rollback" else "a fleet rollback"
                return f"{r.release} was rolled back by {who} ({r.policy.get('reason', '')})"
        return ""

    # ---- the gate ------------------------------------------------------------------------------
    def _gate(self, record: InstallRecord) -> list[str]:
        policy = InstallPolicy.from_dict(record.policy.get("install", {}))
        pre = policy.preconditions
        if record.kind == "user_rollback":  # the user asked: that is the consent
            pre = dataclasses.replace(pre, consent_required=False)
        elif record.kind == "fleet_rollback":  # see safety_rollback_preconditions for why
            pre = safety_rollback_preconditions(pre)
        consent = any(c["release"] == record.release for c in self.state.consents())
        return check_preconditions(pre, self.signals.read(), consent=consent, now=self.clock.now())

    # ---- Uptane and the manifest ---------------------------------------------------------------
    def _ecu_states(self) -> list[EcuState]:
        known = self.state.known()
        candidate = self._rollback_candidate()
        back = {
            i.ecu_serial: InstalledImage(i.image.path, i.image.version, i.release_counter)
            for i in (candidate[1] if candidate else ())
            if i.partition is Partition.FIRMWARE
        }
        image = self.config.primary_image
        states = [
            EcuState(
                self.config.primary_serial,
                self.config.primary_type,
                self.config.primary_hardware_id,
                InstalledImage(str(image["path"]), str(image.get("version", "0")), 0),
            )
        ]
        for serial, ecu in self.secondaries.items():
            installed = ecu.status().installed
            entry = known.get(installed.path, {}) if installed else {}
            states.append(
                EcuState(
                    serial,
                    ecu.ecu_type,
                    ecu.hardware_id,
                    InstalledImage(installed.path, installed.version, int(entry.get("release_counter", 0)))
                    if installed
                    else None,
                    rollback_to=back.get(serial),
                )
            )
        return states

    def _primary(self) -> Primary:
        trust = self.state / "trust"
        return Primary(
            vin=self.config.vin,
            ecus=self._ecu_states(),
            director=RepositoryAccess(
                self.server.director_metadata_url,
                (trust / "director-root.json").read_bytes(),
                self.state / "cache" / "director",
            ),
            image=RepositoryAccess(
                self.server.image_metadata_url,
                (trust / "image-root.json").read_bytes(),
                self.state / "cache" / "image",
                self.server.image_targets_url,
            ),
            clock=self.clock,
            fetcher=self.server.fetcher(),
        )

    def _check_in_body(self) -> dict[str, Any]:
        now = self.clock.now()
        serials = [self.config.primary_serial, *self.secondaries]
        counter, ecu_counters = self.state.next_counters(serials)
        attack = self.state.read_json("attack.json", {})
        image = self.config.primary_image
        reports: dict[str, Mapping[str, Any]] = {
            self.config.primary_serial: sign_ecu_report(
                EcuReport(
                    self.config.primary_serial,
                    str(image["path"]),
                    int(image["length"]),
                    {"sha256": str(image["sha256"])},
                    now,
                    ecu_counters[self.config.primary_serial],
                    str(attack.get("message", ""))[:500],
                ),
                self.state.primary_signer(),
            )
        }
        for serial, ecu in self.secondaries.items():
            try:
                reports[serial] = ecu.version_report(counter=ecu_counters[serial], time=now)
            except EcuError:
                continue  # an ECU that does not answer is left out; the server keeps its last report
        manifest = sign_vehicle_manifest(
            vin=self.config.vin,
            primary_serial=self.config.primary_serial,
            reports=reports,
            time=now,
            counter=counter,
            signer=self.state.primary_signer(),
        )
        body: dict[str, Any] = {"manifest": json.loads(manifest), "consents": self.state.consents()[-16:]}
        energy = self.signals.read()
        if energy is not None:
            body["energy"] = energy_to_dict(energy)
        return body

    # ---- reports, downloads, bookkeeping -------------------------------------------------------
    def _queue_step(self, record: InstallRecord, step: Step, reason: str) -> None:
        if record.kind in ROLLBACK_KINDS:
            if step is not Step.COMMITTED:
                return  # the vehicle still runs what it reported until the rollback is done
            who = "user" if record.kind == "user_rollback" else "fleet"
            step, reason = Step.ROLLED_BACK, f"{who} rollback: {record.policy.get('reason', '')}"
        if step is Step.WAITING:
            last = self.state.read_json("last_wait.json", {})
            if last == {"id": record.id, "reason": reason}:
                return  # the same wait is reported once, not every poll
            self.state.write_json("last_wait.json", {"id": record.id, "reason": reason})
        body = {"release": record.release, "step": step.value, "at": self.clock.now().isoformat()}
        if reason:
            body["reason"] = reason[:512]
        self.outbox.put(body)

    def _send_telemetry(self) -> int:
        """Queue what the vehicle measured since the last cycle, then send the queue in order."""
        samples = self.telemetry.take()
        for start in range(0, len(samples), MAX_BATCH_SAMPLES):
            self.telemetry_outbox.put({"samples": samples[start : start + MAX_BATCH_SAMPLES]})
        return self.telemetry_outbox.flush(self.server.send_telemetry)

    def _flush_quietly(self) -> None:
        """Deliver the reports, then the new signed manifest, if the server answers: an
        install's end is reported at once, not at the next poll."""
        with contextlib.suppress(ServerError):
            self.outbox.flush(self.server.report_step)
            self.server.check_in(self._check_in_body())

    def _fetch(self, item: InstallItem) -> None:
        download(self.server, self.images, item.image, item.hashes, faults=self._faults)

    def _remember_installed(self) -> None:
        """Keep the images the ECUs' slots hold; drop the rest from the image store."""
        keep: list[ImageRef] = []
        for ecu in self.secondaries.values():
            try:
                status = ecu.status()
            except EcuError:
                return  # do not prune what an unreachable ECU may still need
            for part in status.partitions.values():
                keep.extend(
                    s.image for s in part.slots.values() if s.image and s.health is not BootHealth.EMPTY
                )
        current = self.journal.current()
        if current is not None:
            keep.extend(i.image for i in current.items)
        self.images.prune(keep)

    # ---- the user's rollback ---------------------------------------------------------------------
    def user_rollback(self, reason: str) -> InstallRecord:
        """Go back to what ran before the last committed install, inside its rollback window."""
        if not reason.strip():
            raise AgentError("say why you roll back (--reason)")
        with exclusive_lock(self.state.lock_file):
            if self.installer.recover() is not None and self.journal.current() is not None:
                raise AgentError("an install is in flight; wait until it ends")
            last = self._last_committed()
            policy = InstallPolicy.from_dict(last.policy.get("install", {}))
            now = self.clock.now()
            if last.committed_at is None or now - last.committed_at > policy.rollback_window:
                hours = policy.rollback_window.total_seconds() / 3600
                raise AgentError(
                    f"{last.release} was committed more than {hours:g} h ago: its rollback window is over"
                )
            items = tuple(self._reverse(i) for i in last.items)
            record = InstallRecord(
                id=f"rollback:{last.id}",
                kind="user_rollback",
                release=last.release,
                items=items,
                phase=Phase.STAGED,
                started_at=now,
                updated_at=now,
                policy={"install": last.policy.get("install", {}), "reason": reason[:200]},
            )
            if reasons := self._gate(record):
                raise PreconditionError(reasons)
            ended = self.installer.start(record)
            self._flush_quietly()
            return ended

    def _last_committed(self) -> InstallRecord:
        for r in reversed(self.journal.history()):
            if r.kind in ROLLBACK_KINDS and r.phase is Phase.COMMITTED:
                break
            if r.kind == "install" and r.phase is Phase.COMMITTED:
                return r
        raise AgentError("no committed install to roll back")

    def _reverse(self, item: InstallItem) -> InstallItem:
        if item.previous is None:
            raise AgentError(f"ECU {item.ecu_serial}: no previous image to go back to")
        part = self.secondaries[item.ecu_serial].status().partitions[item.partition]
        back = part.slots[item.slot_from]
        if (
            part.active is not item.slot_to
            or back.health is not BootHealth.GOOD
            or back.image != item.previous
        ):
            raise AgentError(
                f"ECU {item.ecu_serial}: slot {item.slot_from.value} no longer holds {item.previous.path}"
            )
        known = self.state.known().get(item.previous.path, {})
        return InstallItem(
            item.ecu_serial,
            item.partition,
            item.previous,
            item.slot_to,
            item.slot_from,
            item.image,
            int(known.get("release_counter", 0)),
        )
