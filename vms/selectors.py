"""Reads: which keys a person may use, and the VMs of those keys (fetched through vms.fetching)."""

import dataclasses
from dataclasses import dataclass

from django.db.models import QuerySet

from vms import fetching, vm_cache
from vms.accounts import Account, AccountResult, VmListing, VmRow
from vms.crypto import SecretDecryptionError
from vms.fluence.client import ADAPTERS
from vms.fluence.models import Vm
from vms.models import ApiKey, is_allowed_api_url
from vms.permissions import OWNER, VIEWER, apikeys_visible_to, keys_visible_to, role_rank


def apikeys_for_user(*, user) -> QuerySet[ApiKey]:
    """The keys whose VMs this person may see: owned, or shared with one of their groups (the rule lives in
    vms.permissions). Each carries `role_for_user`. Never cached: a removed share is gone next request."""
    return apikeys_visible_to(user=user).select_related("owner")


def apikey_for_user(*, user, key_id: int) -> ApiKey | None:
    found = keys_visible_to(user=user, key_id=key_id)
    return found[0] if found else None


def account_of(api_key: ApiKey) -> Account:
    """What the pages may know of this key."""
    return Account(
        key_id=api_key.pk,
        label=api_key.label,
        last_four=api_key.last_four,
        # Keys from keys_visible_to carry their owner's name; others have it through select_related.
        owner_username=getattr(api_key, "owner_username", None) or api_key.owner.get_username(),
        base_url=api_key.base_url,
        # Keys loaded through apikeys_for_user carry the role; it only shapes the page, checks ask afresh.
        role=getattr(api_key, "role_for_user", VIEWER),
        generation=api_key.generation,
        last_used_at=api_key.last_used_at,
    )


def vms_for_user(*, user) -> VmListing:
    """Every VM of every key the person may see, one account's failure never hiding the others."""
    return vms_of_keys(keys_visible_to(user=user))


@dataclass(frozen=True, slots=True)
class VmLookup:
    result: AccountResult
    vm: Vm | None  # None: the account answered (or failed) and this VM is not in what it shows
    deleting: bool
    api_key: ApiKey


def vm_for_user(*, user, key_id: int, vm_id: str, fresh: bool = False) -> VmLookup | None:
    """One VM under one key, or None when the person may not see that key (a 404, whatever exists).

    `fresh`: where the key's API can answer for one VM (today's API), ask it rather than the list, for a
    page that shows every field; a 404 there means the VM is gone.
    """
    api_key = apikey_for_user(user=user, key_id=key_id)
    if api_key is None:
        return None
    listing = vms_of_keys([api_key])
    result = listing.accounts[0]
    wanted = vm_id.lower()
    row = next((row for row in listing.rows if row.vm.key == wanted), None)
    vm = row.vm if row else None
    generation = result.account.generation
    if fresh and ADAPTERS[generation].can_get_vm and result.problem_kind not in ("decrypt", "not_allowed"):
        vm = fetching.fresh_vm(api_key, generation, vm_id, fallback=vm)
    return VmLookup(result=result, vm=vm, deleting=bool(row and row.deleting), api_key=api_key)


def apikeys_by_account(api_keys) -> list[list[ApiKey]]:
    """The keys grouped by the Fluence account they reach (equal secret digests: the same secret and base
    URL), each group led by the key to use: the person's highest role on it (their own key first), then the
    oldest. A key without a digest (its secret could not be decrypted to compute one) is alone."""
    groups: dict[str, list[ApiKey]] = {}
    for api_key in api_keys:
        groups.setdefault(api_key.secret_digest or f"key:{api_key.pk}", []).append(api_key)
    return [
        sorted(group, key=lambda api_key: (-role_rank(_role_of(api_key)), api_key.pk))
        for group in groups.values()
    ]


def apikeys_mark_same_account(api_keys) -> None:
    """Give each key `same_account_as`: a sentence naming the person's other keys to the same Fluence
    account (empty when there are none), for the keys page, which lists every key."""
    for group in apikeys_by_account(api_keys):
        for api_key in group:
            others = [f"“{other.label}” ({_whose(other)})" for other in group if other.pk != api_key.pk]
            api_key.same_account_as = f"Same Fluence account as {_and_list(others)}" if others else ""


def _role_of(api_key: ApiKey) -> str:
    return getattr(api_key, "role_for_user", VIEWER)


def _whose(api_key: ApiKey) -> str:
    if _role_of(api_key) == OWNER:
        return "yours"
    return getattr(api_key, "owner_username", None) or api_key.owner.get_username()


def _and_list(parts) -> str:
    parts = list(parts)
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def vms_of_keys(api_keys: list[ApiKey]) -> VmListing:
    """The VMs of these keys (as vms.permissions found them for a person: each with its role).

    Keys that reach the same Fluence account are one account here: only the first of apikeys_by_account is
    fetched and listed, so that its VMs are counted once, and its result names the others (`folded`)."""
    jobs = []
    results: list[AccountResult] = []
    readable: list[tuple[ApiKey, str]] = []
    for api_key in api_keys:
        try:
            secret = api_key.secret.reveal()
        except SecretDecryptionError:
            results.append(
                AccountResult(
                    account=account_of(api_key),
                    vms=(),
                    fetched_at=None,
                    problem="This key cannot be decrypted on this server (its encryption key is missing). "
                    "Ask the administrator, or remove and re-add the key.",
                    problem_kind="decrypt",
                )
            )
            continue
        readable.append((api_key, secret))
    secrets = {api_key.pk: secret for api_key, secret in readable}
    folded: dict[int, tuple[Account, ...]] = {}
    for api_key, *others in apikeys_by_account([api_key for api_key, _ in readable]):
        account = account_of(api_key)
        secret = secrets[api_key.pk]
        if others:
            folded[api_key.pk] = tuple(account_of(other) for other in others)
        if not is_allowed_api_url(api_key.base_url):
            results.append(
                AccountResult(
                    account=account,
                    vms=(),
                    fetched_at=None,
                    problem=f"This key points at {api_key.base_url}, which the administrator no longer "
                    "allows (FLUENCE_API_URLS). Nothing was sent there.",
                    problem_kind="not_allowed",
                )
            )
            continue
        jobs.append((account, secret, api_key.generation))
    results.extend(_as_switched(result) for result in fetching.fetch_all(jobs))
    results = [_with_folded(result, folded.get(result.account.key_id, ())) for result in results]
    results.sort(key=lambda result: (result.account.label.lower(), result.account.key_id))
    rows = tuple(
        VmRow(vm, result.account, bool(result.deleting) and vm.key in result.deleting)
        for result in results
        for vm in result.vms
    )
    return VmListing(accounts=tuple(results), rows=rows)


def vm_is_deleting(*, key_id: int, vm_id: str) -> bool:
    """Fluence accepted this VM's deletion (within the last hour)."""
    return vm_cache.is_deleting(key_id, vm_id)


def _with_folded(result: AccountResult, others: tuple[Account, ...]) -> AccountResult:
    if not others:
        return result
    stored_as = _and_list(
        f"“{other.label}” by {'you' if other.is_own else other.owner_username}" for other in others
    )
    note = f"Also stored as {stored_as}; its VMs are listed once."
    return dataclasses.replace(result, folded=others, notes=(*result.notes, note))


def _as_switched(result: AccountResult) -> AccountResult:
    """A key whose API path Fluence retired answered on another generation: shown as what it now speaks
    (services.apikeys_record_answers stores that)."""
    if result.switched_to is None:
        return result
    return dataclasses.replace(
        result, account=dataclasses.replace(result.account, generation=result.switched_to)
    )
