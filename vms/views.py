"""Views: parse the request, call a selector or a service, render. Nothing else."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from vms import audit, ratelimit, request_meta, selectors, services
from vms.billing import epoch_progress
from vms.fluence.models import is_valid_vm_id
from vms.forms import ApiKeyForm, ApiKeyRenameForm, KeyShareForm
from vms.listing import VmQuery, render_rows, row_views, switch_notice, table_columns, table_page
from vms.permissions import ROLE_LABELS, can_delete_vms, can_manage_key, can_share_key
from vms.services import RequestMeta


def htmx_partial(request: HttpRequest) -> bool:
    """A fragment is wanted: htmx asked, and not as a boosted whole-page navigation."""
    return bool(request.htmx) and not request.htmx.boosted


def _render(
    request: HttpRequest, template: str, partial: str, context: dict, status: int = 200
) -> HttpResponse:
    response = render(request, partial if htmx_partial(request) else template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _data_time(results) -> object:
    times = [result.fetched_at for result in results if result.fetched_at]
    return min(times) if times else None


@login_required
@require_GET
def vm_list(request: HttpRequest) -> HttpResponse:
    query = VmQuery.from_querydict(request.GET)
    listing = selectors.vms_for_user(user=request.user)
    services.apikeys_mark_used(
        key_ids=[result.account.key_id for result in listing.accounts if not result.problem]
    )
    table = table_page(listing.rows, query)
    now = timezone.now()
    list_url = reverse("vms:list")
    rows = row_views(table.rows, now=now, url_prefix=list_url + "vms/")
    context = {
        "rows": rows,
        "rows_html": render_rows(rows),
        "listing": listing,
        "query": query,
        "table": table,
        "columns": table_columns(query, list_url),
        "list_url": list_url,
        "table_url": query.url(page=table.page),
        "prev_url": query.url(page=table.page - 1) if table.page > 1 else None,
        "next_url": query.url(page=table.page + 1) if table.page < table.pages else None,
        "poll_seconds": settings.VM_POLL_FAST_SECONDS
        if table.any_changing
        else settings.VM_POLL_SLOW_SECONDS,
        "data_time": _data_time(listing.accounts),
        "now": now,
        "switched": _switch_notices(request.user, listing.accounts),
    }
    return _render(request, "vms/list.html", "vms/list_partial.html", context)


def _switch_notices(user, results) -> list:
    """(result, sentence) for each key the portal just moved to another API generation (rare: one query
    then, none otherwise)."""
    switched = [result for result in results if result.switched_to]
    if not switched:
        return []
    keys = selectors.apikeys_for_user(user=user).filter(pk__in=[result.account.key_id for result in switched])
    previous = dict(keys.values_list("pk", "previous_generation"))
    return [
        (result, switch_notice(previous.get(result.account.key_id), result.switched_to))
        for result in switched
    ]


def _vm_context(request: HttpRequest, key_id: int, vm_id: str, *, fresh: bool = False) -> dict:
    lookup = selectors.vm_for_user(user=request.user, key_id=key_id, vm_id=vm_id, fresh=fresh)
    if lookup is None:
        raise Http404("No such VM.")
    now = timezone.now()
    vm = lookup.vm
    return {
        "vm": vm,
        "result": lookup.result,
        "vm_id": vm_id,
        "key_id": key_id,
        "epoch": epoch_progress(vm, now) if vm else None,
        "deleting": lookup.deleting,
        "can_delete": can_delete_vms(user=request.user, api_key=lookup.api_key),
        "poll_seconds": settings.VM_POLL_FAST_SECONDS
        if vm is None or vm.status.is_transitional
        else settings.VM_POLL_SLOW_SECONDS,
    }


@login_required
@require_GET
def vm_detail(request: HttpRequest, key_id: int, vm_id: str) -> HttpResponse:
    # The page shows every field: where the key's API can answer for one VM, it is asked afresh.
    context = _vm_context(request, key_id, vm_id, fresh=True)
    context["history"] = audit.events_for_vm(user=request.user, key_id=key_id, vm_id=vm_id)
    # A VM that is gone (or never was) under this key is a 404, with a page that says so plainly.
    status = 404 if context["vm"] is None and context["result"].problem is None else 200
    return _render(request, "vms/detail.html", "vms/detail.html#vm-status", context, status=status)


@login_required
@require_GET
def vm_detail_status(request: HttpRequest, key_id: int, vm_id: str) -> HttpResponse:
    context = _vm_context(request, key_id, vm_id)
    response = render(request, "vms/detail.html#vm-status", context)
    patch_vary_headers(response, ["HX-Request"])
    if context["vm"] is None and context["result"].problem is None:
        # The VM left the list for good: show that and stop polling (htmx stops on 286).
        stopped = HttpResponseStopPolling()
        stopped.content = response.content
        return stopped
    return response


# --- API keys ------------------------------------------------------------------------------------


def _own_key_or_404(request: HttpRequest, key_id: int):
    # A key shared with you is still somebody else's: renaming or removing it is a 404, as for a stranger.
    api_key = selectors.apikey_for_user(user=request.user, key_id=key_id)
    if api_key is None or not can_manage_key(user=request.user, api_key=api_key):
        raise Http404("No such API key.")
    return api_key


def _shareable_key(request: HttpRequest, key_id: int):
    """404 for a key you cannot see; 403 for one you see but may not share (not yours, or no permission)."""
    api_key = selectors.apikey_for_user(user=request.user, key_id=key_id)
    if api_key is None:
        raise Http404("No such API key.")
    if not can_share_key(user=request.user, api_key=api_key):
        raise PermissionDenied("Only the key's owner, with the sharing permission, may share it.")
    return api_key


@login_required
@require_http_methods(["GET"])
def key_list(request: HttpRequest) -> HttpResponse:
    visible = selectors.apikeys_for_user(user=request.user)
    own = list(visible.filter(owner=request.user).prefetch_related("shares__group"))
    shared = list(visible.exclude(owner=request.user).order_by("owner__username", "label", "pk"))
    balances = _balances(request.user, own + shared)
    context = {
        "own_keys": [
            (api_key, can_share_key(user=request.user, api_key=api_key), balances.get(api_key.pk))
            for api_key in own
        ],
        "shared_keys": [
            (api_key, ROLE_LABELS[api_key.role_for_user], balances.get(api_key.pk)) for api_key in shared
        ],
    }
    return render(request, "vms/keys.html", context)


def _balances(user, api_keys) -> dict:
    """Key id -> the prepaid balance of today's API, read through the VM list's cache (the same answer the
    list page shows). Only keys of today's API have one: without such a key nothing is fetched."""
    if not any(api_key.generation == "b" for api_key in api_keys):
        return {}
    listing = selectors.vms_for_user(user=user)
    return {result.account.key_id: result.balance for result in listing.accounts if result.balance}


@login_required
@require_http_methods(["GET", "POST"])
def key_sharing(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = _shareable_key(request, key_id)
    form = KeyShareForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        group, role = form.cleaned_data["group"], form.cleaned_data["role"]
        _, created = services.keyshare_set(api_key=api_key, group=group, role=role, shared_by=request.user)
        verb = "shared with" if created else "now shared with"
        messages.success(request, f"“{api_key.label}” {verb} {group.name} as {ROLE_LABELS[role].lower()}.")
        return redirect("vms:key_sharing", key_id=api_key.pk)
    context = {"api_key": api_key, "shares": api_key.shares.select_related("group"), "form": form}
    return render(request, "vms/key_sharing.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def key_unshare(request: HttpRequest, key_id: int, share_id: int) -> HttpResponse:
    api_key = _shareable_key(request, key_id)
    share = get_object_or_404(api_key.shares.select_related("group", "api_key"), pk=share_id)
    group_name = share.group.name
    services.keyshare_delete(share=share, removed_by=request.user)
    messages.success(request, f"“{api_key.label}” is no longer shared with {group_name}.")
    return redirect("vms:key_sharing", key_id=api_key.pk)


@sensitive_post_parameters("secret")
@login_required
@require_http_methods(["GET", "POST"])
def key_add(request: HttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST":
        verdict = ratelimit.key_add_attempt(request=request)
        if not verdict.allowed:
            return _key_add_refused(request, form, verdict)
    if request.method == "POST" and form.is_valid():
        try:
            api_key = services.apikey_create(owner=request.user, **form.cleaned_data)
        except ValidationError as exc:
            if "secret" in getattr(exc, "error_dict", {}):
                # Someone trying keys against Fluence through the portal: worth a security event.
                ratelimit.security_log.warning(
                    "api key refused by Fluence on add: user=%s ip=%s",
                    request.user,
                    request_meta.client_ip(request),
                )
            _add_errors(form, exc)
        else:
            messages.success(request, f"Key “{api_key.label}” (…{api_key.fingerprint}) added.")
            return redirect("vms:keys")
    return render(request, "vms/key_form.html", {"form": form}, status=400 if form.errors else 200)


def _key_add_refused(request: HttpRequest, form: ApiKeyForm, verdict: ratelimit.Verdict) -> HttpResponse:
    """Over the limit: refused before the key is tried, so nothing is sent to Fluence."""
    minutes = verdict.retry_minutes
    form.add_error(
        None,
        f"Too many API keys tried; try again in {minutes} minute{'s' if minutes != 1 else ''}. "
        "Nothing was sent to Fluence.",
    )
    response = render(request, "vms/key_form.html", {"form": form}, status=429)
    response["Retry-After"] = str(verdict.retry_after)
    return response


@login_required
@require_http_methods(["GET", "POST"])
def key_rename(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = _own_key_or_404(request, key_id)
    form = ApiKeyRenameForm(request.POST or None, initial={"label": api_key.label})
    if request.method == "POST" and form.is_valid():
        try:
            services.apikey_rename(api_key=api_key, label=form.cleaned_data["label"])
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, f"Key renamed to “{api_key.label}”.")
            return redirect("vms:keys")
    return render(
        request, "vms/key_rename.html", {"form": form, "api_key": api_key}, status=400 if form.errors else 200
    )


@login_required
@require_http_methods(["GET", "POST"])
def key_remove(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = _own_key_or_404(request, key_id)
    if request.method == "POST":
        label = api_key.label
        services.apikey_delete(api_key=api_key)
        selectors.forget_cached_vms(key_id=key_id)
        messages.success(request, f"Key “{label}” removed. Its VMs keep running on Fluence.")
        return redirect("vms:keys")
    return render(request, "vms/key_remove.html", {"api_key": api_key})


def _add_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


# --- deleting VMs --------------------------------------------------------------------------------------

BULK_DELETE_LIMIT = 100


def _deletion_context(lookup, now) -> dict:
    vm = lookup.vm
    return {
        "vm": vm,
        "result": lookup.result,
        "account": lookup.result.account,
        "epoch": epoch_progress(vm, now),
        "confirm_text": vm.name or vm.id,
        "deleting": lookup.deleting,
    }


@login_required
@require_http_methods(["GET", "POST"])
def vm_delete(request: HttpRequest, key_id: int, vm_id: str) -> HttpResponse:
    lookup = selectors.vm_for_user(user=request.user, key_id=key_id, vm_id=vm_id)
    if lookup is None or lookup.vm is None:
        raise Http404("No such VM.")
    if not can_delete_vms(user=request.user, api_key=lookup.api_key):
        return _render(
            request, "vms/delete_forbidden.html", "vms/delete_forbidden.html#dialog", {"vm": lookup.vm}, 403
        )
    context = _deletion_context(lookup, timezone.now())
    if request.method == "POST":
        # Compared as the person saw it: HTML shows runs of spaces as one.
        typed = " ".join(request.POST.get("confirm", "").split())
        if typed != " ".join(context["confirm_text"].split()):
            what = "the name" if lookup.vm.name else "the id"
            context["error"] = f"Type {what} exactly as shown to confirm. Nothing was deleted."
            return _render(request, "vms/delete_confirm.html", "vms/delete_confirm.html#dialog", context, 400)
        meta = RequestMeta.from_request(request)
        try:
            outcome = services.vm_delete(api_key=lookup.api_key, vm=lookup.vm, meta=meta)
        except services.DeletionRefused as refused:
            context["error"] = str(refused)
            return _render(request, "vms/delete_confirm.html", "vms/delete_confirm.html#dialog", context, 400)
        return _deletion_response(request, [(lookup.vm, context["account"], outcome)])
    return _render(request, "vms/delete_confirm.html", "vms/delete_confirm.html#dialog", context)


def _deletion_response(request: HttpRequest, outcomes: list) -> HttpResponse:
    if htmx_partial(request):
        response = render(request, "vms/delete_result.html", {"outcomes": outcomes})
        patch_vary_headers(response, ["HX-Request"])
        return trigger_client_event(response, "vms-changed")
    for vm, account, outcome in outcomes:
        level = messages.SUCCESS if outcome.succeeded else messages.ERROR
        messages.add_message(request, level, f"{vm.display_name} ({account.label}): {outcome.message}")
    return redirect("vms:list")


def _bulk_selection(request: HttpRequest, values: list[str]):
    """The VMs named by `key_id:vm_id` values that this person may delete, and why the others are skipped."""
    listing = selectors.vms_for_user(user=request.user)
    rows = {(row.account.key_id, row.vm.key): row for row in listing.rows}
    api_keys = {api_key.pk: api_key for api_key in selectors.apikeys_for_user(user=request.user)}
    may_delete = {pk: can_delete_vms(user=request.user, api_key=api_key) for pk, api_key in api_keys.items()}
    selected, skipped, seen = [], [], set()
    now = timezone.now()
    for value in values[:BULK_DELETE_LIMIT]:
        key_part, _, vm_part = value.partition(":")
        if not key_part.isdigit() or not is_valid_vm_id(vm_part):
            skipped.append((value[:60], "not a VM reference"))
            continue
        ident = (int(key_part), vm_part.lower())
        if ident in seen:
            continue
        seen.add(ident)
        row, api_key = rows.get(ident), api_keys.get(ident[0])
        if row is None or api_key is None:
            skipped.append((vm_part, "not found under your keys (already deleted?)"))
        elif row.deleting:
            skipped.append((row.vm.display_name, "Fluence already accepted its deletion"))
        elif not may_delete[api_key.pk]:
            skipped.append((row.vm.display_name, "you may not delete VMs of this account"))
        else:
            selected.append((row, api_key, epoch_progress(row.vm, now)))
    if len(values) > BULK_DELETE_LIMIT:
        skipped.append(
            (f"{len(values) - BULK_DELETE_LIMIT} more", f"at most {BULK_DELETE_LIMIT} VMs at once")
        )
    return selected, skipped


@login_required
@require_http_methods(["GET", "POST"])
def vm_bulk_delete(request: HttpRequest) -> HttpResponse:
    values = request.POST.getlist("vm") if request.method == "POST" else request.GET.getlist("vm")
    selected, skipped = _bulk_selection(request, values)
    context = {"selected": selected, "skipped": skipped, "count": len(selected)}
    if request.method == "POST" and selected:
        if request.POST.get("confirm", "").strip() != str(len(selected)):
            context["error"] = f"Type {len(selected)} (the number of VMs) to confirm. Nothing was deleted."
            return _render(request, "vms/bulk_delete.html", "vms/bulk_delete.html#dialog", context, 400)
        meta = RequestMeta.from_request(request)
        # Per key, so that an API that deletes many VMs in one call gets them together.
        by_key: dict[int, list] = {}
        for row, api_key, _ in selected:
            by_key.setdefault(api_key.pk, [api_key, []])[1].append(row)
        outcomes = []
        for api_key, rows in by_key.values():
            results = services.vms_delete(api_key=api_key, vms=[row.vm for row in rows], meta=meta)
            outcomes += [(row.vm, row.account, result) for row, result in zip(rows, results, strict=True)]
        return _deletion_response(request, outcomes)
    status = 400 if request.method == "POST" else 200
    return _render(request, "vms/bulk_delete.html", "vms/bulk_delete.html#dialog", context, status)
