"""Admin: API keys are listed by label and the last four characters of their secret, which is never shown
or editable here."""

from django.contrib import admin

from vms.models import ApiKey, DeletionEvent, KeyShare


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["label", "owner", "last_four", "base_url", "created_at", "last_used_at"]
    list_filter = ["base_url"]
    search_fields = ["label", "owner__username", "last_four"]
    fields = ["owner", "label", "last_four", "base_url", "generation", "created_at", "last_used_at"]
    readonly_fields = ["owner", "last_four", "base_url", "generation", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        # Keys are added through the portal's own page, which checks them against Fluence first.
        return False


@admin.register(DeletionEvent)
class DeletionEventAdmin(admin.ModelAdmin):
    """The audit trail of every write, read-only: rows are never added, changed or deleted here."""

    list_display = [
        "created_at",
        "action",
        "kind",
        "outcome",
        "actor_username",
        "key_label",
        "key_last_four",
        "vm_name",
        "vm_id",
        "upstream_status",
        "source",
    ]
    list_filter = ["action", "kind", "outcome", "source", "created_at"]
    search_fields = ["actor_username", "key_label", "vm_id", "vm_name", "correlation_id", "request_id"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-pk"]
    actions = None
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(KeyShare)
class KeyShareAdmin(admin.ModelAdmin):
    """Who a key is shared with. Owners share on the portal's sharing page; here an admin can revoke."""

    list_display = ["api_key", "group", "role", "created_by_username", "created_at"]
    list_filter = ["role", "group"]
    search_fields = ["api_key__label", "api_key__owner__username", "group__name"]
    readonly_fields = ["api_key", "group", "created_by_username", "created_at"]

    def has_add_permission(self, request):
        return False
