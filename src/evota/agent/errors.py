"""The agent's errors.

    EvotaError
     └── AgentError                 the vehicle side could not do what it was asked
          ├── ProvisioningError     a state folder that is missing, incomplete or for another vehicle
          ├── JournalError          a journal record that cannot be read (corrupt, unknown format)
          ├── ServerError           the server refused a request or could not be reached
          ├── DownloadError         a transfer failed (network, size cap, hash) and may be retried
          ├── EcuError              a secondary refused or failed an operation
          │    ├── FlashError       writing or verifying a slot failed (bad sequence, key, block, hash)
          │    └── EcuUnreachableError  the ECU did not answer within its bound
          └── PreconditionError     the vehicle may not install now (the reasons say why)

Misuse by evota's own code (calling steps out of order) raises RuntimeError.
"""

from __future__ import annotations

from collections.abc import Sequence

from evota.errors import EvotaError

__all__ = [
    "AgentError",
    "DownloadError",
    "EcuError",
    "EcuUnreachableError",
    "FlashError",
    "JournalError",
    "PreconditionError",
    "ProvisioningError",
    "ServerError",
]


class AgentError(EvotaError):
    code = "agent_error"
    default_message = "the vehicle agent failed"


class ProvisioningError(AgentError):
    code = "provisioning_error"
    default_message = "the vehicle's state folder is not usable"


class JournalError(AgentError):
    code = "journal_error"
    default_message = "the install journal cannot be read"


class ServerError(AgentError):
    code = "server_error"
    default_message = "the server could not be reached or refused the request"

    def __init__(self, message: str | None = None, *, status: int | None = None) -> None:
        self.status = status  # None: not reached at all
        super().__init__(message)


class DownloadError(AgentError):
    code = "download_error"
    default_message = "an image download failed"

    def __init__(self, message: str | None = None, *, bad_data: bool = False) -> None:
        self.bad_data = bad_data  # True: the bytes were wrong (length, hash), not the network
        super().__init__(message)


class EcuError(AgentError):
    code = "ecu_error"
    default_message = "an ECU refused or failed an operation"


class FlashError(EcuError):
    code = "flash_error"
    default_message = "writing or verifying an ECU slot failed"


class EcuUnreachableError(EcuError):
    code = "ecu_unreachable"
    default_message = "an ECU did not answer"


class PreconditionError(AgentError):
    code = "precondition_failed"
    default_message = "the vehicle may not install now"

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("waiting: " + "; ".join(self.reasons))
