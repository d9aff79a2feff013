"""Writes: adding, renaming and removing API keys (deletion of VMs joins here later). Each is logged."""

import json
import logging
import math
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from vms import resilience, selectors
from vms.fluence.client import GENERATION_LABELS, GENERATIONS, Detection, FluenceClient, detect_generation
from vms.fluence.errors import AuthError, FluenceError, NotFound, RateLimited, Unavailable
from vms.fluence.models import VM_KNOWN_FIELDS, Vm, thaw
from vms.models import ApiKey, DeletionEvent, KeyShare
from vms.request_meta import RequestMeta  # re-exported: views and tests import it from here

logger = logging.getLogger("vms.services")

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
    if base_url not in settings.FLUENCE_API_URLS:
        raise ValidationError(
            {"base_url": "This API address is not on the administrator's list of allowed Fluence API URLs."}
        )
    return base_url


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


def apikey_create(
    *, owner, label: str, secret: str, base_url: str, generation: str = AUTO, verify: bool = True
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
    if verify:
        generation = apikey_verify(secret=secret, base_url=base_url, generation=generation).generation
    elif generation == AUTO:
        # Nothing was asked: the first contract until the key's first list shows otherwise (a 404 there
        # makes the list probe the generations and switch the key).
        generation = "baseline"
    try:
        with transaction.atomic():
            api_key = ApiKey.objects.create(
                owner=owner,
                label=label,
                secret=secret,
                fingerprint=secret[-4:],
                base_url=base_url,
                generation=generation,
                last_used_at=timezone.now() if verify else None,
            )
    except IntegrityError:
        # The same label was saved meanwhile (a double submit while the key was being tried).
        raise ValidationError({"label": "You already have a key with this label."}) from None
    logger.info(
        "api key added: id=%s owner=%s label=%r fingerprint=…%s generation=%s",
        api_key.pk,
        owner,
        label,
        secret[-4:],
        generation,
    )
    return api_key


@transaction.atomic
def apikey_rename(*, api_key: ApiKey, label: str) -> ApiKey:
    label = clean_label(label)
    if ApiKey.objects.filter(owner=api_key.owner, label=label).exclude(pk=api_key.pk).exists():
        raise ValidationError({"label": "You already have a key with this label."})
    api_key.label = label
    try:
        with transaction.atomic():
            api_key.save(update_fields=["label", "updated_at"])
    except IntegrityError:
        raise ValidationError({"label": "You already have a key with this label."}) from None
    logger.info("api key renamed: id=%s label=%r", api_key.pk, label)
    return api_key


def apikey_delete(*, api_key: ApiKey) -> None:
    logger.info(
        "api key removed: id=%s label=%r fingerprint=…%s", api_key.pk, api_key.label, api_key.fingerprint
    )
    api_key.delete()


LAST_USED_PRECISION = timedelta(minutes=5)


def apikeys_mark_used(*, key_ids: list[int]) -> None:
    """Record that these keys answered, at most once every five minutes per key.

    The list page calls this on every refresh of every open tab: the shared cache decides which keys are
    due, so nearly every call writes nothing, and bookkeeping never fails the page.
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


def vm_delete(*, api_key: ApiKey, vm: Vm, meta: RequestMeta) -> DeletionResult:
    """Delete one VM upstream, audited: an intent row committed first, an outcome row after.

    Never retried: a DELETE that may have reached Fluence is recorded as unknown, for a person (or the
    reconcile_deletions command) to check. DeletionRefused (nothing sent, nothing recorded) says why not.
    """
    (result,) = vms_delete(api_key=api_key, vms=[vm], meta=meta, refuse=True)
    return result


def vms_delete(
    *, api_key: ApiKey, vms: list[Vm], meta: RequestMeta, refuse: bool = False
) -> list[DeletionResult]:
    """Delete several VMs of one key, each with its own intent and outcome rows, in the VMs' order. Where the
    key's API deletes many in one call (generation A) one call carries them all; else one call each.

    A VM that may not be deleted is not sent: its result is `not_attempted` with the reason (or, with
    `refuse`, DeletionRefused is raised for it).
    """
    # Everything that refuses comes before the intent rows: a refusal sends nothing and records nothing.
    if api_key.base_url not in settings.FLUENCE_API_URLS:
        refused = DeletionRefused(
            f"This key points at {api_key.base_url}, which the administrator no longer allows. "
            "Nothing was sent."
        )
        if refuse:
            raise refused
        return [DeletionResult.not_attempted(vm, str(refused)) for vm in vms]
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
                    if refuse:
                        raise
                    results[position] = DeletionResult.not_attempted(vm, str(refused))
            if accepted:
                done = _delete_audited(
                    client=client, api_key=api_key, vms=[vm for _, vm, _ in accepted], meta=meta
                )
                results.update(zip([position for position, _, _ in accepted], done, strict=True))
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
    if selectors.vm_is_deleting(key_id=api_key.pk, vm_id=vm.id):
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
    snapshots = [_audit_snapshot(api_key, vm, meta) for vm in vms]
    for vm, snapshot in zip(vms, snapshots, strict=True):
        DeletionEvent.objects.create(kind=DeletionEvent.Kind.INTENT, created_at=timezone.now(), **snapshot)
        logger.info(
            "vm delete requested: vm=%s key=%s (…%s) by %s",
            vm.id,
            api_key.pk,
            api_key.fingerprint,
            meta.actor_username,
        )
    status = None
    try:
        client.delete_vms([vm.id for vm in vms])
    except FluenceError as error:
        status = error.status
        if isinstance(error, RateLimited):
            resilience.cooldown_start(key_id=api_key.pk, retry_after=error.retry_after)
        if isinstance(error, Unavailable) and error.may_have_reached_server:
            outcome = DeletionEvent.Outcome.UNKNOWN
            # Not error.user_message: its "try again" advice is wrong for a DELETE that may have happened.
            reason = f" (HTTP {status})" if status else ""
            message = (
                f"Outcome unknown: Fluence did not confirm the deletion{reason}; it may or may not have "
                "happened. Check again (refresh the list) before deleting again."
            )
        else:
            outcome = DeletionEvent.Outcome.FAILED
            message = error.user_message
    else:
        outcome = DeletionEvent.Outcome.SUCCEEDED
        message = "Fluence accepted the deletion; the VM leaves the list once the provider has finished."
        for vm in vms:
            selectors.vm_mark_deleting(key_id=api_key.pk, vm_id=vm.id)
    results = []
    for vm, snapshot in zip(vms, snapshots, strict=True):
        DeletionEvent.objects.create(
            kind=DeletionEvent.Kind.OUTCOME,
            outcome=outcome,
            upstream_status=status,
            message=message,
            created_at=timezone.now(),
            **snapshot,
        )
        logger.info("vm delete %s: vm=%s key=%s status=%s", outcome, vm.id, api_key.pk, status)
        results.append(
            DeletionResult(
                vm_id=vm.id,
                vm_name=vm.name,
                outcome=outcome,
                message=message,
                correlation_id=snapshot["correlation_id"],
            )
        )
    return results


def _audit_snapshot(api_key: ApiKey, vm: Vm, meta: RequestMeta) -> dict:
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
        "key_fingerprint": api_key.fingerprint,
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


@transaction.atomic
def keyshare_set(*, api_key: ApiKey, group, role: str, shared_by) -> tuple[KeyShare, bool]:
    """Share a key with a group in a role, or change the role of an existing share. True when created."""
    if role not in KeyShare.Role.values:
        raise ValidationError({"role": "Choose viewer or operator."})
    share, created = KeyShare.objects.select_for_update().get_or_create(
        api_key=api_key,
        group=group,
        defaults={"role": role, "created_by_username": shared_by.get_username()},
    )
    if not created and share.role != role:
        share.role = role
        share.save(update_fields=["role"])
    logger.info(
        "api key shared: id=%s (…%s) group=%r role=%s by %s",
        api_key.pk,
        api_key.fingerprint,
        group.name,
        role,
        shared_by.get_username(),
    )
    return share, created


def keyshare_delete(*, share: KeyShare, removed_by) -> None:
    logger.info(
        "api key unshared: id=%s (…%s) group=%r by %s",
        share.api_key_id,
        share.api_key.fingerprint,
        share.group.name,
        removed_by.get_username(),
    )
    share.delete()
