"""Ask Fluence what became of VM deletions, renames, restarts and port changes that have no outcome (or an
unknown one) and record it. Also run as `reconcile_audit`, its name now that it settles every VM action."""

from datetime import timedelta

from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError

from vms import services, vm_actions
from vms.audit import action_label, attempts_needing_reconciliation
from vms.crypto import SecretDecryptionError
from vms.fluence.errors import FluenceError
from vms.models import ApiKey, DeletionEvent

# One run at a time across every process and host sharing the cache, so that no attempt gets two answers.
LOCK_KEY = "vms:reconcile_deletions:lock"
# The rule for one attempt (and FAILED_AFTER_MINUTES) lives in services.deletion_attempt_settle, which
# the VM pages' *Check now* uses too.
LOCK_SECONDS = 15 * 60


class Command(BaseCommand):
    help = (
        "Find VM deletions, renames, restarts and port changes older than --minutes with no outcome or an "
        "unknown one, ask Fluence what its list says of each VM, and append the outcome found (nothing is "
        "appended when Fluence fails or its answer cannot tell)."
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
        actions = self.action_counts
        if actions["checked"]:
            self.stdout.write(
                f"Checked {actions['checked']} rename, restart or port attempt(s): {verb} "
                f"{actions['succeeded']} succeeded and {actions['failed']} failed; "
                f"{actions['cannot_tell']} Fluence's answer cannot tell; skipped {actions['skipped']}; "
                f"{actions['errors']} left for next time (Fluence failed)."
            )

    def _reconcile(self, older_than: timedelta, *, dry_run: bool) -> dict[str, int]:
        counts = dict.fromkeys(("checked", "succeeded", "failed", "pending", "skipped", "errors"), 0)
        # Per key: the VMs Fluence lists, or the error it gave; one list call per key and run.
        self.listed: dict[str, dict | FluenceError | SecretDecryptionError] = {}
        self._reconcile_deletions(older_than, dry_run=dry_run, counts=counts)
        self.action_counts = self._reconcile_actions(older_than, dry_run=dry_run)
        return counts

    def _vms_of(self, intent: DeletionEvent, api_key: ApiKey):
        if intent.key_id not in self.listed:
            self.listed[intent.key_id] = _listed_vms(api_key)
        return self.listed[intent.key_id]

    def _reconcile_actions(self, older_than: timedelta, *, dry_run: bool) -> dict[str, int]:
        counts = dict.fromkeys(("checked", "succeeded", "failed", "cannot_tell", "skipped", "errors"), 0)
        for intent in attempts_needing_reconciliation(
            older_than=older_than, actions=vm_actions.SETTLED_ACTIONS
        ):
            counts["checked"] += 1
            label = (
                f"{action_label(intent.action).lower()} attempt {intent.correlation_id} (VM {intent.vm_id}, "
                f"key {intent.key_label} …{intent.key_last_four})"
            )
            api_key = _key_of(intent)
            vms = None if api_key is None else self._vms_of(intent, api_key)
            if vms is None or isinstance(vms, SecretDecryptionError):
                counts["skipped"] += 1
                self.stdout.write(f"Skipped {label}: the key no longer exists or cannot be decrypted.")
                continue
            if isinstance(vms, FluenceError):
                counts["errors"] += 1
                self.stdout.write(f"Not checked {label}: {vms.user_message}")
                continue
            settlement = vm_actions.action_attempt_settle(
                intent=intent, vms=vms, source="reconcile", dry_run=dry_run
            )
            if settlement.outcome == vm_actions.CANNOT_TELL:
                counts["cannot_tell"] += 1
                self.stdout.write(f"Cannot tell {label}: {settlement.message}")
                continue
            if not settlement.settles:
                continue
            counts[settlement.outcome] += 1
            self.stdout.write(
                f"{'Would append' if dry_run else 'Appended'} {settlement.outcome} for {label}: "
                f"{settlement.message}."
            )
        return counts

    def _reconcile_deletions(self, older_than: timedelta, *, dry_run: bool, counts: dict[str, int]) -> None:
        for intent in attempts_needing_reconciliation(older_than=older_than):
            counts["checked"] += 1
            label = (
                f"attempt {intent.correlation_id} (VM {intent.vm_id}, "
                f"key {intent.key_label} …{intent.key_last_four})"
            )
            api_key = _key_of(intent)
            if api_key is None:
                counts["skipped"] += 1
                self.stdout.write(f"Skipped {label}: the key no longer exists.")
                continue
            vm_ids = self._vms_of(intent, api_key)
            if isinstance(vm_ids, SecretDecryptionError):
                counts["skipped"] += 1
                self.stdout.write(f"Skipped {label}: the key cannot be decrypted on this server.")
                continue
            if isinstance(vm_ids, FluenceError):
                counts["errors"] += 1
                self.stdout.write(f"Not checked {label}: {vm_ids.user_message}")
                continue
            # A VM listed as terminating or terminated (today's API) was deleted.
            still_listed = {key for key, vm in vm_ids.items() if not vm.termination_accepted}
            settlement = services.deletion_attempt_settle(
                intent=intent, listed_vm_ids=still_listed, source="reconcile", dry_run=dry_run
            )
            if settlement.outcome == services.PENDING:
                counts["pending"] += 1
                self.stdout.write(f"Still listed {label}: checked again next run.")
                continue
            if not settlement.settles:
                continue  # answered meanwhile (by the portal, a person's check or another run)
            counts[settlement.outcome] += 1
            self.stdout.write(
                f"{'Would append' if dry_run else 'Appended'} {settlement.outcome} for {label}: "
                f"{settlement.message}."
            )


def _listed_vms(api_key: ApiKey) -> dict | FluenceError | SecretDecryptionError:
    try:
        return vm_actions.listed_vms(api_key)
    except (FluenceError, SecretDecryptionError) as error:
        return error


def _key_of(intent: DeletionEvent) -> ApiKey | None:
    if not (intent.key_id.isascii() and intent.key_id.isdigit()):
        return None
    return ApiKey.objects.filter(pk=int(intent.key_id)).first()
