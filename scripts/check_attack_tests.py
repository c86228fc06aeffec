"""Prove the security tests bite: remove each check, and its test must fail.

For every check below, a copy of `src/` is made with that one check disabled, and the attack
test named after it is run against the copy (PYTHONPATH puts the copy first). The script
fails if any test still passes without its check, or if a check can no longer be found in
the source (the table must then follow the code). The working tree is never modified.

    make mutation        (or: .venv/bin/python scripts/check_attack_tests.py)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]


class Mutation(NamedTuple):
    name: str
    file: str
    check: str  # the source text of the check
    disabled: str  # what it becomes
    tests: str  # pytest node or -k expression that must now fail


UPTANE = "src/evota/security/uptane.py"
CLIENT = "src/evota/security/tuf_client.py"
MANIFEST = "src/evota/security/manifest.py"
ATTACKS = "tests/security/test_attacks.py"
DEVICES = "src/evota/server/services/devices.py"
ROLLOUT = "tests/server/test_rollout_api.py"
FW_SIGNING = "src/evota/security/firmware_signing.py"
FW_TESTS = "tests/security/test_firmware_signing.py"
WRITE_SNAPSHOT = '        _write(self.folder / f"{snap.version}.snapshot.json", md)\n'
NEW_TIMESTAMP = "        self._write_timestamp(now, snap.version, v)\n"

MUTATIONS = [
    Mutation(
        "secure time",
        CLIENT,
        "        self._trusted_set.reference_time = reference_time\n",
        "",
        # Both directions: without the injected time ngclient reads the host's clock, and
        # whichever side of the fixtures' expiry the calendar is on, one of these fails.
        f"{ATTACKS} -k freeze",
    ),
    Mutation(
        "image hashes (tuf)",
        CLIENT,
        '        if phase == "target":',
        "        if False:",
        f"{ATTACKS}::test_arbitrary_software_tampered_image_is_refused",
    ),
    Mutation(
        "length cap",
        CLIENT,
        "    except tuf_exc.DownloadLengthMismatchError as e:\n        raise EndlessDataError",
        "    except tuf_exc.DownloadLengthMismatchError as e:\n        raise TamperedImageError",
        f"{ATTACKS}::test_endless_data_more_bytes_than_signed_length_is_refused",
    ),
    Mutation(
        "mix-and-match",
        CLIENT,
        "        if _MISMATCH.match(str(e)):",
        "        if False:",
        f"{ATTACKS} -k mix_and_match",
    ),
    Mutation(
        "vehicle binding",
        UPTANE,
        "        if vin != self.vin:",
        "        if False:",
        f"{ATTACKS}::test_director_metadata_for_another_vehicle_is_refused",
    ),
    Mutation(
        "director hardware claim",
        UPTANE,
        "                if hwid != ecu.hardware_id:",
        "                if False:",
        f"{ATTACKS}::test_wrong_hardware_director_claims_other_hardware_for_the_ecu",
    ),
    Mutation(
        "image hardware",
        UPTANE,
        "        if meta.ecu_type != ecu.ecu_type or ecu.hardware_id not in meta.hardware_ids:",
        "        if False:",
        f"{ATTACKS}::test_wrong_hardware_image_built_for_other_hardware",
    ),
    Mutation(
        "image repository holds it",
        UPTANE,
        "        if itf is None:\n",
        "        if itf is None and False:\n",
        f"{ATTACKS}::test_director_only_compromise_image_not_in_the_image_repository",
    ),
    Mutation(
        "every hash matches",
        UPTANE,
        "            if itf.hashes.get(algo) != digest:",
        "            if False:",
        f"{ATTACKS}::test_director_only_compromise_other_bytes_under_a_published_name",
    ),
    Mutation(
        "release counter",
        UPTANE,
        "            and meta.release_counter < ecu.installed.release_counter\n",
        "            and False\n",
        f"{ATTACKS}::test_rollback_to_an_older_image_version_is_refused",
    ),
    Mutation(
        "fleet rollback only to the image run before",
        UPTANE,
        "    return back is not None and back.path == path and back.release_counter == meta.release_counter",
        "    return back is not None",
        f"{ATTACKS}::test_fleet_rollback_is_limited_to_the_image_the_ecu_ran_before",
    ),
    Mutation(
        "whole releases",
        UPTANE,
        "        if incomplete:\n            raise PartialBundleError",
        "        if False:\n            raise PartialBundleError",
        f"{ATTACKS} -k partial_bundle",
    ),
    Mutation(
        "requirements",
        UPTANE,
        "        if broken:\n            raise IncompatibleError",
        "        if False:\n            raise IncompatibleError",
        f"{ATTACKS} -k breaks_a_requirement",
    ),
    Mutation(
        "no download after a failed verify",
        UPTANE,
        "        self._image_updater, self._directive = None, None",
        "        pass",
        f"{ATTACKS}::test_nothing_can_be_downloaded_after_a_failed_verification",
    ),
    Mutation(
        "snapshot written before the timestamp naming it",
        "src/evota/security/tuf_repo.py",
        WRITE_SNAPSHOT + NEW_TIMESTAMP,
        NEW_TIMESTAMP + WRITE_SNAPSHOT,
        "tests/security/test_crash_safety.py",
    ),
    Mutation(
        "director metadata staged until verified",
        UPTANE,
        "            director = self._updater(dataclasses.replace(self._director, cache_dir=staging), now)",
        "            director = self._updater(self._director, now)",
        f"{ATTACKS}::test_another_vehicles_director_metadata_does_not_lock_the_vehicle_out",
    ),
    Mutation(
        "releases judged after the update",
        UPTANE,
        "        incomplete = incomplete_releases(after, bundles, releases, installing)",
        "        incomplete = incomplete_releases([*before, *after], bundles, releases, installing)",
        f"{ATTACKS}::test_partial_bundle_an_image_the_update_replaces_does_not_complete_a_release",
    ),
    Mutation(
        "an update breaks no installed constraint",
        "src/evota/domain/compat.py",
        "        if u.serial in changed or (u.serial, str(u.requirement)) not in unmet_before",
        "        if u.serial in changed",
        f"{ATTACKS}::test_an_update_must_not_break_a_requirement_of_an_installed_image",
    ),
    Mutation(
        "key revocation",
        "src/evota/security/rotation.py",
        "            new_root.revoke_key(keyid, r)\n",
        "            pass\n",
        f"{ATTACKS} -k revoked",
    ),
    Mutation(
        "manifest counter",
        MANIFEST,
        "    if counter <= last.vehicle:",
        "    if False:",
        "tests/security/test_manifest.py::test_manifest_counter_must_rise_even_when_the_ecu_reports_are_fresh",
    ),
    Mutation(
        "ECU report counter",
        MANIFEST,
        "        if report.counter <= previous:",
        "        if False:",
        "tests/security/test_manifest.py::test_replayed_ecu_report_inside_a_new_manifest_is_refused",
    ),
    Mutation(
        "stored manifest counter",
        DEVICES,
        "        vehicle.manifest_counter = verified.counters.vehicle\n",
        "",
        f"{ROLLOUT}::test_a_manifest_counter_at_or_below_the_stored_one_is_refused[sqlite]",
    ),
    Mutation(
        "revoked device token",
        DEVICES,
        ".where(DeviceTokenRow.token_hash == token_hash(token), DeviceTokenRow.revoked_at.is_(None))",
        ".where(DeviceTokenRow.token_hash == token_hash(token))",
        f"{ROLLOUT}::test_re_provisioning_revokes_the_old_token_and_other_keys_are_refused[sqlite]",
    ),
    Mutation(
        "operator role",
        "src/evota/server/auth.py",
        "            if not allows(principal.role, permission):",
        "            if False:",
        f"{ROLLOUT}::test_gates_keep_vehicles_waiting_with_their_reasons[sqlite]",
    ),
    Mutation(
        "charger firmware: issued by the manufacturer root",
        FW_SIGNING,
        "        cert.verify_directly_issued_by(root)\n",
        "        pass\n",
        f"{FW_TESTS}::test_certificate_of_another_manufacturer_is_refused",
    ),
    Mutation(
        "charger firmware: no intermediates",
        FW_SIGNING,
        "    if _is_ca(cert):\n",
        "    if False:\n",
        f"{FW_TESTS}::test_intermediate_certificate_is_refused",
    ),
    Mutation(
        "charger firmware: certificate expiry",
        FW_SIGNING,
        "        if until > c.not_valid_after_utc:\n",
        "        if False:\n",
        f"{FW_TESTS}::test_expired_and_not_yet_valid_certificates_are_refused",
    ),
    Mutation(
        "charger firmware: signature over the whole image",
        FW_SIGNING,
        "            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))\n",
        "            pass\n",
        f"{FW_TESTS}::test_tampered_image_is_refused",
    ),
]


def run(m: Mutation, workdir: Path) -> tuple[bool, str]:
    src = workdir / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(ROOT / "src", src)
    target = workdir / m.file
    text = target.read_text(encoding="utf-8")
    if m.check not in text:
        return False, f"check not found in {m.file}: update this table"
    target.write_text(text.replace(m.check, m.disabled, 1), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(src)}
    node, *rest = m.tests.split(" ")
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", node, *rest]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)  # noqa: S603 (our own interpreter and tests)
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    return result.returncode == 1, summary


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="evota-mutation-") as tmp:
        workdir = Path(tmp)
        shutil.copytree(ROOT / "src", workdir / "src")
        probe = subprocess.run(
            [sys.executable, "-c", "import evota; print(evota.__file__)"],
            env={**os.environ, "PYTHONPATH": str(workdir / "src")},
            capture_output=True,
            text=True,
            check=True,
        )
        if not probe.stdout.startswith(str(workdir)):
            print(f"the mutated copy is not the one imported ({probe.stdout.strip()})")
            return 2
        missed = 0
        for m in MUTATIONS:
            caught, summary = run(m, workdir)
            missed += not caught
            print(f"{'caught' if caught else 'MISSED'}  {m.name:28} {summary}")
    print(f"{len(MUTATIONS) - missed}/{len(MUTATIONS)} removed checks caught by their tests")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
