"""Encryption of API keys at rest with MultiFernet under FIELD_ENCRYPTION_KEYS (newest first)."""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretDecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured encryption key."""


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS is not set. Generate a key with "
            "`python manage.py generate_encryption_key` and set FIELD_ENCRYPTION_KEYS to it "
            "(a comma-separated list, newest first, when rotating)."
        )
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError):
        # The message names the variable, never the value.
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS holds a value that is not a Fernet key (32 url-safe base64-encoded bytes)."
        ) from None


def current_fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return current_fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return current_fernet().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise SecretDecryptionError(
            "A stored API key cannot be decrypted with the configured FIELD_ENCRYPTION_KEYS: "
            "the encryption key that sealed it is missing from the list."
        ) from None


def rotate(token: str) -> str:
    """Re-encrypt a token under the newest key (raises SecretDecryptionError if no key opens it)."""
    try:
        return current_fernet().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise SecretDecryptionError(
            "A stored API key cannot be decrypted with the configured FIELD_ENCRYPTION_KEYS."
        ) from None


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")
