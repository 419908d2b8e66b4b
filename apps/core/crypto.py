"""Encryption at rest for secrets (Fernet: AES-128-CBC with HMAC-SHA256): provider API keys,
notification channel URLs.

``ENCRYPTION_KEYS`` lists Fernet keys, newest first, so keys can be rotated; without it a key is
derived from ``SECRET_KEY``, which then must not change once secrets are stored (the derivation
keeps its historical salt, so keys stored before the helper moved here still open).
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@cache
def _fernet() -> MultiFernet:
    keys = list(settings.ENCRYPTION_KEYS)
    if not keys:
        digest = hashlib.sha256(b"ai-orchestra-provider-keys:" + settings.SECRET_KEY.encode())
        keys = [base64.urlsafe_b64encode(digest.digest()).decode()]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode() if plaintext else ""


def decrypt(token: str) -> str:
    """The plaintext; raises ``ValueError`` when no configured key opens it."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("the secret cannot be decrypted with the configured keys") from exc
