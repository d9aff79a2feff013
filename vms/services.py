"""Writes: API keys (add, rename, remove, share), what a fetch learned about them, VM deletions and actions.

Each service takes the acting person and checks their right itself (vms.permissions decides), whoever
calls it: NotAllowed means nothing was changed or sent. Each write is logged and audited: a call to Fluence
as an intent row before it and an outcome row after it; a change in the portal's own database as one event
row in the same transaction (it is recorded if and only if it happened)."""

import json
import logging
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from vms import audit, metrics, resilience, secret_digest, selectors, table_version, vm_cache
from vms.accounts import VmRow
from vms.crypto import SecretDecryptionError
from vms.fluence.client import GENERATION_LABELS, GENERATIONS, Detection, FluenceClient, detect_generation
from vms.fluence.errors import AuthError, FluenceError, NotFound, RateLimited, Unavailable
from vms.fluence.models import VM_KNOWN_FIELDS, Vm, is_valid_vm_id, thaw
from vms.models import ApiKey, DeletionEvent, KeyShare, is_allowed_api_url
from vms.permissions import can_delete_vms, can_manage_key, can_share_key, keys_visible_to
from vms.request_meta import RequestMeta  # re-exported: views and tests import it from here

logger = logging.getLogger("vms.services")


class NotAllowed(Exception):
    """This person may not do this: nothing was changed or sent. A view answers 403 or 404."""


# Printable ASCII without spaces: anything else cannot travel in an HTTP header.
_SECRET_RE = re.compile(r"^[\x21-\x7e]{8,512}$")
LABEL_MAX_LENGTH = 80


def clean_label(label: str) -> str:
    label = " ".join((label or "").split())
    if not label:
        raise ValidationError({"label": "Give the key a label, e.g. “Production”."})
    if len(label) > LABEL_MAX_LENGTH:
        raise ValidationError({"label": f"A label has at most {LABEL_MAX_LENGTH} characters."})
    return label


def clean_secret(secret: str) -> str:
    secret = (secret or "").strip()
    if not _SECRET_RE.match(secret):
        raise ValidationError(
            {"secret": "An API key is 8 to 512 printable characters without spaces. Paste it again."}
        )
    return secret


def clean_base_url(base_url: str) -> str:
    base_url = (base_url or "").strip().rstrip("/")
    if not is_allowed_api_url(base_url):
        raise ValidationError(
            {"base_url": "This API address is not on the administrator's list of allowed Fluence API URLs."}
        )
    return base_url


class DuplicateApiKey(ValidationError):
    """This person already stores this key (the same secret and API base URL): refused before Fluence is
    asked anything."""


def _refuse_duplicate(*, owner, secret: str, base_url: str) -> str:
    """The digest to store with a new key; DuplicateApiKey when the owner already has it under any label.

    Digests written before the newest encryption key was put first (until rotate_encryption_keys has run)
    are matched too."""
    candidates = secret_digest.secret_digests(secret=secret, base_url=base_url)
    existing = ApiKey.objects.filter(owner=owner, secret_digest__in=candidates).order_by("pk").first()
    if existing is not None:
        raise DuplicateApiKey({"secret": f"This key is already stored as “{existing.label}”."})
    return candidates[0]


AUTO = "auto"
GENERATION_CHOICES = (AUTO, *GENERATIONS)


def clean_generation(generation: str) -> str:
    if generation not in GENERATION_CHOICES:
        raise ValidationError(
            {"generation": f"Choose one of {', '.join(GENERATION_CHOICES)} (auto asks Fluence)."}
        )
    return generation


def apikey_verify(*, secret: str, base_url: str, generation: str = AUTO) -> Detection:
    """Which API generation answers the key (probed, unless forced) and how many VMs it sees; a refused or
    unanswered key is a ValidationError, and nothing is stored."""
    try:
        if generation == AUTO:
            return detect_generation(base_url=base_url, api_key=secret)
        client = FluenceClient(base_url=base_url, api_key=secret, generation=generation)
        return Detection(generation=generation, vm_count=client.probe())
    except AuthError as exc:
        detail = f": {exc.upstream_message}" if exc.upstream_message else ""
        raise ValidationError(
            {"secret": f"Fluence refused this key{detail}. Check it and paste it again."}
        ) from None
    except NotFound:
        forced = "" if generation == AUTO else f" as the {GENERATION_LABELS[generation]}"
        raise ValidationError(
            f"Fluence does not answer this key{forced} at {base_url} (HTTP 404 on every API path the portal "
            "knows). Check the API address. The key was not saved."
        ) from None
    except FluenceError as exc:
        raise ValidationError(f"{exc.user_message} The key was not saved; try again later.") from None


@metrics.counted_action("apikey_add")
def apikey_create(
    *,
    owner,
    label: str,
    secret: str,
    base_url: str,
    generation: str = AUTO,
    verify: bool = True,
    meta: RequestMeta | None = None,
) -> ApiKey:
    """Store a key after trying it. Its API generation is found by probing (`auto`) unless forced; a key
    stored without trying (`verify=False`) and without a generation starts on the baseline, and is
    switched by the list's re-probe if Fluence answers it elsewhere."""
    label = clean_label(label)
    secret = clean_secret(secret)
    base_url = clean_base_url(base_url)
    generation = clean_generation(generation)
    if ApiKey.objects.filter(owner=owner, label=label).exists():
        raise ValidationError({"label": "You already have a key with this label."})
    # Before the probe: a key this person already stores sends nothing to Fluence.
    digest = _refuse_duplicate(owner=owner, secret=secret, base_url=base_url)
    if verify:
        generation = apikey_verify(secret=secret, base_url=base_url, generation=generation).generation
    elif generation == AUTO:
        # Nothing was asked: the first contract until the key's first list shows otherwise (a 404 there
        # makes the list probe the generations and switch the key).
        generation = "baseline"
    try:
        with transaction.atomic():
            # The same key added twice at once (two tabs): the owner's row lock orders the two checks.
            list(get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk"))
            _refuse_duplicate(owner=owner, secret=secret, base_url=base_url)
            api_key = ApiKey.objects.create(
                owner=owner,
                label=label,
                secret=secret,
                last_four=secret[-4:],
                base_url=base_url,
                secret_digest=digest,
                generation=generation,
                last_used_at=timezone.now() if verify else None,
            )
            audit_event_record(
                action=DeletionEvent.Action.KEY_ADD,
                meta=meta or RequestMeta.of_user(owner),
                api_key=api_key,
                details={"label": label, "generation": generation},
                message="Key added" + (" after Fluence accepted it." if verify else " without trying it."),
            )
    except IntegrityError:
        # The same label was saved meanwhile (a double submit while the key was being tried).
        raise ValidationError({"label": "You already have a key with this label."}) from None
    logger.info(
        "api key added: id=%s owner=%s label=%r last_four=…%s generation=%s",
        api_key.pk,
        owner,
        label,
        secret[-4:],
        generation,
    )
    return api_key


@metrics.counted_action("apikey_rename")
@transaction.atomic
def apikey_rename(*, user, api_key: ApiKey, label: str, meta: RequestMeta | None = None) -> ApiKey:
    if not can_manage_key(user=user, api_key=api_key):
        raise NotAllowed("Only the key's owner may rename it.")
    label = clean_label(label)
    if ApiKey.objects.filter(owner=api_key.owner, label=label).exclude(pk=api_key.pk).exists():
        raise ValidationError({"label": "You already have a key with this label."})
    before = api_key.label
    api_key.label = label
    try:
        with transaction.atomic():
            api_key.save(update_fields=["label", "updated_at"])
    except IntegrityError:
        api_key.label = before
        raise ValidationError({"label": "You already have a key with this label."}) from None
    if label != before:
        audit_event_record(
            action=DeletionEvent.Action.KEY_RENAME,
            meta=meta or RequestMeta.of_user(user),
            api_key=api_key,
            details={"before": {"label": before}, "after": {"label": label}},
        )
    logger.info("api key renamed: id=%s label=%r", api_key.pk, label)
    return api_key


@metrics.counted_action("apikey_remove")
def apikey_delete(*, user, api_key: ApiKey, meta: RequestMeta | None = None) -> None:
    """Remove a key (its VMs keep running on Fluence); its cached VM list is forgotten."""
    if not can_manage_key(user=user, api_key=api_key):
        raise NotAllowed("Only the key's owner may remove it.")
    logger.info("api key removed: id=%s label=%r last_four=…%s", api_key.pk, api_key.label, api_key.last_four)
    key_id = api_key.pk
    with transaction.atomic():
        shared_with = sorted(api_key.shares.values_list("group__name", flat=True))
        audit_event_record(
            action=DeletionEvent.Action.KEY_REMOVE,
            meta=meta or RequestMeta.of_user(user),
            api_key=api_key,
            details={"label": api_key.label, "shared_with": shared_with},
            message="Key removed from the portal; its VMs keep running on Fluence.",
        )
        api_key.delete()
    vm_cache.forget(key_id)


LAST_USED_PRECISION = timedelta(minutes=5)


def apikeys_mark_used(*, key_ids: list[int]) -> None:
    """Record that these keys answered, at most once every five minutes per key.

    The list page calls this on every refresh of every open tab for the keys whose row does not show a
    recent use already (apikeys_record_answers): the shared cache decides which are due, so that one
    process writes, and bookkeeping never fails the page.
    """
    seconds = int(LAST_USED_PRECISION.total_seconds())
    due = [key_id for key_id in key_ids if cache.add(f"apikey:last-used:{key_id}", 1, timeout=seconds)]
    if not due:
        return
    now = timezone.now()
    try:
        ApiKey.objects.filter(pk__in=due).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_PRECISION)
        ).update(last_used_at=now)
    except DatabaseError:
        logger.warning("could not record when keys %s were last used", due, exc_info=True)


def apikeys_record_answers(*, results) -> None:
    """Record what a fetch of VM lists learned about the keys (AccountResults): which ones answered (their
    last use), and which now speak another API generation because Fluence retired their path."""
    # A key whose row, as read for this page, shows a use within the precision needs no bookkeeping at all.
    recently = timezone.now() - LAST_USED_PRECISION
    apikeys_mark_used(
        key_ids=[
            result.account.key_id
            for result in results
            if not result.problem
            and (result.account.last_used_at is None or result.account.last_used_at < recently)
        ]
    )
    for result in results:
        if result.switched_to is not None:
            _apikey_switch_generation(key_id=result.account.key_id, generation=result.switched_to)


SYSTEM_ACTOR = RequestMeta(actor_username="portal", actor_id="", client_ip=None, user_agent="", request_id="")


def _apikey_switch_generation(*, key_id: int, generation: str) -> None:
    # Once, whoever notices first: every later request asks the right path, and the keys page says so.
    with transaction.atomic():
        switched = (
            ApiKey.objects.filter(pk=key_id)
            .exclude(generation=generation)
            .update(
                previous_generation=F("generation"),
                generation=generation,
                generation_changed_at=timezone.now(),
            )
        )
        if switched:
            api_key = ApiKey.objects.select_related("owner").get(pk=key_id)
            audit_event_record(
                action=DeletionEvent.Action.KEY_GENERATION,
                meta=SYSTEM_ACTOR,
                api_key=api_key,
                details={
                    "before": {"generation": api_key.previous_generation},
                    "after": {"generation": generation},
                },
                message="Fluence no longer answered the key's API path; the portal found the one that does.",
            )
    if switched:
        table_version.bump_epoch()  # an update() sends no signal; the tables say which API a key speaks


# --- the audit trail of changes made in the portal's own database -----------------------------------------


def audit_event_record(
    *,
    action: str,
    meta: RequestMeta,
    api_key: ApiKey | None = None,
    details: dict | None = None,
    message: str = "",
    source: str = "portal",
) -> DeletionEvent:
    """Append one event row: a change the portal made in its own database (a key added, renamed, shared…).
    Call it inside the transaction of the change, so that the row exists if and only if the change does."""
    key_fields = {}
    if api_key is not None:
        key_fields = {
            "key_id": str(api_key.pk),
            "key_label": api_key.label,
            "key_last_four": api_key.last_four,
            "key_owner_username": api_key.owner.get_username(),
            "base_url": api_key.base_url,
        }
    return DeletionEvent.objects.create(
        kind=DeletionEvent.Kind.EVENT,
        action=action,
        outcome=DeletionEvent.Outcome.SUCCEEDED,
        correlation_id=uuid.uuid4(),
        created_at=timezone.now(),
        source=source,
        actor_username=meta.actor_username,
        actor_id=meta.actor_id,
        client_ip=meta.client_ip,
        user_agent=meta.user_agent,
        request_id=meta.request_id,
        details=details,
        message=message,
        **key_fields,
    )


# --- deleting VMs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeletionResult:
    vm_id: str
    vm_name: str | None
    outcome: str  # "succeeded", "failed" or "unknown"
    message: str
    correlation_id: uuid.UUID | None

    @property
    def succeeded(self) -> bool:
        return self.outcome == DeletionEvent.Outcome.SUCCEEDED

    @classmethod
    def not_attempted(cls, vm: Vm, message: str) -> "DeletionResult":
        return cls(
            vm_id=vm.id, vm_name=vm.name, outcome="not_attempted", message=message, correlation_id=None
        )


class DeletionRefused(Exception):
    """The deletion was not attempted (nothing sent, nothing audited); the message says why."""


def vm_delete(*, user, api_key: ApiKey, vm: Vm, meta: RequestMeta) -> DeletionResult:
    """Delete one VM upstream, audited: an intent row committed first, an outcome row after.

    Never retried: a DELETE that may have reached Fluence is recorded as unknown, for a person (or the
    reconcile_deletions command) to check. NotAllowed (the person may not delete this key's VMs) and
    DeletionRefused (not now) say why not; then nothing was sent or recorded.
    """
    (result,) = vms_delete(user=user, api_key=api_key, vms=[vm], meta=meta, refuse=True)
    return result


def vms_delete(
    *,
    user,
    api_key: ApiKey,
    vms: list[Vm],
    meta: RequestMeta,
    refuse: bool = False,
    on_result: Callable[[int, DeletionResult], None] | None = None,
) -> list[DeletionResult]:
    """Delete several VMs of one key, each with its own intent and outcome rows, in the VMs' order. Where the
    key's API deletes many in one call (generation A) one call carries them all; else one call each.

    NotAllowed when the person may not delete this key's VMs. A VM that may not be deleted now is not
    sent: its result is `not_attempted` with the reason (or, with `refuse`, DeletionRefused is raised).
    `on_result(position, result)` hears of each VM as soon as its outcome is known (a job's progress).
    """
    report = on_result or (lambda position, result: None)
    # Everything that refuses comes before the intent rows: a refusal sends nothing and records nothing.
    if not can_delete_vms(user=user, api_key=api_key):
        metrics.action_counted("vm_delete", "not_allowed", len(vms))
        raise NotAllowed("You may not delete VMs of this account. Nothing was sent.")
    if not is_allowed_api_url(api_key.base_url):
        refused = DeletionRefused(
            f"This key points at {api_key.base_url}, which the administrator no longer allows. "
            "Nothing was sent."
        )
        metrics.action_counted("vm_delete", "refused", len(vms))
        if refuse:
            raise refused
        results = [DeletionResult.not_attempted(vm, str(refused)) for vm in vms]
        for position, result in enumerate(results):
            report(position, result)
        return results
    client = FluenceClient(
        base_url=api_key.base_url, api_key=api_key.secret.reveal(), generation=api_key.generation
    )
    lock_seconds = int(2 * (client.connect_timeout + client.read_timeout)) + 5
    numbered = list(enumerate(vms))
    # One call for all, or one call each, checked right before it (a 429 on one stops those after it).
    calls = [numbered] if client.adapter.deletes_in_one_call else [[item] for item in numbered]
    results: dict[int, DeletionResult] = {}
    for call in calls:
        accepted: list[tuple[int, Vm, str]] = []
        try:
            for position, vm in call:
                try:
                    accepted.append((position, vm, _deletion_lock(client, api_key, vm, meta, lock_seconds)))
                except DeletionRefused as refused:
                    metrics.action_counted("vm_delete", "refused")
                    if refuse:
                        raise
                    results[position] = DeletionResult.not_attempted(vm, str(refused))
                    report(position, results[position])
            if accepted:
                done = _delete_audited(
                    client=client, api_key=api_key, vms=[vm for _, vm, _ in accepted], meta=meta
                )
                for (position, _, _), result in zip(accepted, done, strict=True):
                    results[position] = result
                    report(position, result)
        finally:
            cache.delete_many([lock for _, _, lock in accepted])
    return [results[position] for position in range(len(vms))]


def _deletion_lock(client: FluenceClient, api_key: ApiKey, vm: Vm, meta: RequestMeta, seconds: int) -> str:
    """Check that this VM may be deleted now and take its in-flight lock (the lock's cache key), or raise
    DeletionRefused."""
    if not client.adapter.is_valid_id(vm.id):
        raise DeletionRefused("This VM's id is not one this account's API can delete. Nothing was sent.")
    if not vm.can_terminate:
        raise DeletionRefused(
            f"Fluence does not allow deleting this VM while it is {vm.status.label.lower()}. "
            "Nothing was sent."
        )
    waiting = resilience.cooldown_remaining(key_id=api_key.pk)
    if waiting:
        raise DeletionRefused(
            f"Fluence asked to slow down for this key (HTTP 429). Nothing was sent; try again in "
            f"{math.ceil(waiting)} s."
        )
    if vm_cache.is_deleting(api_key.pk, vm.id):
        raise DeletionRefused("Fluence already accepted a deletion of this VM. Nothing was sent again.")
    # One deletion of a VM at a time, across every process: a double click or a second tab sends nothing.
    in_flight = f"fluence:deleting-now:{api_key.pk}:{vm.key}"
    if not cache.add(in_flight, meta.request_id or "1", timeout=seconds):
        raise DeletionRefused("A deletion of this VM is already under way. Nothing was sent again.")
    return in_flight


def _delete_audited(
    *, client: FluenceClient, api_key: ApiKey, vms: list[Vm], meta: RequestMeta
) -> list[DeletionResult]:
    # No transaction.atomic here: in autocommit the intent rows are committed before the upstream call,
    # so a crash or a kill during the call cannot take them back.
    intents = []
    for vm in vms:
        snapshot = audit_snapshot(api_key, vm, meta)
        intent = DeletionEvent.objects.create(
            kind=DeletionEvent.Kind.INTENT,
            action=DeletionEvent.Action.VM_DELETE,
            created_at=timezone.now(),
            **snapshot,
        )
        intents.append(intent)
        logger.info(
            "vm delete requested: vm=%s key=%s (…%s) by %s",
            vm.id,
            api_key.pk,
            api_key.last_four,
            meta.actor_username,
        )
    status = None
    try:
        client.delete_vms([vm.id for vm in vms])
    except FluenceError as error:
        status = error.status
        # Not error.user_message when unknown: its "try again" advice is wrong for a DELETE that may have
        # happened.
        outcome, message = write_outcome_of(
            error,
            key_id=api_key.pk,
            unknown="Outcome unknown: Fluence did not confirm the deletion{reason}; it may or may not have "
            "happened. Use Check now on the VM's page before deleting again.",
        )
    else:
        outcome = DeletionEvent.Outcome.SUCCEEDED
        message = "Fluence accepted the deletion; the VM leaves the list once the provider has finished."
        for vm in vms:
            vm_cache.mark_deleting(api_key.pk, vm.id)
    metrics.action_counted("vm_delete", outcome, len(vms))
    results = []
    for vm, intent in zip(vms, intents, strict=True):
        deletion_outcome_record(intent=intent, outcome=outcome, message=message, upstream_status=status)
        logger.info("vm delete %s: vm=%s key=%s status=%s", outcome, vm.id, api_key.pk, status)
        results.append(
            DeletionResult(
                vm_id=vm.id,
                vm_name=vm.name,
                outcome=outcome,
                message=message,
                correlation_id=intent.correlation_id,
            )
        )
    return results


# What an outcome row copies of its intent row (the attempt: who, which key and VM), and what only when the
# same request learned the outcome (a later reconciliation is no request of that person's).
_ATTEMPT_FIELDS = (
    "correlation_id",
    "action",
    "details",
    "actor_username",
    "actor_id",
    "key_id",
    "key_label",
    "key_last_four",
    "key_owner_username",
    "base_url",
    "vm_id",
    "vm_name",
    "vm_snapshot",
)
_REQUEST_FIELDS = ("client_ip", "user_agent", "request_id")


def deletion_outcome_record(
    *,
    intent: DeletionEvent,
    outcome: str,
    message: str,
    upstream_status: int | None = None,
    source: str = "portal",
    at=None,
) -> DeletionEvent:
    """Append the outcome row of a deletion attempt, next to its intent row (never changing it)."""
    copied = _ATTEMPT_FIELDS + (_REQUEST_FIELDS if source == intent.source else ())
    return DeletionEvent.objects.create(
        kind=DeletionEvent.Kind.OUTCOME,
        outcome=outcome,
        upstream_status=upstream_status,
        message=message,
        source=source,
        created_at=at or timezone.now(),
        **{name: getattr(intent, name) for name in copied},
    )


audit_outcome_record = deletion_outcome_record  # it appends the outcome row of any action's attempt


# --- settling unknown outcomes ---------------------------------------------------------------------------

# A VM still listed this long after an attempt is taken as not deleted (Fluence deletes asynchronously).
FAILED_AFTER_MINUTES = 60
SETTLED = "settled"  # an outcome was recorded meanwhile (by the portal, a check or reconcile_deletions)
PENDING = "pending"  # still listed, too soon to call it failed: nothing is recorded, ask again later


@dataclass(frozen=True)
class Settlement:
    """What Fluence's list says of one attempt: `succeeded` or `failed` (an outcome row to append), or
    PENDING / SETTLED (nothing to append); `message` is the sentence for a person or the command."""

    outcome: str
    message: str
    appended: bool = False

    @property
    def settles(self) -> bool:
        return self.outcome in (DeletionEvent.Outcome.SUCCEEDED, DeletionEvent.Outcome.FAILED)


def deletion_listed_vm_ids(api_key: ApiKey) -> set[str]:
    """The ids (lowercase) of the VMs Fluence lists under this key and has not accepted a deletion of; a
    VM listed as terminating or terminated (today's API) was deleted. Raises FluenceError or
    SecretDecryptionError."""
    client = FluenceClient(
        base_url=api_key.base_url, api_key=api_key.secret.reveal(), generation=api_key.generation
    )
    return {vm.key for vm in client.list_vms() if not vm.termination_accepted}


def deletion_attempt_settle(
    *, intent: DeletionEvent, listed_vm_ids: set[str], source: str, note: str = "", dry_run: bool = False
) -> Settlement:
    """Decide one attempt from what Fluence lists now, and append its outcome row (unless `dry_run`): the
    one rule of reconcile_deletions and of *Check now*. `note` ends the recorded message (who checked)."""
    now = timezone.now()
    if intent.vm_id.lower() in listed_vm_ids:
        minutes = int((now - intent.created_at).total_seconds() // 60)
        if minutes < FAILED_AFTER_MINUTES:
            return Settlement(
                PENDING,
                f"Fluence still lists the VM {minutes} min after the request: the deletion may still be on "
                f"its way (Fluence deletes asynchronously). Nothing was recorded; check again later (after "
                f"{FAILED_AFTER_MINUTES} min it counts as failed).",
            )
        outcome = DeletionEvent.Outcome.FAILED
        message = f"VM still listed by Fluence {minutes} minutes after the request"
    else:
        outcome = DeletionEvent.Outcome.SUCCEEDED
        message = "VM no longer listed by Fluence"
    return attempt_settle_once(
        intent=intent, outcome=outcome, message=message, note=note, source=source, dry_run=dry_run, at=now
    )


def _settled_meanwhile(intent: DeletionEvent) -> bool:
    return audit.latest_outcome_of(correlation_id=intent.correlation_id) not in (
        None,
        DeletionEvent.Outcome.UNKNOWN,
    )


def attempt_settle_once(
    *, intent: DeletionEvent, outcome: str, message: str, note: str, source: str, dry_run: bool, at=None
) -> Settlement:
    """Append the outcome row that settles an attempt of unknown outcome (any action's), unless `dry_run`:
    one answer per attempt, whoever asks at the same moment (two people, a person and the command)."""
    if dry_run:
        if _settled_meanwhile(intent):
            return Settlement(SETTLED, "An outcome was recorded meanwhile; nothing would be added.")
        return Settlement(outcome, message)
    lock = f"vms:settling:{intent.correlation_id}"
    if not cache.add(lock, "1", timeout=60):
        return Settlement(SETTLED, "Someone is settling this attempt right now; nothing was added.")
    try:
        if _settled_meanwhile(intent):
            return Settlement(SETTLED, "An outcome was recorded meanwhile; nothing was added.")
        deletion_outcome_record(intent=intent, outcome=outcome, message=message + note, source=source, at=at)
    finally:
        cache.delete(lock)
    return Settlement(outcome, message, appended=True)


def write_outcome_of(error: FluenceError, *, key_id: int, unknown: str) -> tuple[str, str]:
    """What a write Fluence did not accept comes to, and the sentence for it: `unknown` (its `{reason}`
    filled) when the request may have reached Fluence, else failed with the error's own words. A 429 starts
    the key's cool-down."""
    if isinstance(error, RateLimited):
        resilience.cooldown_start(key_id=key_id, retry_after=error.retry_after)
    if isinstance(error, Unavailable) and error.may_have_reached_server:
        return DeletionEvent.Outcome.UNKNOWN, unknown.format(
            reason=f" (HTTP {error.status})" if error.status else ""
        )
    return DeletionEvent.Outcome.FAILED, error.user_message


class CheckFailed(Exception):
    """Fluence could not be asked (or the key not used): nothing was recorded; the message says why."""


def deletion_check(*, user, api_key: ApiKey, vm_id: str) -> Settlement:
    """*Check now*: ask Fluence what became of this VM's latest deletion attempt whose outcome is unknown,
    and append what it says (source "check", the person named in the message), as reconcile_deletions
    does. NotAllowed unless the person may delete the key's VMs; CheckFailed when Fluence cannot be asked.
    An attempt already settled (or none unknown) is SETTLED and sends nothing."""
    if not can_delete_vms(user=user, api_key=api_key):
        raise NotAllowed("Only the key's owner or an operator may check its deletions. Nothing was recorded.")
    intent = audit.unknown_deletions(key_ids=[api_key.pk], vm_id=vm_id).get((api_key.pk, vm_id.lower()))
    if intent is None:
        return Settlement(SETTLED, "This VM has no deletion whose outcome is unknown; nothing was checked.")
    if not is_allowed_api_url(api_key.base_url):
        raise CheckFailed(f"This key points at {api_key.base_url}, which the administrator no longer allows.")
    try:
        listed = deletion_listed_vm_ids(api_key)
    except SecretDecryptionError:
        raise CheckFailed("The key cannot be decrypted on this server. Nothing was recorded.") from None
    except FluenceError as error:
        raise CheckFailed(f"{error.user_message} Nothing was recorded.") from None
    settlement = deletion_attempt_settle(
        intent=intent, listed_vm_ids=listed, source="check", note=f" (checked by {user.get_username()})"
    )
    if settlement.outcome == DeletionEvent.Outcome.SUCCEEDED:
        vm_cache.mark_deleting(api_key.pk, intent.vm_id)  # the list says "Deleting…" until it is gone
    logger.info(
        "deletion checked: attempt=%s vm=%s key=%s by %s: %s",
        intent.correlation_id,
        intent.vm_id,
        api_key.pk,
        user.get_username(),
        settlement.outcome,
    )
    return settlement


def audit_snapshot(api_key: ApiKey, vm: Vm, meta: RequestMeta) -> dict:
    """The text copies of who, which key and which VM that both audit rows of one deletion carry."""
    return {
        "correlation_id": uuid.uuid4(),
        "actor_username": meta.actor_username,
        "actor_id": meta.actor_id,
        "client_ip": meta.client_ip,
        "user_agent": meta.user_agent,
        "request_id": meta.request_id,
        "key_id": str(api_key.pk),
        "key_label": api_key.label,
        "key_last_four": api_key.last_four,
        "key_owner_username": api_key.owner.get_username(),
        "base_url": api_key.base_url,
        "vm_id": vm.id,
        "vm_name": (vm.name or "")[:200],
        "vm_snapshot": _bounded_vm_snapshot(vm),
    }


# Fluence's object for a VM is not ours to size: one with a 20 MB field would write two 20 MB audit rows,
# and every export after them would carry both. A row keeps the fields the portal reads (each bounded) and
# a budget of the others; what it left out is listed under SNAPSHOT_CUT_KEY.
SNAPSHOT_OTHER_FIELDS_LIMIT_BYTES = 16 * 1024  # the fields the portal does not read, together (as JSON)
SNAPSHOT_KNOWN_FIELD_LIMIT_BYTES = 8 * 1024  # one object or list the portal reads (resources: ~1 KB)
SNAPSHOT_TEXT_LIMIT = 1024  # characters of one text the portal reads (names, addresses, timestamps)
SNAPSHOT_CUT_NAMES_LIMIT = 20  # how many names of fields left out are listed, each cut to 64 characters
SNAPSHOT_CUT_KEY = "_cut"


def _bounded_vm_snapshot(vm: Vm) -> dict:
    """Fluence's object for the VM as an audit row keeps it: unchanged when it is of a sane size; else a
    known text cut to SNAPSHOT_TEXT_LIMIT characters, a known object or list over
    SNAPSHOT_KNOWN_FIELD_LIMIT_BYTES left out, the other fields kept in order while they fit in
    SNAPSHOT_OTHER_FIELDS_LIMIT_BYTES, and a SNAPSHOT_CUT_KEY entry that says what is missing."""
    try:
        source = vm.raw
    except RecursionError:
        return {"id": vm.id, SNAPSHOT_CUT_KEY: {"note": "Fluence's object for this VM is nested too deeply."}}
    kept: dict = {}
    truncated: list[str] = []
    dropped: list[str] = []
    other_bytes = 0
    for name, value in source.items():
        known = name in VM_KNOWN_FIELDS
        if known and isinstance(value, str):
            if len(value) > SNAPSHOT_TEXT_LIMIT:
                truncated.append(name)
            kept[name] = value[:SNAPSHOT_TEXT_LIMIT]
            continue
        budget = (
            SNAPSHOT_KNOWN_FIELD_LIMIT_BYTES if known else SNAPSHOT_OTHER_FIELDS_LIMIT_BYTES - other_bytes
        )
        # The cut entry is the portal's own: Fluence's field of that name is never kept.
        fitted = None if name == SNAPSHOT_CUT_KEY else _plain_json_within(name, value, budget)
        if fitted is None:
            dropped.append(name)
            continue
        kept[name], size = fitted
        if not known:
            other_bytes += size
    if truncated or dropped:
        kept[SNAPSHOT_CUT_KEY] = {
            "note": "Fluence's object for this VM was too large to keep whole: these fields were left out "
            "or cut short.",
            "dropped_fields": [name[:64] for name in dropped[:SNAPSHOT_CUT_NAMES_LIMIT]],
            "dropped_count": len(dropped),
            "truncated_fields": truncated,
            "text_limit": SNAPSHOT_TEXT_LIMIT,
            "known_field_limit_bytes": SNAPSHOT_KNOWN_FIELD_LIMIT_BYTES,
            "limit_bytes": SNAPSHOT_OTHER_FIELDS_LIMIT_BYTES,
        }
    return kept


def _plain_json_within(name: str, value: object, budget: int) -> tuple[object, int] | None:
    """A field's value as plain JSON and its size as JSON (ASCII, as the column stores it); None when it
    is larger than `budget` bytes or nested too deeply to store."""
    try:
        size = len(json.dumps({name: value}, separators=(",", ":")))
        return (thaw(value), size) if size <= budget else None
    except RecursionError:
        return None


# --- sharing keys with groups ---------------------------------------------------------------------------


@metrics.counted_action("keyshare_set")
@transaction.atomic
def keyshare_set(
    *, api_key: ApiKey, group, role: str, shared_by, meta: RequestMeta | None = None
) -> tuple[KeyShare, bool]:
    """Share a key with a group in a role, or change the role of an existing share. True when created."""
    if not can_share_key(user=shared_by, api_key=api_key):
        raise NotAllowed("Only the key's owner, with the sharing permission, may share it.")
    if role not in KeyShare.Role.values:
        raise ValidationError({"role": "Choose viewer or operator."})
    share, created = KeyShare.objects.select_for_update().get_or_create(
        api_key=api_key,
        group=group,
        defaults={"role": role, "created_by_username": shared_by.get_username()},
    )
    meta = meta or RequestMeta.of_user(shared_by)
    if created:
        audit_event_record(
            action=DeletionEvent.Action.KEY_SHARE,
            meta=meta,
            api_key=api_key,
            details={"group": group.name, "role": role},
        )
    elif share.role != role:
        audit_event_record(
            action=DeletionEvent.Action.KEY_ROLE,
            meta=meta,
            api_key=api_key,
            details={"group": group.name, "before": {"role": share.role}, "after": {"role": role}},
        )
        share.role = role
        share.save(update_fields=["role"])
    logger.info(
        "api key shared: id=%s (…%s) group=%r role=%s by %s",
        api_key.pk,
        api_key.last_four,
        group.name,
        role,
        shared_by.get_username(),
    )
    return share, created


@metrics.counted_action("keyshare_remove")
def keyshare_delete(*, share: KeyShare, removed_by, meta: RequestMeta | None = None) -> None:
    if not can_share_key(user=removed_by, api_key=share.api_key):
        raise NotAllowed("Only the key's owner, with the sharing permission, may stop sharing it.")
    logger.info(
        "api key unshared: id=%s (…%s) group=%r by %s",
        share.api_key_id,
        share.api_key.last_four,
        share.group.name,
        removed_by.get_username(),
    )
    with transaction.atomic():
        audit_event_record(
            action=DeletionEvent.Action.KEY_UNSHARE,
            meta=meta or RequestMeta.of_user(removed_by),
            api_key=share.api_key,
            details={"group": share.group.name, "role": share.role},
        )
        share.delete()


# --- deleting many VMs at once ---------------------------------------------------------------------------

BULK_DELETE_LIMIT = 100


@dataclass(frozen=True)
class BulkSelection:
    """The VMs of a bulk deletion this person may delete now, with their keys, and the others with why."""

    selected: tuple[tuple[VmRow, ApiKey], ...]
    skipped: tuple[tuple[str, str], ...]


def vms_select_for_deletion(*, user, values: list[str]) -> BulkSelection:
    """The VMs named by `key_id:vm_id` values (as the table's checkboxes send them), read with one check of
    which keys this person sees and their role on each."""
    api_keys = {api_key.pk: api_key for api_key in keys_visible_to(user=user)}
    listing = selectors.vms_of_keys(list(api_keys.values()))
    rows = {(row.account.key_id, row.vm.key): row for row in listing.rows}
    selected, skipped, seen = [], [], set()
    for value in values[:BULK_DELETE_LIMIT]:
        key_part, _, vm_part = value.partition(":")
        if not (key_part.isascii() and key_part.isdigit() and len(key_part) <= 12) or not is_valid_vm_id(
            vm_part
        ):
            skipped.append((value[:60], "not a VM reference"))
            continue
        ident = (int(key_part), vm_part.lower())
        if ident in seen:
            continue
        seen.add(ident)
        row = rows.get(ident)
        if row is None:
            skipped.append((vm_part, "not found under your keys (already deleted?)"))
        elif row.deleting:
            skipped.append((row.vm.display_name, "Fluence already accepted its deletion"))
        elif not row.account.can_delete:
            skipped.append((row.vm.display_name, "you may not delete VMs of this account"))
        else:
            selected.append((row, api_keys[ident[0]]))
    if len(values) > BULK_DELETE_LIMIT:
        skipped.append(
            (f"{len(values) - BULK_DELETE_LIMIT} more", f"at most {BULK_DELETE_LIMIT} VMs at once")
        )
    return BulkSelection(selected=tuple(selected), skipped=tuple(skipped))


def vms_delete_selected(
    *,
    user,
    selection: BulkSelection,
    meta: RequestMeta,
    on_result: Callable[[VmRow, DeletionResult], None] | None = None,
) -> list[tuple[VmRow, DeletionResult]]:
    """Delete a bulk selection, key by key, so that an API that deletes many VMs in one call gets them
    together. A key whose role was taken away since the selection is not sent. `on_result(row, result)`
    hears of each VM as soon as its outcome is known."""
    report = on_result or (lambda row, result: None)
    by_key: dict[int, tuple[ApiKey, list[VmRow]]] = {}
    for row, api_key in selection.selected:
        by_key.setdefault(api_key.pk, (api_key, []))[1].append(row)
    outcomes = []
    for api_key, rows in by_key.values():
        vms = [row.vm for row in rows]
        try:
            results = vms_delete(
                user=user,
                api_key=api_key,
                vms=vms,
                meta=meta,
                on_result=lambda position, result, rows=rows: report(rows[position], result),
            )
        except NotAllowed as refused:
            results = [DeletionResult.not_attempted(vm, str(refused)) for vm in vms]
            for row, result in zip(rows, results, strict=True):
                report(row, result)
        outcomes += list(zip(rows, results, strict=True))
    return outcomes
