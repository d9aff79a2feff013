"""Database models: the API keys people store to reach their Fluence accounts, their shares, and the
append-only audit trail of every write (VM deletions and actions, key changes)."""

from django.conf import settings
from django.db import models
from django.db.models import Value

from vms.fields import EncryptedSecretField
from vms.fluence.client import GENERATION_LABELS


def is_allowed_api_url(base_url: str) -> bool:
    """The administrator lets keys reach this Fluence API base URL (FLUENCE_API_URLS). Asked at every use,
    not only when a key is added: the list may have changed since, and anything else would let a stored
    key make the server call arbitrary addresses."""
    return base_url in settings.FLUENCE_API_URLS


class ApiKey(models.Model):
    """One Fluence account reached through one API key, owned by one person."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    label = models.CharField(max_length=80, help_text="A name you recognise, e.g. “Production”.")
    secret = EncryptedSecretField()
    # The last four characters of the key: the only part of it ever shown.
    last_four = models.CharField(max_length=4, db_column="fingerprint")
    base_url = models.CharField(max_length=200)
    # Which Fluence account this is: a keyed HMAC of the secret and base_url (vms.secret_digest), never
    # shown. Equal digests are the same account; empty when the secret could not be decrypted to compute it.
    secret_digest = models.CharField(max_length=64, blank=True, default="", db_index=True, editable=False)
    # Which Fluence API answers this key: found by probing when it is added, and again if its path retires.
    generation = models.CharField(max_length=20, choices=list(GENERATION_LABELS.items()), default="baseline")
    previous_generation = models.CharField(max_length=20, blank=True)
    generation_changed_at = models.DateTimeField(null=True, blank=True)
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
        return f"{self.label} (…{self.last_four})"


class AppendOnlyError(Exception):
    """Audit rows are written once: updating or deleting one is refused."""


class DeletionEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit rows cannot be updated.")

    def delete(self):
        raise AppendOnlyError("Audit rows cannot be deleted.")

    def _raw_delete(self, using):
        raise AppendOnlyError("Audit rows cannot be deleted.")


class DeletionEvent(models.Model):
    """One row of the append-only audit trail of every write (the class keeps the name of the deletion audit
    it began as, and its table; `AuditEvent` names it too).

    A call to Fluence writes an intent row before it and an outcome row after it, sharing a correlation id.
    A change the portal makes in its own database (a key added, renamed, shared…) is one `event` row,
    written in the same transaction as the change: it exists if and only if the change happened.
    `action` says what was done (rows from before it existed read `vm_delete`); `details` holds what the
    action changed, as {"before": {…}, "after": {…}} where that applies. People and keys are copied as
    text so that removing either never touches the trail. The database refuses UPDATE, DELETE and inserts
    over an existing row on this table (the triggers of vms/audit_triggers.py, installed by migrations
    0003 and 0006, still in place after 0011).
    """

    class Kind(models.TextChoices):
        INTENT = "intent", "Intent"
        OUTCOME = "outcome", "Outcome"
        EVENT = "event", "Event"

    class Outcome(models.TextChoices):
        NONE = "", "—"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Unknown"

    class Action(models.TextChoices):
        VM_DELETE = "vm_delete", "VM deleted"
        VM_RENAME = "vm_rename", "VM renamed"
        VM_RESTART = "vm_restart", "VM restarted"
        VM_SOFT_REBOOT = "vm_soft_reboot", "VM soft-rebooted"
        VM_PORTS = "vm_ports", "Ports changed"
        KEY_ADD = "key_add", "Key added"
        KEY_RENAME = "key_rename", "Key renamed"
        KEY_REMOVE = "key_remove", "Key removed"
        KEY_SHARE = "key_share", "Key shared"
        KEY_UNSHARE = "key_unshare", "Key unshared"
        KEY_ROLE = "key_role", "Share role changed"
        KEY_GENERATION = "key_generation", "Key's API generation switched"
        KEYS_ROTATE = "keys_rotate", "Encryption keys rotated"

    correlation_id = models.UUIDField(db_index=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True, default="")
    created_at = models.DateTimeField(db_index=True)
    source = models.CharField(max_length=20, default="portal")  # "portal" or "reconcile"
    actor_username = models.CharField(max_length=150)
    actor_id = models.CharField(max_length=40, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    key_id = models.CharField(max_length=40, blank=True)
    key_label = models.CharField(max_length=80)
    key_last_four = models.CharField(max_length=4, db_column="key_fingerprint")
    key_owner_username = models.CharField(max_length=150, blank=True)
    base_url = models.CharField(max_length=200, blank=True)
    vm_id = models.CharField(max_length=100, db_index=True)
    vm_name = models.CharField(max_length=200, blank=True)
    vm_snapshot = models.JSONField(default=dict, blank=True)
    upstream_status = models.PositiveSmallIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    # Nullable only so that SQLite adds both columns in place (ALTER TABLE ADD COLUMN: a table rebuild would
    # drop the append-only triggers); the database default makes every row written before them a deletion.
    action = models.CharField(  # noqa: DJ001 (see above)
        max_length=30,
        choices=Action.choices,
        null=True,
        db_default=Value(Action.VM_DELETE.value),
        db_index=True,
    )
    details = models.JSONField(null=True, blank=True)

    objects = DeletionEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["key_id", "-created_at"], name="deletionevent_key_time")]
        permissions = [
            ("view_all_audit", "Can see every event in the audit trail"),
            # The permission's first name, from when the trail held deletions only: it still grants it all.
            ("view_all_deletions", "Can see every deletion in the audit trail"),
        ]

    def __str__(self) -> str:
        what = self.outcome or self.kind
        target = self.vm_id or self.key_label
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_username} {self.action} {target} ({what})"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("Audit rows cannot be changed once written.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit rows cannot be deleted.")


AuditEvent = DeletionEvent

VM_ACTIONS = frozenset(
    {
        DeletionEvent.Action.VM_DELETE,
        DeletionEvent.Action.VM_RENAME,
        DeletionEvent.Action.VM_RESTART,
        DeletionEvent.Action.VM_SOFT_REBOOT,
        DeletionEvent.Action.VM_PORTS,
    }
)
KEY_ACTIONS = frozenset(set(DeletionEvent.Action) - VM_ACTIONS)


class KeyShare(models.Model):
    """One key shared with one Django group, with a role: viewers see its VMs, operators may also delete."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer (sees the VMs)"
        OPERATOR = "operator", "Operator (may also delete VMs)"

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="shares")
    group = models.ForeignKey("auth.Group", on_delete=models.CASCADE, related_name="key_shares")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    # Text, like the audit trail: who shared it stays readable after that person is removed.
    created_by_username = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group__name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["api_key", "group"], name="keyshare_unique_group_per_key")
        ]
        permissions = [("share_apikey", "Can share API keys with groups")]
        verbose_name = "key share"

    def __str__(self) -> str:
        return f"{self.api_key} → {self.group} ({self.role})"


class UserPreferences(models.Model):
    """One person's choices about how pages look, kept in the database: they follow the person to any
    browser and survive signing out. Read and written through vms.preferences."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences"
    )
    # The optional VM table columns shown (vms.vm_table.OPTIONAL_COLUMNS), comma-separated, in table order.
    vm_columns = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "user preferences"
        verbose_name_plural = "user preferences"

    def __str__(self) -> str:
        return f"preferences of user {self.user_id}"
