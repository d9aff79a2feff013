"""Views: parse the request, call a selector or a service, render the answer (vms.htmx: page or fragment).

Who may do what is decided in vms.permissions and enforced by the services; a view only turns a refusal
into the right answer (a 404 for what the person may not see, a 403 for what they see but may not do)."""

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from vms import (
    audit,
    deletion_jobs,
    deletion_loss,
    htmx,
    preferences,
    ratelimit,
    request_meta,
    selectors,
    services,
    table_version,
    vm_actions,
)
from vms.billing import billing_doubt, epoch_progress
from vms.display import format_data_age
from vms.forms import ApiKeyForm, ApiKeyRenameForm, KeyShareForm
from vms.permissions import ROLE_LABELS, can_manage_key, can_share_key
from vms.request_meta import RequestMeta
from vms.vm_table import VmQuery, switch_notice, vm_table


@login_required
@require_GET
def vm_list(request: HttpRequest) -> HttpResponse:
    query = VmQuery.from_querydict(request.GET)
    # Most polls find the table as the page shows it: answered from the cache alone, nothing swapped.
    if htmx.is_partial(request) and table_version.unchanged(request, query):
        return htmx.varies(HttpResponse(status=204))
    basis = table_version.basis(request)
    listing = selectors.vms_for_user(user=request.user)
    services.apikeys_record_answers(results=listing.accounts)
    now = timezone.now()
    # Kept by the table epoch (database writes move it): most renders ask the database for neither. The
    # unknown deletions: one query for every visible key, which VMs have a deletion of unknown outcome.
    key_ids = [result.account.key_id for result in listing.accounts]
    columns, unknown = table_version.remembered(
        basis,
        (f"columns:{request.user.pk}", lambda: preferences.vm_columns_for_user(user=request.user)),
        ("unknown:" + ",".join(map(str, key_ids)), lambda: audit.unknown_deletions(key_ids=key_ids)),
    )
    version = table_version.version(basis, user=request.user, query=query, accounts=listing.accounts)
    context = {
        **vm_table(
            listing, query, now=now, list_url=reverse("vms:list"), columns=columns, unknown_deletions=unknown
        ),
        "listing": listing,
        "query": query,
        "now": now,
        "switched": _switch_notices(request.user, listing.accounts),
        "table_version": version,
    }
    response = htmx.render(request, "vms/list.html", context, partial="vms/list_partial.html")
    if version:
        response[table_version.HEADER] = version
    return response


@login_required
@require_POST
def vm_columns(request: HttpRequest) -> HttpResponse:
    """Save which optional columns the VM table shows for this person. From the page's script: 204, and the
    table refreshes itself (vms-changed); from the plain form: back to the list as it was."""
    preferences.vm_columns_set(user=request.user, columns=request.POST.getlist("column"))
    if htmx.is_partial(request):
        return htmx.varies(trigger_client_event(HttpResponse(status=204), "vms-changed"))
    back = request.POST.get("next", "")
    # The host check first: it also refuses what urlsplit cannot read ("http://[::1").
    safe = url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ) and urlsplit(back).path == reverse("vms:list")
    return redirect(back if safe else "vms:list")  # the list, with its search and filters, and nothing else


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
    services.apikeys_record_answers(results=[lookup.result])
    now = timezone.now()
    vm = lookup.vm
    return {
        "vm": vm,
        "result": lookup.result,
        "vm_id": vm_id,
        "key_id": key_id,
        "epoch": epoch_progress(vm, now) if vm else None,
        "billing_doubt": billing_doubt(vm, now) if vm else None,
        "data_age": format_data_age(lookup.result.fetched_at, now) if lookup.result.fetched_at else None,
        "deleting": lookup.deleting,
        "can_delete": lookup.result.account.can_delete,
        **vm_actions.offers(lookup),
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
    context["unknown_deletion"] = _unknown_deletion(key_id, vm_id)
    # A VM that is gone (or never was) under this key is a 404, with a page that says so plainly.
    status = 404 if context["vm"] is None and context["result"].problem is None else 200
    return htmx.render(
        request, "vms/detail.html", context, partial="vms/detail.html#vm-status", status=status
    )


@login_required
@require_GET
def vm_detail_status(request: HttpRequest, key_id: int, vm_id: str) -> HttpResponse:
    context = _vm_context(request, key_id, vm_id)
    response = htmx.render(request, "vms/detail.html#vm-status", context)
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
    selectors.apikeys_mark_same_account(own + shared)
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
    services.apikeys_record_answers(results=listing.accounts)
    # A key listed through another key of the same account shows that account's balance too.
    return {
        account.key_id: result.balance
        for result in listing.accounts
        if result.balance
        for account in (result.account, *result.folded)
    }


@login_required
@require_http_methods(["GET", "POST"])
def key_sharing(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = _shareable_key(request, key_id)
    form = KeyShareForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        group, role = form.cleaned_data["group"], form.cleaned_data["role"]
        try:
            _, created = services.keyshare_set(
                api_key=api_key,
                group=group,
                role=role,
                shared_by=request.user,
                meta=RequestMeta.from_request(request),
            )
        except services.NotAllowed as refused:
            raise PermissionDenied(str(refused)) from None
        verb = "shared with" if created else "now shared with"
        messages.success(request, f"“{api_key.label}” {verb} {group.name} as {ROLE_LABELS[role].lower()}.")
        return redirect("vms:key_sharing", key_id=api_key.pk)
    context = {"api_key": api_key, "shares": api_key.shares.select_related("group"), "form": form}
    return render(request, "vms/key_sharing.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def key_unshare(request: HttpRequest, key_id: int, share_id: int) -> HttpResponse:
    """A page that names the key and the group, whose form alone stops the sharing (it sends `confirm`)."""
    api_key = _shareable_key(request, key_id)
    share = get_object_or_404(api_key.shares.select_related("group", "api_key"), pk=share_id)
    if request.method == "GET" or request.POST.get("confirm") != "stop-sharing":
        return render(request, "vms/key_unshare.html", {"api_key": api_key, "share": share})
    group_name = share.group.name
    try:
        services.keyshare_delete(share=share, removed_by=request.user, meta=RequestMeta.from_request(request))
    except services.NotAllowed as refused:
        raise PermissionDenied(str(refused)) from None
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
            api_key = services.apikey_create(
                owner=request.user, meta=RequestMeta.from_request(request), **form.cleaned_data
            )
        except ValidationError as exc:
            if "secret" in getattr(exc, "error_dict", {}) and not isinstance(exc, services.DuplicateApiKey):
                # Someone trying keys against Fluence through the portal: worth a security event.
                ratelimit.security_log.warning(
                    "api key refused by Fluence on add: user=%s ip=%s",
                    request.user,
                    request_meta.client_ip(request),
                )
            _add_errors(form, exc)
        else:
            messages.success(request, f"Key “{api_key.label}” (…{api_key.last_four}) added.")
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
            services.apikey_rename(
                user=request.user,
                api_key=api_key,
                label=form.cleaned_data["label"],
                meta=RequestMeta.from_request(request),
            )
        except services.NotAllowed:
            raise Http404("No such API key.") from None
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
        try:
            services.apikey_delete(user=request.user, api_key=api_key, meta=RequestMeta.from_request(request))
        except services.NotAllowed:
            raise Http404("No such API key.") from None
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


def _deletion_context(lookup, now) -> dict:
    vm = lookup.vm
    account = lookup.result.account
    return {
        "vm": vm,
        "result": lookup.result,
        "account": account,
        "epoch": epoch_progress(vm, now),
        "billing_doubt": billing_doubt(vm, now),
        "confirm_text": vm.name or vm.id,
        "deleting": lookup.deleting,
        "unknown_deletion": _unknown_deletion(account.key_id, vm.id),
    }


def _unknown_deletion(key_id: int, vm_id: str):
    """The intent row of this VM's latest deletion attempt when its outcome is unknown, else None."""
    return audit.unknown_deletions(key_ids=[key_id], vm_id=vm_id).get((key_id, vm_id.lower()))


def _delete_forbidden(request: HttpRequest, vm) -> HttpResponse:
    context = {"vm": vm}
    return htmx.render(
        request, "vms/delete_forbidden.html", context, partial="vms/delete_forbidden.html#dialog", status=403
    )


def _delete_dialog(request: HttpRequest, context: dict, status: int = 200) -> HttpResponse:
    return htmx.render(
        request, "vms/delete_confirm.html", context, partial="vms/delete_confirm.html#dialog", status=status
    )


def _vm_gone(request: HttpRequest, lookup, vm_id: str) -> HttpResponse:
    """The delete URL of a VM that is not (or no longer) listed: a 404 page that says so and links to the
    list and the VM's audit trail. The key is named only when the person sees it (`lookup` is None when
    they do not, or it does not exist: the same 404 either way). Under htmx, for a key they see whose
    account answered, the fragment replaces the dialog's content with 200, since the page's htmx
    configuration swaps no 404; when the account did not answer, the VM may exist: a 404 as before."""
    account = lookup.result.account if lookup is not None else None
    problem = lookup.result.problem if lookup is not None and lookup.result.fetched_at is None else None
    context = {"vm_id": vm_id, "account": account, "problem": problem}
    if htmx.is_partial(request) and account is not None and problem is None:
        response = htmx.render(request, "vms/vm_gone.html#dialog", context)
        response["HX-Retarget"], response["HX-Reswap"] = "#modal-content", "innerHTML"
        return response
    return htmx.render(request, "vms/vm_gone.html", context, status=404)


@login_required
@require_http_methods(["GET", "POST"])
def vm_delete(request: HttpRequest, key_id: int, vm_id: str) -> HttpResponse:
    lookup = selectors.vm_for_user(user=request.user, key_id=key_id, vm_id=vm_id)
    if lookup is None or lookup.vm is None:
        return _vm_gone(request, lookup, vm_id)
    services.apikeys_record_answers(results=[lookup.result])
    if not lookup.result.account.can_delete:
        return _delete_forbidden(request, lookup.vm)
    context = _deletion_context(lookup, timezone.now())
    if request.method == "POST":
        # Compared as the person saw it: HTML shows runs of spaces as one.
        typed = " ".join(request.POST.get("confirm", "").split())
        if typed != " ".join(context["confirm_text"].split()):
            what = "the name" if lookup.vm.name else "the id"
            context["error"] = f"Type {what} exactly as shown to confirm. Nothing was deleted."
            return _delete_dialog(request, context, 400)
        meta = RequestMeta.from_request(request)
        try:
            outcome = services.vm_delete(user=request.user, api_key=lookup.api_key, vm=lookup.vm, meta=meta)
        except services.NotAllowed:
            return _delete_forbidden(request, lookup.vm)  # the role was taken away meanwhile
        except services.DeletionRefused as refused:
            context["error"] = str(refused)
            return _delete_dialog(request, context, 400)
        return _deletion_response(request, [(lookup.vm, context["account"], outcome)])
    return _delete_dialog(request, context)


def _deletion_response(request: HttpRequest, outcomes: list) -> HttpResponse:
    if htmx.is_partial(request):
        response = htmx.render(request, "vms/delete_result.html", {"outcomes": outcomes})
        return trigger_client_event(response, "vms-changed")
    for vm, account, outcome in outcomes:
        level = messages.SUCCESS if outcome.succeeded else messages.ERROR
        messages.add_message(request, level, f"{vm.display_name} ({account.label}): {outcome.message}")
    return redirect("vms:list")


@login_required
@require_http_methods(["GET", "POST"])
def vm_bulk_delete(request: HttpRequest) -> HttpResponse:
    values = request.POST.getlist("vm") if request.method == "POST" else request.GET.getlist("vm")
    selection = services.vms_select_for_deletion(user=request.user, values=values)
    now = timezone.now()
    losses = [deletion_loss.vm_loss(row.vm, now) for row, _ in selection.selected]
    context = {
        "selected": [
            (row, api_key, epoch_progress(row.vm, now), billing_doubt(row.vm, now), loss)
            for (row, api_key), loss in zip(selection.selected, losses, strict=True)
        ],
        "loss_totals": deletion_loss.loss_totals(losses),
        "uncounted": sum(loss.kind == deletion_loss.DOUBT for loss in losses),
        "skipped": selection.skipped,
        "count": len(selection.selected),
    }
    status = 200
    if request.method == "POST" and selection.selected:
        if request.POST.get("confirm", "").strip() == str(len(selection.selected)):
            # In the background: 100 VMs at Fluence's pace outlast any proxy's timeout. The answer is the
            # job's progress, polled every second until every VM has its outcome.
            job_id = deletion_jobs.deletion_job_start(
                user=request.user, selection=selection, meta=RequestMeta.from_request(request)
            )
            if not htmx.is_partial(request):
                return redirect("vms:bulk_delete_job", job_id=job_id)
            return _job_response(request, deletion_jobs.deletion_job_for(user=request.user, job_id=job_id))
        context["error"] = f"Type {context['count']} (the number of VMs) to confirm. Nothing was deleted."
    if request.method == "POST":
        status = 400
    return htmx.render(
        request, "vms/bulk_delete.html", context, partial="vms/bulk_delete.html#dialog", status=status
    )


def _job_response(request: HttpRequest, job) -> HttpResponse:
    """The job's progress: the dialog's fragment (polled every second until it is over: then 286 stops the
    polling, and the list refreshes), or a whole page without JavaScript."""
    context = {"job": job, "whole_page": not htmx.is_partial(request)}
    response = htmx.render(
        request, "vms/bulk_delete_job.html", context, partial="vms/bulk_delete_job.html#progress"
    )
    if job is not None and not job.over:
        return response
    if htmx.is_partial(request):
        stopped = HttpResponseStopPolling()
        stopped.content = response.content
        return htmx.varies(trigger_client_event(stopped, "vms-changed"))
    if job is None:
        response.status_code = 404
    return response


@login_required
@require_GET
def vm_bulk_delete_job(request: HttpRequest, job_id: str) -> HttpResponse:
    """A bulk deletion's progress, for the person who started it only (anyone else: as if it did not
    exist)."""
    return _job_response(request, deletion_jobs.deletion_job_for(user=request.user, job_id=job_id))


@login_required
@require_POST
def vm_rename(request: HttpRequest, key_id: int, vm_id: str) -> HttpResponse:
    """Rename a VM at Fluence (the form on its page), and show what came of it in place."""
    name = request.POST.get("name", "")
    return _act(
        request,
        key_id,
        vm_id,
        lambda lookup, meta: vm_actions.vm_rename(
            user=request.user, api_key=lookup.api_key, vm=lookup.vm, name=name, meta=meta
        ),
    )


@login_required
@require_POST
def vm_restart(request: HttpRequest, key_id: int, vm_id: str) -> HttpResponse:
    """Restart or soft-reboot a VM (`kind`: restart or softreboot), and show what came of it in place."""
    kind = request.POST.get("kind", "restart")
    if kind not in ("restart", "softreboot"):
        return _action_response(request, key_id, vm_id, None, "Choose restart or soft reboot.", 400)
    return _act(
        request,
        key_id,
        vm_id,
        lambda lookup, meta: vm_actions.vm_restart(
            user=request.user, api_key=lookup.api_key, vm=lookup.vm, soft=kind == "softreboot", meta=meta
        ),
        fresh=True,  # Fluence's allowedActions as they are now, not as the cached list had them
    )


@login_required
@require_POST
def vm_ports(request: HttpRequest, key_id: int, vm_id: str) -> HttpResponse:
    """Replace a VM's open ports with the list typed (the form starts from the current ones); closing
    22/tcp asks for an explicit confirmation first."""
    typed = request.POST.get("ports", "")
    try:
        return _act(
            request,
            key_id,
            vm_id,
            lambda lookup, meta: vm_actions.vm_ports_set(
                user=request.user,
                api_key=lookup.api_key,
                vm=lookup.vm,
                ports=vm_actions.clean_ports(typed),
                ssh_confirmed=request.POST.get("confirm_ssh") == "yes",
                meta=meta,
            ),
        )
    except vm_actions.SshLockoutUnconfirmed as unconfirmed:
        context = {"problem": str(unconfirmed), "ports": typed, "key_id": key_id, "vm": unconfirmed.vm}
        if not htmx.is_partial(request):
            return render(request, "vms/ports_confirm.html", context, status=400)
        return htmx.render(request, "vms/ports_confirm.html#confirm", context, status=400)


def _act(request: HttpRequest, key_id: int, vm_id: str, action, *, fresh: bool = False) -> HttpResponse:
    """Run one VM action for this person and answer with its outcome: a 404 for a VM they cannot see, a
    403 when the service refuses their role, a 400 for input or a moment the service refuses."""
    lookup = selectors.vm_for_user(user=request.user, key_id=key_id, vm_id=vm_id, fresh=fresh)
    if lookup is None or lookup.vm is None:
        raise Http404("No such VM.")
    try:
        result = action(lookup, RequestMeta.from_request(request))
    except services.NotAllowed as refused:
        return _action_response(request, key_id, vm_id, None, str(refused), 403)
    except ValidationError as invalid:
        return _action_response(request, key_id, vm_id, None, " ".join(invalid.messages), 400)
    except vm_actions.ActionRefused as refused:
        return _action_response(request, key_id, vm_id, None, str(refused), 400)
    return _action_response(request, key_id, vm_id, result, None, 200)


def _action_response(
    request, key_id: int, vm_id: str, result, problem: str | None, status: int
) -> HttpResponse:
    """A VM action's outcome in place (the fragment, and the VM's pages refresh), or back to the VM's page
    with the outcome as a message."""
    if not htmx.is_partial(request):
        if problem:
            messages.error(request, problem)
        else:
            level = messages.SUCCESS if result.succeeded else messages.ERROR
            messages.add_message(request, level, result.message)
        if status == 403:
            raise PermissionDenied(problem)
        return redirect("vms:detail", key_id=key_id, vm_id=vm_id)
    context = {"result": result, "problem": problem}
    response = htmx.render(request, "vms/_vm_action_result.html", context, status=status)
    if result is not None:
        # After the swap: a poll may have replaced the form that asked (restart sits in the polled status),
        # and htmx then sends the event from <body>, where a plain HX-Trigger on a detached form is lost.
        trigger_client_event(response, "vms-changed", after="swap")
    return response


@login_required
@require_POST
def vm_deletion_check(request: HttpRequest, key_id: int, vm_id: str) -> HttpResponse:
    """*Check now*: ask Fluence what became of this VM's deletion whose outcome is unknown, record it, and
    show it in place (the row, the VM's page or the delete dialog); the VM pages refresh when it settled."""
    api_key = selectors.apikey_for_user(user=request.user, key_id=key_id)
    if api_key is None:
        raise Http404("No such VM.")
    attempt = _unknown_deletion(key_id, vm_id)
    settlement = problem = None
    try:
        settlement = services.deletion_check(user=request.user, api_key=api_key, vm_id=vm_id)
    except services.NotAllowed as refused:
        raise PermissionDenied(str(refused)) from None
    except services.CheckFailed as failed:
        problem = str(failed)
    if not htmx.is_partial(request):
        if problem:
            messages.error(request, f"Not checked: {problem}")
        else:
            messages.info(request, settlement.message)
        return redirect("vms:detail", key_id=key_id, vm_id=vm_id)
    context = {
        "unknown": attempt,
        "checked": settlement,
        "problem": problem,
        "can_check": True,
        "key_id": key_id,
        "vm_id": vm_id,
        "compact": request.GET.get("in") == "row",
    }
    response = htmx.render(request, "vms/_deletion_unknown.html", context)
    if settlement is not None and (settlement.settles or settlement.outcome == services.SETTLED):
        trigger_client_event(response, "vms-changed")
    return response
