"""Bearer tokens for operators and vehicles.

A token is 32 random bytes, URL-safe, with a prefix that says whose it is (`evu_` for a user,
`evd_` for a device) so that secret scanners and people reading logs recognise one. Only its
SHA-256 is stored: a leaked database gives no working token, and a lookup is one indexed
equality (the token's entropy makes a slow password hash unnecessary).
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["DEVICE_PREFIX", "USER_PREFIX", "new_token", "token_hash"]

USER_PREFIX = "evu_"
DEVICE_PREFIX = "evd_"


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
