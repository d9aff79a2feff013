"""Ask Fluence what became of deletion attempts that have no outcome (or an unknown one) and record it."""

from datetime import timedelta

from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from vms.audit import attempts_needing_reconciliation, latest_outcome_of
from vms.crypto import SecretDecryptionError
from vms.fluence.client import FluenceClient
from vms.fluence.errors import FluenceError
from vms.models import ApiKey, DeletionEvent

# One run at a time across every process and host sharing the cache, so that no attempt gets two answers.
LOCK_KEY = "vms:reconcile_deletions:lock"
# A VM still listed this long after an attempt is taken as not deleted (Fluence deletes asynchronously).
FAILED_AFTER_MINUTES = 60
LOCK_SECONDS = 15 * 60


class Command(BaseCommand):
    help = (
        "Find deletion attempts older than --minutes with no outcome or an unknown one, ask Fluence whether "
        "each VM is still listed, and append the outcome found (nothing is appended when Fluence fails)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--minutes", type=int, default=5, help="only attempts older than this (default: 5)"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="report what would be appended, append nothing"
        )

    def handle(self, *args, minutes: int, dry_run: bool, **options):
        if minutes < 0:
            raise CommandError("--minutes must be 0 or more.")
        if not cache.add(LOCK_KEY, "running", LOCK_SECONDS):
            self.stdout.write("Another reconciliation is running; nothing done.")
            return
        try:
            counts = self._reconcile(timedelta(minutes=minutes), dry_run=dry_run)
        finally:
            cache.delete(LOCK_KEY)
        verb = "would append" if dry_run else "appended"
        self.stdout.write(
            f"Checked {counts['checked']} attempt(s): {verb} {counts['succeeded']} succeeded and "
            f"{counts['failed']} failed; {counts['pending']} still listed (checked again later); "
            f"skipped {counts['skipped']} (key gone or unusable); "
            f"{counts['errors']} left for next time (Fluence failed)."
        )

    def _reconcile(self, older_than: timedelta, *, dry_run: bool) -> dict[str, int]:
        counts = dict.fromkeys(("checked", "succeeded", "failed", "pending", "skipped", "errors"), 0)
        # Per key: the set of VM ids Fluence lists, or the error it gave; one list call per key and run.
        listed: dict[str, set[str] | FluenceError | SecretDecryptionError] = {}
        for intent in attempts_needing_reconciliation(older_than=older_than):
            counts["checked"] += 1
            label = (
                f"attempt {intent.correlation_id} (VM {intent.vm_id}, "
                f"key {intent.key_label} …{intent.key_fingerprint})"
            )
            api_key = _key_of(intent)
            if api_key is None:
                counts["skipped"] += 1
                self.stdout.write(f"Skipped {label}: the key no longer exists.")
                continue
            if intent.key_id not in listed:
                listed[intent.key_id] = self._listed_ids(api_key)
            vm_ids = listed[intent.key_id]
            if isinstance(vm_ids, SecretDecryptionError):
                counts["skipped"] += 1
                self.stdout.write(f"Skipped {label}: the key cannot be decrypted on this server.")
                continue
            if isinstance(vm_ids, FluenceError):
                counts["errors"] += 1
                self.stdout.write(f"Not checked {label}: {vm_ids.user_message}")
                continue
            now = timezone.now()
            if intent.vm_id.lower() in vm_ids:
                minutes = int((now - intent.created_at).total_seconds() // 60)
                if minutes < FAILED_AFTER_MINUTES:
                    # Fluence deletes asynchronously: a VM still listed may still be on its way out.
                    counts["pending"] += 1
                    self.stdout.write(f"Still listed {label} after {minutes} min: checked again next run.")
                    continue
                outcome = DeletionEvent.Outcome.FAILED
                message = f"VM still listed by Fluence {minutes} minutes after the request"
            else:
                outcome = DeletionEvent.Outcome.SUCCEEDED
                message = "VM no longer listed by Fluence"
            if latest_outcome_of(correlation_id=intent.correlation_id) not in (
                None,
                DeletionEvent.Outcome.UNKNOWN,
            ):
                continue  # answered meanwhile (by the portal or another run)
            counts[outcome] += 1
            self.stdout.write(
                f"{'Would append' if dry_run else 'Appended'} {outcome} for {label}: {message}."
            )
            if not dry_run:
                _append_outcome(intent, outcome=outcome, message=message, at=now)
        return counts

    def _listed_ids(self, api_key: ApiKey) -> set[str] | FluenceError | SecretDecryptionError:
        try:
            secret = api_key.secret.reveal()
        except SecretDecryptionError as error:
            return error
        client = FluenceClient(base_url=api_key.base_url, api_key=secret, generation=api_key.generation)
        try:
            # A VM Fluence still lists as terminating or terminated (today's API) was deleted.
            return {vm.key for vm in client.list_vms() if not vm.termination_accepted}
        except FluenceError as error:
            return error


def _key_of(intent: DeletionEvent) -> ApiKey | None:
    if not intent.key_id.isdigit():
        return None
    return ApiKey.objects.filter(pk=int(intent.key_id)).first()


def _append_outcome(intent: DeletionEvent, *, outcome: str, message: str, at) -> DeletionEvent:
    """The outcome row of a reconciliation: the intent's snapshot, a new time, source "reconcile"."""
    return DeletionEvent.objects.create(
        correlation_id=intent.correlation_id,
        kind=DeletionEvent.Kind.OUTCOME,
        outcome=outcome,
        created_at=at,
        source="reconcile",
        actor_username=intent.actor_username,
        actor_id=intent.actor_id,
        key_id=intent.key_id,
        key_label=intent.key_label,
        key_fingerprint=intent.key_fingerprint,
        key_owner_username=intent.key_owner_username,
        base_url=intent.base_url,
        vm_id=intent.vm_id,
        vm_name=intent.vm_name,
        vm_snapshot=intent.vm_snapshot,
        message=message,
    )
