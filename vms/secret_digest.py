"""A keyed digest of an API key and its base URL: tells that two stored keys reach the same Fluence account
without decrypting either, and without storing anything from which the key could be read or checked.

HMAC-SHA256 under a key derived (HKDF-SHA256, an info label of its own) from the newest key of
FIELD_ENCRYPTION_KEYS: whoever holds that list can decrypt every key anyway, so the digest adds no secret to
keep, and a rotation of the list (`manage.py rotate_encryption_keys`) moves the digests to the new key too.
"""

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from vms import crypto

# Another purpose, another label: the derived key is useless for Fernet, and Fernet's keys for this.
_DERIVATION_INFO = b"fluence-portal/apikey-secret-digest/v1"


@lru_cache(maxsize=8)
def _digest_key(encryption_key: str) -> bytes:
    material = base64.urlsafe_b64decode(encryption_key.encode("ascii"))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVATION_INFO).derive(material)


def _digest_keys() -> list[bytes]:
    # Opening the list first gives the same clear errors as encryption for a missing or malformed list.
    crypto.current_fernet()
    return [_digest_key(key) for key in settings.FIELD_ENCRYPTION_KEYS]


def _message(secret: str, base_url: str) -> bytes:
    # Length-prefixed: no choice of base URL and secret can spell another pair's message.
    url = base_url.strip().rstrip("/").encode()
    return len(url).to_bytes(4, "big") + url + secret.encode()


def _hmac(digest_key: bytes, message: bytes) -> str:
    return hmac.new(digest_key, message, hashlib.sha256).hexdigest()


def secret_digest(*, secret: str, base_url: str) -> str:
    """The digest stored with a key (64 hex characters), under the newest encryption key."""
    return _hmac(_digest_keys()[0], _message(secret, base_url))


def secret_digests(*, secret: str, base_url: str) -> list[str]:
    """The digest under every configured encryption key, newest first: what a key stored before the newest
    key was put first (and before `rotate_encryption_keys` ran) may still carry."""
    message = _message(secret, base_url)
    return [_hmac(digest_key, message) for digest_key in _digest_keys()]
