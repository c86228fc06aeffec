"""Charger firmware signing: a manufacturer-root-style CA, a signing certificate, signatures.

OCPP's secure firmware update (2.0.1 L01, and the 1.6 security white paper) has the CSMS
send, with each image, the X.509 certificate it was signed under and a Base64 signature
over the whole file. The charger checks the certificate against the ManufacturerRootCertificate
it holds, then the signature against the image it downloaded. The spec forbids intermediate
certificates, so the signing certificate is issued directly by the root.

evota plays that manufacturer for the firmware it publishes:

    HOME/offline/charger-firmware-root.<id>.pem      the root CA's private key (offline)
    HOME/offline/charger-firmware-signing.<id>.pem   the signing key (offline: used only when
                                                      an operator publishes an image)
    HOME/charger-firmware/pki/root.pem               the root certificate: install it on chargers
    HOME/charger-firmware/pki/signing.pem            the signing certificate, sent with updates

`<id>` is the first 16 hex digits of the SHA-256 of the public key. Schemes: ECDSA on P-256
with SHA-256 (the default: small signatures, and what `openssl dgst -sha256 -verify` checks
on stations such as EVerest's), or RSA-PSS with SHA-256 and a 3072-bit key.

`verify_firmware` and `check_certificate` are pure (bytes and `now` in): the CSMS runs them
before a campaign starts, and the charger simulator runs the same checks a station does.
This module does not talk to chargers and does not store images.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import enum
import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from evota.errors import InputError, KeyUnavailableError
from evota.fsutil import atomic_write
from evota.security.errors import FirmwareCertificateError, FirmwareSignatureError
from evota.security.keys import KeyStore

__all__ = [
    "FirmwarePki",
    "FirmwareSignature",
    "SigningScheme",
    "check_certificate",
    "verify_firmware",
    "verify_signature",
]

MAX_CERTIFICATE = 5500  # OCPP: signingCertificate maxLength
MAX_SIGNATURE = 800  # OCPP: signature maxLength (Base64)
_ROOT, _SIGNING = "charger-firmware-root", "charger-firmware-signing"
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class SigningScheme(enum.StrEnum):
    ECDSA_P256 = "ecdsa-p256-sha256"
    RSA_PSS = "rsa-pss-sha256"


@dataclasses.dataclass(frozen=True)
class FirmwareSignature:
    signature: str  # Base64, over the whole file
    certificate_pem: str
    certificate_serial: str  # hex


def _generate(scheme: SigningScheme) -> PrivateKey:
    if scheme is SigningScheme.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def _key_id(public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def _pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _sign_data(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    return key.sign(
        data,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size),
        hashes.SHA256(),
    )


class FirmwarePki:
    """The signing CA and certificate of one home (see the module docstring for the files)."""

    def __init__(self, home: Path, keys: KeyStore) -> None:
        self.folder = home / "charger-firmware" / "pki"
        self.keys = keys

    @property
    def root_file(self) -> Path:
        return self.folder / "root.pem"

    @property
    def signing_file(self) -> Path:
        return self.folder / "signing.pem"

    def exists(self) -> bool:
        return self.root_file.is_file() and self.signing_file.is_file()

    def root_certificate(self) -> x509.Certificate:
        return self._load(self.root_file)

    def signing_certificate(self) -> x509.Certificate:
        return self._load(self.signing_file)

    def _load(self, path: Path) -> x509.Certificate:
        if not path.is_file():
            raise InputError(
                "no charger firmware signing key in this home: "
                "create one with `evota charger firmware init-signing`"
            )
        return x509.load_pem_x509_certificate(path.read_bytes())

    def init(
        self,
        *,
        now: dt.datetime,
        scheme: SigningScheme = SigningScheme.ECDSA_P256,
        organisation: str = "evota",
        root_days: int = 3650,
        signing_days: int = 730,
    ) -> x509.Certificate:
        """Create the root CA and a signing certificate; returns the root certificate.

        Raises:
            InputError: the home has them already (`renew` replaces the signing certificate).
        """
        if self.root_file.exists():
            raise InputError(f"{self.root_file} exists: this home has a firmware signing root already")
        if not 1 <= signing_days <= root_days <= 36500:
            raise InputError("certificate lifetimes: 1 ≤ signing days ≤ root days ≤ 36500")
        root_key = _generate(scheme)
        subject = _name(f"{organisation} charger firmware root", organisation)
        root = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=root_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        self._store_key(_ROOT, root_key)
        atomic_write(self.root_file, root.public_bytes(serialization.Encoding.PEM))
        self._issue_signing(root, root_key, scheme, now=now, days=signing_days)
        return root

    def renew(self, *, now: dt.datetime, days: int = 730) -> x509.Certificate:
        """A new signing key and certificate from the same root (needs the offline root key).
        Images signed before keep their certificate, and verify while it is valid."""
        root = self.root_certificate()
        root_key = self._private_key(root)
        scheme = (
            SigningScheme.ECDSA_P256
            if isinstance(root_key, ec.EllipticCurvePrivateKey)
            else SigningScheme.RSA_PSS
        )
        return self._issue_signing(root, root_key, scheme, now=now, days=days)

    def _issue_signing(
        self,
        root: x509.Certificate,
        root_key: PrivateKey,
        scheme: SigningScheme,
        *,
        now: dt.datetime,
        days: int,
    ) -> x509.Certificate:
        key = _generate(scheme)
        not_after = min(now + dt.timedelta(days=days), root.not_valid_after_utc)
        organisation = root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                _name(
                    f"{organisation!s} charger firmware signing {_key_id(key.public_key())}",
                    str(organisation),
                )
            )
            .issuer_name(root.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
            )
            .sign(root_key, hashes.SHA256())
        )
        self._store_key(_SIGNING, key)
        atomic_write(self.signing_file, cert.public_bytes(serialization.Encoding.PEM))
        return cert

    def _store_key(self, label: str, key: PrivateKey) -> None:
        folder = self.keys.offline_dir
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(folder / f"{label}.{_key_id(key.public_key())}.pem", _pem(key), mode=0o600)

    def _private_key(self, cert: x509.Certificate) -> PrivateKey:
        public = cert.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise FirmwareCertificateError("the certificate's key is neither EC nor RSA")
        keyid = _key_id(public)
        for folder in self.keys.offline_dirs:
            for path in sorted(folder.glob(f"*.{keyid}.pem")) if folder.is_dir() else ():
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
                if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
                    return key
        raise KeyUnavailableError(
            f"the charger firmware key {keyid} is not in the offline folder(s) "
            f"{', '.join(map(str, self.keys.offline_dirs))}: mount it or set EVOTA_OFFLINE_DIR"
        )

    def sign(self, data: bytes) -> FirmwareSignature:
        """Sign a whole image with the current signing key."""
        cert = self.signing_certificate()
        signature = base64.b64encode(_sign_data(self._private_key(cert), data)).decode("ascii")
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        if len(signature) > MAX_SIGNATURE or len(pem) > MAX_CERTIFICATE:
            raise RuntimeError("signature or certificate beyond OCPP's field limits")  # our keys never are
        return FirmwareSignature(signature, pem, format(cert.serial_number, "x"))


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _parse(pem: str | bytes, what: str) -> x509.Certificate:
    data = pem.encode() if isinstance(pem, str) else pem
    if len(data) > MAX_CERTIFICATE * 4:
        raise FirmwareCertificateError(f"the {what} is too long to be a certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as e:
        raise FirmwareCertificateError(f"the {what} is not a PEM X.509 certificate: {e}") from None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def check_certificate(
    certificate_pem: str | bytes,
    root_pem: str | bytes,
    *,
    now: dt.datetime,
    valid_until: dt.datetime | None = None,
) -> x509.Certificate:
    """The signing certificate, if it is issued directly by the root and valid from `now` to
    `valid_until` (default: `now`); returns it.

    Raises:
        FirmwareCertificateError: unreadable, not issued by this root (an intermediate, or
            another manufacturer's), a CA itself, expired or not yet valid, or too weak a key.
    """
    cert, root = _parse(certificate_pem, "signing certificate"), _parse(root_pem, "root certificate")
    if not _is_ca(root):
        raise FirmwareCertificateError("the root certificate is not a CA")
    if _is_ca(cert):
        raise FirmwareCertificateError("the signing certificate is a CA: intermediates are not allowed")
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        raise FirmwareCertificateError(
            f"the signing certificate ({cert.subject.rfc4514_string()}) is not issued by the root "
            f"({root.subject.rfc4514_string()})"
        ) from None
    until = valid_until or now
    for c, what in ((root, "root"), (cert, "signing")):
        if now < c.not_valid_before_utc:
            raise FirmwareCertificateError(
                f"the {what} certificate is not valid before {c.not_valid_before_utc}"
            )
        if until > c.not_valid_after_utc:
            raise FirmwareCertificateError(
                f"the {what} certificate expires {c.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, "
                f"before {until:%Y-%m-%d %H:%M} UTC"
            )
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < 2048:
        raise FirmwareCertificateError(f"an RSA signing key of {public.key_size} bits (at least 2048)")
    if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.key_size < 224:
        raise FirmwareCertificateError(f"an EC signing key of {public.curve.key_size} bits (at least 224)")
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise FirmwareCertificateError("the signing key is neither RSA nor EC")
    return cert


def verify_firmware(
    data: bytes, signature_b64: str, certificate_pem: str | bytes, root_pem: str | bytes, *, now: dt.datetime
) -> None:
    """Check an image the way a station must before installing it: the certificate under the
    root (`check_certificate`), then the signature over every byte.

    Raises:
        FirmwareCertificateError: see `check_certificate`.
        FirmwareSignatureError: the signature is not Base64, or does not verify over `data`.
    """
    cert = check_certificate(certificate_pem, root_pem, now=now)
    _verify(data, signature_b64, cert)


def verify_signature(data: bytes, signature_b64: str, certificate_pem: str | bytes) -> None:
    """The signature alone, under the certificate's key, with no chain or validity check: for a
    station that has no manufacturer root configured (weaker, and the simulator says so).

    Raises:
        FirmwareCertificateError: the certificate cannot be read.
        FirmwareSignatureError: see `verify_firmware`.
    """
    _verify(data, signature_b64, _parse(certificate_pem, "signing certificate"))


def _verify(data: bytes, signature_b64: str, cert: x509.Certificate) -> None:
    if len(signature_b64) > MAX_SIGNATURE:
        raise FirmwareSignatureError("the signature is longer than OCPP allows")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise FirmwareSignatureError("the signature is not Base64") from None
    public = cert.public_key()
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(
                signature,
                data,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
                hashes.SHA256(),
            )
    except InvalidSignature:
        raise FirmwareSignatureError(
            f"the signature does not verify over the image under {cert.subject.rfc4514_string()}"
        ) from None
