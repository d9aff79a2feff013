"""Admin: API keys are listed by label and fingerprint; their secrets are never shown or editable here."""

from django.contrib import admin

from vms.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["label", "owner", "fingerprint", "base_url", "created_at", "last_used_at"]
    list_filter = ["base_url"]
    search_fields = ["label", "owner__username", "fingerprint"]
    fields = ["owner", "label", "fingerprint", "base_url", "generation", "created_at", "last_used_at"]
    readonly_fields = ["owner", "fingerprint", "base_url", "generation", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        # Keys are added through the portal's own page, which checks them against Fluence first.
        return False
