"""Signed version manifests: the server-side check, including the replay attack."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner

from evota.security.errors import (
    ManifestError,
    ManifestReplayError,
    ManifestSignatureError,
    UnknownEcuError,
    VehicleMismatchError,
)
from evota.security.manifest import (
    EcuReport,
    ManifestCounters,
    sign_ecu_report,
    sign_vehicle_manifest,
    verify_vehicle_manifest,
)
from tests.conftest import START, Vehicle, make_vehicle


def manifest(
    v: Vehicle,
    *,
    counter: int = 1,
    ecu_counter: int = 1,
    time: dt.datetime = START,
    vin: str | None = None,
    signer: CryptoSigner | None = None,
    report_signers: dict[str, CryptoSigner] | None = None,
) -> bytes:
    reports: dict[str, Any] = {}
    for serial in ("BMS-1", "VCMS-1"):
        report = EcuReport(
            serial, f"{serial.lower()}/1.0/fw.bin", 100, {"sha256": "ab" * 32}, time, ecu_counter
        )
        reports[serial] = sign_ecu_report(report, (report_signers or v.signers)[serial])
    return sign_vehicle_manifest(
        vin=vin or v.vin,
        primary_serial="GW-1",
        reports=reports,
        time=time,
        counter=counter,
        signer=signer or v.signers["GW-1"],
    )


def test_a_signed_manifest_is_accepted_and_returns_counters_to_store() -> None:
    v = make_vehicle()
    result = verify_vehicle_manifest(manifest(v, counter=7, ecu_counter=3), v.identity, last=None, now=START)
    assert result.vin == v.vin
    assert set(result.reports) == {"BMS-1", "VCMS-1"}
    assert result.counters == ManifestCounters(7, {"BMS-1": 3, "VCMS-1": 3})


def test_replayed_version_manifest_is_refused() -> None:
    v = make_vehicle()
    data = manifest(v)
    first = verify_vehicle_manifest(data, v.identity, last=None, now=START)
    with pytest.raises(ManifestReplayError):
        verify_vehicle_manifest(data, v.identity, last=first.counters, now=START)


def test_manifest_counter_must_rise_even_when_the_ecu_reports_are_fresh() -> None:
    v = make_vehicle()
    first = verify_vehicle_manifest(manifest(v, counter=4, ecu_counter=1), v.identity, last=None, now=START)
    with pytest.raises(ManifestReplayError):
        verify_vehicle_manifest(
            manifest(v, counter=4, ecu_counter=2), v.identity, last=first.counters, now=START
        )


def test_replayed_ecu_report_inside_a_new_manifest_is_refused() -> None:
    """A primary (or a man in the middle) re-sending an ECU's old report under a new
    manifest counter: the ECU's own counter must move too (Uptane: it changes every cycle)."""
    v = make_vehicle()
    first = verify_vehicle_manifest(manifest(v, counter=1, ecu_counter=5), v.identity, last=None, now=START)
    with pytest.raises(ManifestReplayError):
        verify_vehicle_manifest(
            manifest(v, counter=2, ecu_counter=5), v.identity, last=first.counters, now=START
        )


def _signed_without_time(v: Vehicle) -> bytes:
    from securesystemslib.formats import encode_canonical

    envelope = json.loads(manifest(v))
    del envelope["signed"]["time"]
    payload = str(encode_canonical(envelope["signed"])).encode()
    envelope["signatures"] = [v.signers["GW-1"].sign(payload).to_dict()]
    return json.dumps(envelope).encode()


CASES = {
    "primary-signed-by-other-key": (
        lambda v: manifest(v, signer=CryptoSigner.generate_ed25519()),
        ManifestSignatureError,
    ),
    "ecu-report-signed-by-other-key": (
        lambda v: manifest(v, report_signers={**v.signers, "BMS-1": CryptoSigner.generate_ed25519()}),
        ManifestSignatureError,
    ),
    "other-vin": (lambda v: manifest(v, vin="1HGCM82633A004352"), VehicleMismatchError),
    "from-the-future": (lambda v: manifest(v, time=START + dt.timedelta(hours=1)), ManifestError),
    "not-json": (lambda v: b"{not json", ManifestError),
    "unsignable-float": (
        lambda v: manifest(v).replace(b'"manifest_counter": 1', b'"manifest_counter": 1.5'),
        ManifestError,
    ),
    "signed-without-time": (lambda v: _signed_without_time(v), ManifestError),
    "too-large": (lambda v: b" " * 300_000, ManifestError),
    "tampered-after-signing": (
        lambda v: manifest(v).replace(b'"manifest_counter": 1', b'"manifest_counter": 9'),
        ManifestSignatureError,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES), ids=sorted(CASES))
def test_bad_manifests_are_refused_with_a_specific_error(case: str) -> None:
    v = make_vehicle()
    build, error = CASES[case]
    with pytest.raises(error):
        verify_vehicle_manifest(build(v), v.identity, last=None, now=START)


def test_a_report_for_an_ecu_the_vehicle_does_not_have_is_refused() -> None:
    v = make_vehicle()
    stranger = CryptoSigner.generate_ed25519()
    report = sign_ecu_report(EcuReport("TMS-9", "t/1/x", 1, {"sha256": "00" * 32}, START, 1), stranger)
    data = sign_vehicle_manifest(
        vin=v.vin,
        primary_serial="GW-1",
        reports={"TMS-9": report},
        time=START,
        counter=1,
        signer=v.signers["GW-1"],
    )
    with pytest.raises(UnknownEcuError):
        verify_vehicle_manifest(data, v.identity, last=None, now=START)


def test_a_report_filed_under_another_serial_is_refused() -> None:
    v = make_vehicle()
    envelope = json.loads(manifest(v))
    reports = envelope["signed"]["ecu_version_reports"]
    # VCMS's validly signed report filed under the BMS serial, and re-signed by the primary.
    reports["BMS-1"] = reports["VCMS-1"]
    data = sign_vehicle_manifest(
        vin=v.vin, primary_serial="GW-1", reports=reports, time=START, counter=1, signer=v.signers["GW-1"]
    )
    with pytest.raises((ManifestSignatureError, ManifestError)):
        verify_vehicle_manifest(data, v.identity, last=None, now=START)
