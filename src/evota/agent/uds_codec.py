"""The UDS wire contract between evota's tester (`evota.agent.uds`) and an ECU: names and rules.

The identifiers of evota's OEM routines and DIDs, the sessions, the negative response codes
by their ISO 14229 names, the seed/key algorithm, and the two counting rules of a download
(block payload, block counter). The records the OEM routines and DIDs carry are built and
parsed in `evota.agent.uds_records`. The tester and the ECU simulator (`evota.sim`) both
import these, so the two sides cannot drift apart on names; the simulator deliberately
re-states the counting rules itself, so that a tester bug here cannot agree with itself.
Standard services (0x10, 0x27, 0x34, 0x36...) are framed by udsoncan on the tester and by
the simulator itself. No I/O.
"""

from __future__ import annotations

import enum
import hashlib
import hmac

__all__ = [
    "FIRST_BLOCK_COUNTER",
    "MAX_ISOTP_MESSAGE",
    "SECURITY_LEVEL",
    "Did",
    "Nrc",
    "Routine",
    "Session",
    "block_payload_size",
    "next_block_counter",
    "nrc_name",
    "security_key",
]

# ISO 15765-2 (2004) frames carry at most 4095 bytes; longer ones need the 2016 escape
# sequence, which many ECUs' boot loaders do not implement. The tester never relies on it.
MAX_ISOTP_MESSAGE = 4095
FIRST_BLOCK_COUNTER = 0x01
SECURITY_LEVEL = 0x01  # requestSeed 0x01, sendKey 0x02


class Session(enum.IntEnum):
    DEFAULT = 0x01
    PROGRAMMING = 0x02
    EXTENDED = 0x03


class Did(enum.IntEnum):
    ECU_SERIAL = 0xF18C  # ISO ECUSerialNumber
    HARDWARE_ID = 0xF191  # ISO vehicleManufacturerECUHardwareNumber
    ECU_TYPE = 0xF197  # ISO systemNameOrEngineType
    SLOT_STATUS = 0xFD00  # OEM: encode_status
    MEMORY_LAYOUT = 0xFD01  # OEM: encode_layout
    USER_SETTINGS = 0xFD02  # OEM: encode_settings


class Routine(enum.IntEnum):
    ERASE = 0xFF00  # option: address u32, size u32 of the slot to erase
    CHECK_DEPENDENCIES = 0xFF01  # option: encode_image of what was just downloaded
    ACTIVATE = 0xFF02  # option: encode_activate; an ECUReset follows
    MARK_GOOD = 0xFF03
    REVERT = 0xFF04  # an ECUReset follows
    SELF_TEST = 0xFF05  # status record: encode_self_test
    RESET_STATE = 0xFF06  # the BMS state machine restarts its start-up checks
    VERSION_REPORT = 0xFF07  # option: encode_report_request; status record: signed JSON


class Nrc(enum.IntEnum):
    GENERAL_REJECT = 0x10
    SERVICE_NOT_SUPPORTED = 0x11
    SUBFUNCTION_NOT_SUPPORTED = 0x12
    INCORRECT_MESSAGE_LENGTH = 0x13
    CONDITIONS_NOT_CORRECT = 0x22
    REQUEST_SEQUENCE_ERROR = 0x24
    REQUEST_OUT_OF_RANGE = 0x31
    SECURITY_ACCESS_DENIED = 0x33
    INVALID_KEY = 0x35
    EXCEEDED_NUMBER_OF_ATTEMPTS = 0x36
    REQUIRED_TIME_DELAY_NOT_EXPIRED = 0x37
    UPLOAD_DOWNLOAD_NOT_ACCEPTED = 0x70
    TRANSFER_DATA_SUSPENDED = 0x71
    GENERAL_PROGRAMMING_FAILURE = 0x72
    WRONG_BLOCK_SEQUENCE_COUNTER = 0x73
    RESPONSE_PENDING = 0x78
    SUBFUNCTION_NOT_SUPPORTED_IN_ACTIVE_SESSION = 0x7E
    SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION = 0x7F


# The names ISO 14229-1 gives them, which is what a workshop engineer searches for.
_NRC_NAMES = {
    Nrc.GENERAL_REJECT: "generalReject",
    Nrc.SERVICE_NOT_SUPPORTED: "serviceNotSupported",
    Nrc.SUBFUNCTION_NOT_SUPPORTED: "subFunctionNotSupported",
    Nrc.INCORRECT_MESSAGE_LENGTH: "incorrectMessageLengthOrInvalidFormat",
    Nrc.CONDITIONS_NOT_CORRECT: "conditionsNotCorrect",
    Nrc.REQUEST_SEQUENCE_ERROR: "requestSequenceError",
    Nrc.REQUEST_OUT_OF_RANGE: "requestOutOfRange",
    Nrc.SECURITY_ACCESS_DENIED: "securityAccessDenied",
    Nrc.INVALID_KEY: "invalidKey",
    Nrc.EXCEEDED_NUMBER_OF_ATTEMPTS: "exceededNumberOfAttempts",
    Nrc.REQUIRED_TIME_DELAY_NOT_EXPIRED: "requiredTimeDelayNotExpired",
    Nrc.UPLOAD_DOWNLOAD_NOT_ACCEPTED: "uploadDownloadNotAccepted",
    Nrc.TRANSFER_DATA_SUSPENDED: "transferDataSuspended",
    Nrc.GENERAL_PROGRAMMING_FAILURE: "generalProgrammingFailure",
    Nrc.WRONG_BLOCK_SEQUENCE_COUNTER: "wrongBlockSequenceCounter",
    Nrc.RESPONSE_PENDING: "requestCorrectlyReceivedResponsePending",
    Nrc.SUBFUNCTION_NOT_SUPPORTED_IN_ACTIVE_SESSION: "subFunctionNotSupportedInActiveSession",
    Nrc.SERVICE_NOT_SUPPORTED_IN_ACTIVE_SESSION: "serviceNotSupportedInActiveSession",
}


def nrc_name(code: int) -> str:
    """The ISO name of a negative response code, or its hex value if evota does not know it."""
    try:
        return _NRC_NAMES[Nrc(code)]
    except ValueError:
        return f"nrc 0x{code:02X}"


def security_key(seed: bytes, secret: bytes, level: int = SECURITY_LEVEL) -> bytes:
    """The key an ECU expects for `seed` at `level`: HMAC-SHA-256 under its secret, 16 bytes.

    A keyed MAC, not the XOR-and-rotate of many boot loaders: a recorded seed/key pair then
    tells an attacker nothing about the key for the next seed. The secret is per ECU.
    """
    if not seed:
        raise ValueError("an empty seed cannot be answered")
    return hmac.new(secret, bytes([level]) + seed, hashlib.sha256).digest()[:16]


def block_payload_size(max_number_of_block_length: int) -> int:
    """Image bytes per TransferData request, from RequestDownload's maxNumberOfBlockLength.

    The ECU's figure counts the whole 0x36 request (service id and block counter included),
    so a block carries two bytes less; and it is capped at what one ISO-TP frame can carry
    without the escape sequence.
    """
    payload = min(max_number_of_block_length, MAX_ISOTP_MESSAGE) - 2
    if payload < 1:
        raise ValueError(f"maxNumberOfBlockLength {max_number_of_block_length} leaves no room for data")
    return payload


def next_block_counter(counter: int) -> int:
    """The block sequence counter after `counter`: 0x01 first, 0xFF wraps to 0x00."""
    return (counter + 1) & 0xFF
