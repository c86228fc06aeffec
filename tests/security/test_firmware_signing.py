"""Charger firmware signing: the PKI a home makes, and every way a station must refuse an image.

Named after what each check stops, and run for both schemes (ECDSA P-256, RSA-PSS 3072).
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from evota.errors import InputError, KeyUnavailableError
from evota.security.errors import FirmwareCertificateError, FirmwareSignatureError
from evota.security.firmware_signing import FirmwarePki, SigningScheme, check_certificate, verify_firmware
from evota.security.keys import KeyStore

NOW = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.UTC)
IMAGE = b"charger firmware " * 1000


def pki(
    folder: Path, scheme: SigningScheme = SigningScheme.ECDSA_P256, **kw: object
) -> tuple[FirmwarePki, bytes]:
    p = FirmwarePki(folder, KeyStore(folder / "keys", [folder / "offline"]))
    root = p.init(now=NOW, scheme=scheme, **kw)  # type: ignore[arg-type]
    return p, root.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("scheme", list(SigningScheme))
def test_an_image_signed_by_the_home_verifies_under_its_root(tmp_path: Path, scheme: SigningScheme) -> None:
    p, root = pki(tmp_path, scheme)
    signed = p.sign(IMAGE)
    verify_firmware(IMAGE, signed.signature, signed.certificate_pem, root, now=NOW)
    assert len(signed.signature) <= 800 and len(signed.certificate_pem) <= 5500  # OCPP's field limits
    cert = x509.load_pem_x509_certificate(signed.certificate_pem.encode())
    assert cert.issuer == x509.load_pem_x509_certificate(root).subject  # no intermediate
    assert format(cert.serial_number, "x") == signed.certificate_serial
    # The private keys are in the offline folder, never beside the certificates.
    assert sorted(f.name.split(".")[0] for f in (tmp_path / "offline").iterdir()) == [
        "charger-firmware-root",
        "charger-firmware-signing",
    ]
    assert all((f.stat().st_mode & 0o777) == 0o600 for f in (tmp_path / "offline").iterdir())
    assert not list((tmp_path / "charger-firmware" / "pki").glob("*key*"))


@pytest.mark.parametrize("scheme", list(SigningScheme))
def test_tampered_image_is_refused(tmp_path: Path, scheme: SigningScheme) -> None:
    p, root = pki(tmp_path, scheme)
    signed = p.sign(IMAGE)
    for tampered in (IMAGE[:-1] + b"X", IMAGE + b"\0", IMAGE[1:]):
        with pytest.raises(FirmwareSignatureError):
            verify_firmware(tampered, signed.signature, signed.certificate_pem, root, now=NOW)


def test_signature_of_another_image_is_refused(tmp_path: Path) -> None:
    p, root = pki(tmp_path)
    other = p.sign(b"another image")
    with pytest.raises(FirmwareSignatureError):
        verify_firmware(IMAGE, other.signature, other.certificate_pem, root, now=NOW)


@pytest.mark.parametrize("garbage", ["not base64!", "A" * 801, ""])
def test_malformed_signature_is_refused(tmp_path: Path, garbage: str) -> None:
    p, root = pki(tmp_path)
    signed = p.sign(IMAGE)
    with pytest.raises(FirmwareSignatureError):
        verify_firmware(IMAGE, garbage, signed.certificate_pem, root, now=NOW)


def test_certificate_of_another_manufacturer_is_refused(tmp_path: Path) -> None:
    mine, my_root = pki(tmp_path / "mine")
    theirs, _ = pki(tmp_path / "theirs", organisation="rogue")
    signed = theirs.sign(IMAGE)
    with pytest.raises(FirmwareCertificateError, match="not issued by the root"):
        verify_firmware(IMAGE, signed.signature, signed.certificate_pem, my_root, now=NOW)
    del mine


def test_intermediate_certificate_is_refused(tmp_path: Path) -> None:
    """The spec forbids intermediates: a CA certificate as the signer is refused, even if the
    root issued it."""
    p, root_pem = pki(tmp_path)
    root = p.root_certificate()
    root_key = p._private_key(root)
    key = ec.generate_private_key(ec.SECP256R1())
    intermediate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "intermediate")]))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    signature = base64.b64encode(key.sign(IMAGE, ec.ECDSA(hashes.SHA256()))).decode()
    with pytest.raises(FirmwareCertificateError, match="intermediates"):
        verify_firmware(
            IMAGE, signature, intermediate.public_bytes(serialization.Encoding.PEM), root_pem, now=NOW
        )


def test_expired_and_not_yet_valid_certificates_are_refused(tmp_path: Path) -> None:
    p, root = pki(tmp_path, signing_days=30)
    signed = p.sign(IMAGE)
    with pytest.raises(FirmwareCertificateError, match="expires"):
        verify_firmware(
            IMAGE, signed.signature, signed.certificate_pem, root, now=NOW + dt.timedelta(days=31)
        )
    with pytest.raises(FirmwareCertificateError, match="not valid before"):
        verify_firmware(IMAGE, signed.signature, signed.certificate_pem, root, now=NOW - dt.timedelta(days=1))
    # A campaign that would outlive the certificate is refused before it starts.
    with pytest.raises(FirmwareCertificateError, match="before"):
        check_certificate(signed.certificate_pem, root, now=NOW, valid_until=NOW + dt.timedelta(days=45))
    check_certificate(signed.certificate_pem, root, now=NOW, valid_until=NOW + dt.timedelta(days=29))


def test_garbage_certificates_are_refused(tmp_path: Path) -> None:
    p, root = pki(tmp_path)
    signed = p.sign(IMAGE)
    with pytest.raises(FirmwareCertificateError, match="not a PEM"):
        verify_firmware(IMAGE, signed.signature, "-----BEGIN CERTIFICATE-----\nxx\n", root, now=NOW)
    with pytest.raises(FirmwareCertificateError, match="not a CA"):  # the signing cert posing as root
        check_certificate(signed.certificate_pem, signed.certificate_pem, now=NOW)


def test_renewal_keeps_the_root_and_old_signatures(tmp_path: Path) -> None:
    p, root = pki(tmp_path)
    old = p.sign(IMAGE)
    p.renew(now=NOW + dt.timedelta(days=1))
    new = p.sign(IMAGE)
    assert new.certificate_serial != old.certificate_serial
    for s in (old, new):
        verify_firmware(IMAGE, s.signature, s.certificate_pem, root, now=NOW + dt.timedelta(days=2))


def test_the_home_keeps_one_root_and_signing_needs_the_offline_key(tmp_path: Path) -> None:
    p, _ = pki(tmp_path)
    with pytest.raises(InputError, match="exists"):
        p.init(now=NOW)
    for key in (tmp_path / "offline").iterdir():
        key.rename(tmp_path / key.name)  # the offline medium is unmounted
    with pytest.raises(KeyUnavailableError, match="offline"):
        p.sign(IMAGE)
    empty = FirmwarePki(
        tmp_path / "empty", KeyStore(tmp_path / "empty" / "keys", [tmp_path / "empty" / "off"])
    )
    with pytest.raises(InputError, match="init-signing"):
        empty.sign(IMAGE)
