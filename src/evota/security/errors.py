"""Security errors: each names the attack or failure it stops.

    EvotaError
     └── SecurityError
          ├── VerificationError              data from a repository or vehicle was refused
          │    ├── SignatureError            too few valid signatures (also: revoked keys)
          │    ├── MetadataRollbackError     metadata older than what the vehicle trusts
          │    ├── FreezeError               metadata expired at the vehicle's trusted time
          │    ├── MixAndMatchError          metadata that disagrees with the snapshot/timestamp
          │    ├── TamperedImageError        image whose length or hashes do not match
          │    ├── EndlessDataError          more bytes than the signed length
          │    ├── ImageRollbackError        image with a lower release counter than installed
          │    ├── HardwareMismatchError     image not built for the ECU's hardware
          │    ├── DirectorImageMismatchError  director names an image the image repo does not vouch for
          │    ├── PartialBundleError        director omits images of a release that must install together
          │    ├── VehicleMismatchError      metadata for another vehicle or for ECUs it does not have
          │    ├── IncompatibleError         the result would break a `requires` of an assigned image
          │    ├── FirmwareCertificateError  a charger firmware signing certificate that does not
          │    │                             chain to the manufacturer root, or has expired
          │    ├── FirmwareSignatureError    a charger firmware image whose signature does not verify
          │    └── ManifestError             a version manifest the server must refuse
          │         ├── ManifestSignatureError
          │         ├── ManifestReplayError  a counter or nonce seen before
          │         └── UnknownEcuError
          ├── RepositoryUnavailableError     could not fetch (network, HTTP error): retry later
          ├── AuthenticationError            no token, or an unknown or revoked one (HTTP 401)
          └── PermissionDeniedError          a valid token whose role lacks the permission (HTTP 403)

`VerificationError`s are evidence of an attack or a broken repository and must be reported;
`RepositoryUnavailableError` is ordinary weather.
"""

from __future__ import annotations

from evota.errors import EvotaError

__all__ = [
    "AuthenticationError",
    "DirectorImageMismatchError",
    "EndlessDataError",
    "FirmwareCertificateError",
    "FirmwareSignatureError",
    "FreezeError",
    "HardwareMismatchError",
    "ImageRollbackError",
    "IncompatibleError",
    "ManifestError",
    "ManifestReplayError",
    "ManifestSignatureError",
    "MetadataRollbackError",
    "MixAndMatchError",
    "PartialBundleError",
    "PermissionDeniedError",
    "RepositoryUnavailableError",
    "SecurityError",
    "SignatureError",
    "TamperedImageError",
    "UnknownEcuError",
    "VehicleMismatchError",
    "VerificationError",
]


class SecurityError(EvotaError):
    code = "security_error"


class VerificationError(SecurityError):
    code = "verification_failed"
    default_message = "verification failed"


class SignatureError(VerificationError):
    code = "bad_signature"
    default_message = "metadata is not signed by enough trusted keys"


class MetadataRollbackError(VerificationError):
    code = "metadata_rollback"
    default_message = "metadata is older than the version already trusted"


class FreezeError(VerificationError):
    code = "metadata_expired"
    default_message = "metadata has expired (freeze attack or stale repository)"


class MixAndMatchError(VerificationError):
    code = "mix_and_match"
    default_message = "metadata does not match the version and hashes named by the snapshot"


class TamperedImageError(VerificationError):
    code = "tampered_image"
    default_message = "image length or hashes do not match the signed metadata"


class EndlessDataError(VerificationError):
    code = "endless_data"
    default_message = "more bytes were served than the signed length"


class ImageRollbackError(VerificationError):
    code = "image_rollback"
    default_message = "image has a lower release counter than the installed one"


class HardwareMismatchError(VerificationError):
    code = "hardware_mismatch"
    default_message = "image is not built for this ECU's hardware"


class DirectorImageMismatchError(VerificationError):
    code = "director_image_mismatch"
    default_message = "the director names an image the image repository does not vouch for"


class PartialBundleError(VerificationError):
    code = "partial_bundle"
    default_message = "the director omits images of a release that must install together"


class VehicleMismatchError(VerificationError):
    code = "vehicle_mismatch"
    default_message = "metadata is for another vehicle or names ECUs it does not have"


class IncompatibleError(VerificationError):
    code = "incompatible"
    default_message = "the assigned images would break a version constraint"


class FirmwareCertificateError(VerificationError):
    code = "firmware_certificate"
    default_message = "the firmware signing certificate is not valid under the manufacturer root"


class FirmwareSignatureError(VerificationError):
    code = "firmware_signature"
    default_message = "the firmware image's signature does not verify"


class ManifestError(VerificationError):
    code = "bad_manifest"
    default_message = "version manifest refused"


class ManifestSignatureError(ManifestError):
    code = "manifest_signature"
    default_message = "version manifest or ECU report signature is not valid"


class ManifestReplayError(ManifestError):
    code = "manifest_replay"
    default_message = "version manifest was replayed (counter not newer than the last one)"


class UnknownEcuError(ManifestError):
    code = "unknown_ecu"
    default_message = "version manifest names an ECU this vehicle does not have"


class RepositoryUnavailableError(SecurityError):
    code = "repository_unavailable"
    default_message = "repository could not be reached"


class AuthenticationError(SecurityError):
    code = "unauthenticated"
    default_message = "a valid bearer token is required"


class PermissionDeniedError(SecurityError):
    code = "forbidden"
    default_message = "this token's role does not allow that"
