"""Database models: the API keys people store to reach their Fluence accounts."""

from django.conf import settings
from django.db import models

from vms.fields import EncryptedSecretField


class ApiKey(models.Model):
    """One Fluence account reached through one API key, owned by one person."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    label = models.CharField(max_length=80, help_text="A name you recognise, e.g. “Production”.")
    secret = EncryptedSecretField()
    # The last four characters of the key: the only part of it ever shown.
    fingerprint = models.CharField(max_length=4)
    base_url = models.CharField(max_length=200)
    generation = models.CharField(max_length=20, default="baseline")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["label", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "label"], name="apikey_unique_label_per_owner")
        ]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.label} (…{self.fingerprint})"

    @property
    def masked(self) -> str:
        return f"…{self.fingerprint}"

