"""Signed version manifests: what each ECU runs, vouched for by the ECU and the primary.

An ECU version report (signed by the ECU's own key) names the installed image (path,
length, hashes), any attack the ECU detected, the latest time it verified, and a counter
that rises every report cycle. The vehicle version manifest (signed by the primary) bundles
the reports with the VIN, the primary's serial, a time and its own counter.

Envelopes are TUF-style `{"signed": …, "signatures": [{"keyid", "sig"}]}` over canonical
JSON (securesystemslib), so any TUF tooling can check them.

`verify_vehicle_manifest` is the server-side check, pure: bytes, the registered vehicle,
the counters last accepted and `now` in; a verified manifest (with the counters to store)
out, or a ManifestError naming what was wrong.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from securesystemslib.exceptions import FormatError, UnverifiedSignatureError, VerificationError
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import Key, Signature, Signer, SSlibKey

from evota.clock import utc
from evota.domain.fleet import EcuIdentity, VehicleIdentity
from evota.errors import InputError
from evota.security.errors import (
    ManifestError,
    ManifestReplayError,
    ManifestSignatureError,
    UnknownEcuError,
    VehicleMismatchError,
)

__all__ = [
    "MAX_MANIFEST_BYTES",
    "EcuReport",
    "ManifestCounters",
    "VerifiedManifest",
    "check_public_key",
    "sign_ecu_report",
    "sign_vehicle_manifest",
    "verify_vehicle_manifest",
]

MAX_MANIFEST_BYTES = 256 * 1024
ECU_REPORT_TYPE = "ecu_version_report"
VEHICLE_MANIFEST_TYPE = "vehicle_version_manifest"


def _canonical(obj: Any) -> bytes:
    out = encode_canonical(obj)
    assert isinstance(out, str)
    return out.encode("utf-8")


def _time(value: dt.datetime) -> str:
    return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ManifestError("manifest time is missing")
    try:
        return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise ManifestError(f"manifest time {value!r} is malformed") from None


@dataclasses.dataclass(frozen=True)
class EcuReport:
    ecu_serial: str
    installed_path: str
    length: int
    hashes: Mapping[str, str]
    time: dt.datetime
    counter: int
    attacks_detected: str = ""

    def to_signed(self) -> dict[str, Any]:
        return {
            "_type": ECU_REPORT_TYPE,
            "ecu_serial": self.ecu_serial,
            "installed_image": {
                "filepath": self.installed_path,
                "fileinfo": {"length": self.length, "hashes": dict(self.hashes)},
            },
            "attacks_detected": self.attacks_detected,
            "time": _time(self.time),
            "report_counter": self.counter,
        }

    @classmethod
    def from_signed(cls, body: Mapping[str, Any]) -> EcuReport:
        try:
            if body["_type"] != ECU_REPORT_TYPE:
                raise ManifestError(f"expected an ECU version report, got {body['_type']!r}")
            image = body["installed_image"]
            return cls(
                ecu_serial=str(body["ecu_serial"]),
                installed_path=str(image["filepath"]),
                length=int(image["fileinfo"]["length"]),
                hashes={str(k): str(v) for k, v in image["fileinfo"]["hashes"].items()},
                time=_parse_time(body["time"]),
                counter=int(body["report_counter"]),
                attacks_detected=str(body.get("attacks_detected", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ManifestError(f"malformed ECU version report: {e!r}") from e


@dataclasses.dataclass(frozen=True)
class ManifestCounters:
    """The counters of the last accepted manifest; the next one must exceed each."""

    vehicle: int = 0
    ecus: Mapping[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class VerifiedManifest:
    vin: str
    primary_serial: str
    time: dt.datetime
    reports: Mapping[str, EcuReport]
    counters: ManifestCounters

    @property
    def attacks(self) -> dict[str, str]:
        return {s: r.attacks_detected for s, r in self.reports.items() if r.attacks_detected}


def _envelope(signed: dict[str, Any], signer: Signer) -> dict[str, Any]:
    sig = signer.sign(_canonical(signed))
    return {"signed": signed, "signatures": [sig.to_dict()]}


def sign_ecu_report(report: EcuReport, signer: Signer) -> dict[str, Any]:
    return _envelope(report.to_signed(), signer)


def sign_vehicle_manifest(
    *,
    vin: str,
    primary_serial: str,
    reports: Mapping[str, Mapping[str, Any]],
    time: dt.datetime,
    counter: int,
    signer: Signer,
) -> bytes:
    """The manifest bytes the primary sends, with each ECU's signed report inside."""
    signed = {
        "_type": VEHICLE_MANIFEST_TYPE,
        "vin": vin,
        "primary_ecu_serial": primary_serial,
        "ecu_version_reports": {k: dict(v) for k, v in reports.items()},
        "time": _time(time),
        "manifest_counter": counter,
    }
    return json.dumps(_envelope(signed, signer)).encode("utf-8")


def check_public_key(ecu: EcuIdentity) -> None:
    """Refuse (InputError) a registered key that could never verify a signature.

    Provisioning must not accept a key that only looks like one (`{"keyid": "x"}`): the
    vehicle would be registered, and every manifest it sends refused. Verifying a dummy
    signature makes securesystemslib load the key; a usable key fails only on the signature.
    """
    if ecu.public_key is None:
        raise InputError(f"ECU {ecu.serial} has no public key")
    key_dict = dict(ecu.public_key)
    keyid = str(key_dict.pop("keyid"))
    try:
        key = SSlibKey.from_dict(keyid, key_dict)
        key.verify_signature(Signature(keyid, "00" * 64), b"evota key check")
    except (KeyError, TypeError, ValueError, VerificationError) as e:
        # VerificationError ("could not verify at all") subclasses UnverifiedSignatureError
        # ("verified: bad signature") in securesystemslib, so it must be caught first.
        raise InputError(f"the public key of ECU {ecu.serial} is not a usable key: {e!r}") from None
    except UnverifiedSignatureError:
        return  # the key loaded and judged the signature: it is a key
    raise InputError(f"the public key of ECU {ecu.serial} accepted a signature it cannot have made")


def _check_signature(envelope: Mapping[str, Any], ecu: EcuIdentity, what: str) -> Mapping[str, Any]:
    if ecu.public_key is None:
        raise ManifestSignatureError(f"no public key is registered for ECU {ecu.serial}")
    key_dict = dict(ecu.public_key)
    keyid = str(key_dict.pop("keyid"))
    key: Key = SSlibKey.from_dict(keyid, key_dict)
    try:
        signed = envelope["signed"]
        sigs = [Signature.from_dict(dict(s)) for s in envelope["signatures"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"malformed {what} envelope: {e!r}") from e
    if not isinstance(signed, Mapping):
        raise ManifestError(f"malformed {what}: 'signed' is not an object")
    try:
        payload = _canonical(signed)
    except FormatError as e:  # e.g. a float: canonical JSON cannot carry it, so it was never signed
        raise ManifestError(f"malformed {what}: {e}") from e
    for sig in sigs:
        if sig.keyid != keyid:
            continue
        try:
            key.verify_signature(sig, payload)
        except UnverifiedSignatureError:
            break
        return signed
    raise ManifestSignatureError(f"{what} is not signed by the registered key of ECU {ecu.serial}")


def verify_vehicle_manifest(
    data: bytes,
    vehicle: VehicleIdentity,
    *,
    last: ManifestCounters | None,
    now: dt.datetime,
    max_future_skew: dt.timedelta = dt.timedelta(minutes=5),
) -> VerifiedManifest:
    """The server's check of a vehicle version manifest.

    Refuses a manifest that is too large or malformed, for another vehicle, not signed by the
    registered primary key, holding a report for an unknown ECU or one not signed by that
    ECU's key, dated in the future, or whose counters are not above the last accepted ones
    (a replay). Returns the manifest with the counters to store for the next check.
    """
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        envelope = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(f"manifest is not JSON: {e}") from e
    if not isinstance(envelope, Mapping):
        raise ManifestError("manifest is not a JSON object")
    signed = _check_signature(envelope, vehicle.primary, "vehicle manifest")
    try:
        if signed["_type"] != VEHICLE_MANIFEST_TYPE:
            raise ManifestError(f"expected a vehicle version manifest, got {signed['_type']!r}")
        vin, primary = str(signed["vin"]), str(signed["primary_ecu_serial"])
        counter = int(signed["manifest_counter"])
        report_envelopes = dict(signed["ecu_version_reports"])
    except (KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"malformed vehicle manifest: {e!r}") from e
    if vin != vehicle.vin or primary != vehicle.primary_serial:
        raise VehicleMismatchError(
            f"manifest is for {vin}/{primary}, not {vehicle.vin}/{vehicle.primary_serial}"
        )
    time = _parse_time(signed.get("time"))
    if time > now + max_future_skew:
        raise ManifestError(f"manifest is dated in the future ({_time(time)})")
    last = last or ManifestCounters()
    if counter <= last.vehicle:
        raise ManifestReplayError(f"manifest counter {counter} is not above the last accepted {last.vehicle}")

    reports: dict[str, EcuReport] = {}
    for serial, env in report_envelopes.items():
        ecu = vehicle.ecu(str(serial))
        if ecu is None:
            raise UnknownEcuError(f"manifest reports ECU {serial}, which {vehicle.vin} does not have")
        if not isinstance(env, Mapping):
            raise ManifestError(f"report of ECU {serial} is not an object")
        report = EcuReport.from_signed(_check_signature(env, ecu, f"report of ECU {serial}"))
        if report.ecu_serial != serial:
            raise ManifestError(f"report filed under {serial} is signed for {report.ecu_serial}")
        previous = last.ecus.get(serial, 0)
        if report.counter <= previous:
            raise ManifestReplayError(
                f"report of ECU {serial}: counter {report.counter} is not above the last accepted {previous}"
            )
        reports[serial] = report
    counters = ManifestCounters(counter, {**last.ecus, **{s: r.counter for s, r in reports.items()}})
    return VerifiedManifest(vin, primary, time, reports, counters)
