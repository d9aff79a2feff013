"""Identities are shown to the admin, who may unlink one (the person then signs in as a new user)."""

from django.contrib import admin

from fluence_portal.sso.models import SsoIdentity


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    list_display = ["user", "issuer", "subject", "created_at"]
    search_fields = ["user__username", "subject"]
    list_filter = ["issuer"]
    readonly_fields = ["user", "issuer", "subject", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False
