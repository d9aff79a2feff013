"""A model field that keeps a secret encrypted in the database and sealed in memory."""

from django.db import models
from django.db.models.query_utils import DeferredAttribute

from vms import crypto


class SealedSecret:
    """An encrypted secret as loaded from the database; only `reveal()` decrypts it.

    It never prints its plaintext: str(), repr() and templates see a placeholder.
    """

    __slots__ = ("token",)

    def __init__(self, token: str):
        self.token = token

    @classmethod
    def seal(cls, plaintext: str) -> "SealedSecret":
        return cls(crypto.encrypt(plaintext))

    def reveal(self) -> str:
        return crypto.decrypt(self.token)

    def __repr__(self) -> str:
        return "<SealedSecret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SealedSecret) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)


class _SealingAttribute(DeferredAttribute):
    """Seals a plain string the moment it is assigned, so no model instance ever holds the plaintext."""

    def __set__(self, instance, value):
        if isinstance(value, str):
            value = SealedSecret.seal(value)
        instance.__dict__[self.field.attname] = value


class EncryptedSecretField(models.TextField):
    """Stores a Fernet token; a plain str assigned to it is encrypted at once."""

    description = "A secret encrypted with FIELD_ENCRYPTION_KEYS"
    descriptor_class = _SealingAttribute

    def from_db_value(self, value, expression, connection):
        return None if value is None else SealedSecret(value)

    def to_python(self, value):
        if value is None or isinstance(value, SealedSecret):
            return value
        return SealedSecret.seal(str(value))

    def get_prep_value(self, value):
        if value is None:
            return None
        if isinstance(value, SealedSecret):
            return value.token
        return crypto.encrypt(str(value))

    def value_to_string(self, obj):
        # dumpdata and serializers get the ciphertext, never the plaintext.
        value = self.value_from_object(obj)
        return self.get_prep_value(value)
