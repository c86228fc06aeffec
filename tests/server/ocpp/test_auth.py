"""Basic-auth parsing and charger passwords (security profiles 1 and 2)."""

from __future__ import annotations

import base64

import pytest

from evota.security.errors import AuthenticationError
from evota.security.passwords import hash_password, new_password, verify_password
from evota.server.ocpp.auth import basic_credentials


def _basic(raw: str) -> str:
    return "Basic " + base64.b64encode(raw.encode()).decode()


def test_the_password_of_the_charger_named_in_the_url() -> None:
    assert basic_credentials(_basic("CP1:s3cret:with:colons"), "CP1") == "s3cret:with:colons"
    assert basic_credentials("basic " + _basic("CP1:x").split()[1], "CP1") == "x"


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "no header"),
        ("", "empty header"),
        ("Bearer abc", "not basic"),
        ("Basic", "no credentials"),
        ("Basic !!!notbase64", "not base64"),
        (_basic("CP1"), "no colon"),
        (_basic("CP2:pw"), "another charger's name"),
        ("Basic " + "A" * 2000, "too long"),
    ],
)
def test_credential_confusion_is_refused(header: str | None, why: str) -> None:
    with pytest.raises(AuthenticationError):
        basic_credentials(header, "CP1")
    _ = why


def test_passwords_are_stored_salted_and_checked_in_constant_time() -> None:
    password = new_password()
    assert 16 <= len(password) <= 40  # OCPP 2.0.1 BasicAuthPassword
    stored = hash_password(password)
    assert password not in stored and stored != hash_password(password)  # salted
    assert verify_password(password, stored)
    assert not verify_password(password + "x", stored)
    assert not verify_password(password, "sha256$" + stored)
    assert not verify_password(password, "garbage")
