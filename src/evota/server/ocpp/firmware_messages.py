"""The firmware messages, built and read: one pure pair per message and version.

    SignedUpdateFirmware (1.6 security extension)  requestId, firmware{…, signingCertificate, signature}
    UpdateFirmware (1.6 core)                      location, retrieveDate: no requestId, no signature
    UpdateFirmware (2.0.1)                         requestId, firmware{…, signingCertificate, signature}
    TriggerMessage / ExtendedTriggerMessage        FirmwareStatusNotification, to reconcile

Builders take an `Order` and the server's base URL (the location is where the charger
downloads the image: this server's `/charger-firmware/…`), and the time, in UTC with a Z.
`answer_status` reads a typed answer back into the string `domain.firmware` expects.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ocpp.v16 import call as call16
from ocpp.v16.enums import MessageTrigger
from ocpp.v201 import call as call201
from ocpp.v201.enums import MessageTriggerEnumType

from evota.domain.chargers import Protocol
from evota.domain.firmware import FirmwareMessage
from evota.server.services.firmware_outbox import Order

__all__ = ["answer_status", "build_trigger", "build_update", "ocpp_time"]

MAX_LOCATION = 512


def ocpp_time(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_update(order: Order, base_url: str, now: dt.datetime) -> Any:
    """The message to send for `order` (a payload dataclass of the `ocpp` package)."""
    location = base_url.rstrip("/") + order.path
    if len(location) > MAX_LOCATION:
        raise ValueError(f"firmware location longer than {MAX_LOCATION} characters: {location[:60]}…")
    firmware: dict[str, str] = {"location": location, "retrieve_date_time": ocpp_time(now)}
    if order.install_at is not None:
        firmware["install_date_time"] = ocpp_time(order.install_at)
    if order.message is FirmwareMessage.PLAIN_16:
        return call16.UpdateFirmware(
            location=location,
            retrieve_date=ocpp_time(now),
            retries=order.retries,
            retry_interval=order.retry_interval_s,
        )
    firmware["signing_certificate"] = order.certificate_pem
    firmware["signature"] = order.signature
    if order.message is FirmwareMessage.SIGNED_16:
        return call16.SignedUpdateFirmware(
            request_id=order.request_id,
            firmware=firmware,
            retries=order.retries,
            retry_interval=order.retry_interval_s,
        )
    return call201.UpdateFirmware(
        request_id=order.request_id,
        firmware=firmware,  # the package's snake-cased dict form of FirmwareType
        retries=order.retries,
        retry_interval=order.retry_interval_s,
    )


def answer_status(answer: Any) -> str:
    """The status of an answer to an update ("" for 1.6 core's empty UpdateFirmware.conf)."""
    return str(getattr(answer, "status", "") or "")


def build_trigger(protocol: Protocol, *, signed: bool) -> Any:
    """Ask for the current firmware status: 2.0.1 TriggerMessage, 1.6 security extension
    ExtendedTriggerMessage (it answers with SignedFirmwareStatusNotification), 1.6 core
    TriggerMessage."""
    if protocol is Protocol.V201:
        return call201.TriggerMessage(requested_message=MessageTriggerEnumType.firmware_status_notification)
    if signed:
        return call16.ExtendedTriggerMessage(requested_message=MessageTrigger.firmware_status_notification)
    return call16.TriggerMessage(requested_message=MessageTrigger.firmware_status_notification)
