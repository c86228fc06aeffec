"""Errors of talking to chargers.

    EvotaError
     └── ChargerError              a charger did not do what evota asked
          ├── ChargerOfflineError  it has no websocket session with this process
          ├── ChargerTimeoutError  it did not answer a call in time
          └── ChargerCallError       it answered with a CALLERROR (`ocpp_code` says which)

Raised by `rpc.CsmsChargePoint.request`; the campaign side turns each into a typed failure of
the attempt (the firmware request's `response`), never into a silent `None`.
"""

from __future__ import annotations

from evota.errors import EvotaError

__all__ = ["ChargerCallError", "ChargerError", "ChargerOfflineError", "ChargerTimeoutError"]


class ChargerError(EvotaError):
    code = "charger_error"
    default_message = "the charger did not do what was asked"


class ChargerOfflineError(ChargerError):
    code = "charger_offline"
    default_message = "the charger is not connected"


class ChargerTimeoutError(ChargerError):
    code = "charger_timeout"
    default_message = "the charger did not answer in time"


class ChargerCallError(ChargerError):
    code = "charger_call_error"
    default_message = "the charger answered with a CALLERROR"

    def __init__(self, ocpp_code: str, message: str | None = None) -> None:
        super().__init__(message or f"CALLERROR {ocpp_code}")
        self.ocpp_code = ocpp_code
