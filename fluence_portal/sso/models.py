"""Who a signed-in person is at their identity provider: the stable (issuer, subject) pair, never an email."""

from django.conf import settings
from django.db import models


class SsoIdentity(models.Model):
    """Links a Django user to one identity at one provider.

    OpenID Connect users are matched on the `sub` claim of their issuer; users behind an authenticating
    proxy on the user header's value, under the fixed issuer `PROXY_ISSUER`. An email address can change
    hands or be shared, so it never decides who someone is.
    """

    PROXY_ISSUER = "proxy"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "single sign-on identity"
        verbose_name_plural = "single sign-on identities"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique_issuer_subject")
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
