"""Views: parse the request, call a selector or a service, render. Nothing else."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseStopPolling

from vms import selectors, services
from vms.billing import epoch_progress
from vms.forms import ApiKeyForm, ApiKeyRenameForm
from vms.listing import SORTS, VmQuery, table_page


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
    table = table_page(listing.rows, query)
    context = {
        "listing": listing,
        "query": query,
        "table": table,
        "columns": [(name, heading, query.sort_url(name)) for name, (heading, _) in SORTS.items()],
        "list_url": reverse("vms:list"),
        "table_url": query.url(page=table.page),
        "prev_url": query.url(page=table.page - 1) if table.page > 1 else None,
        "next_url": query.url(page=table.page + 1) if table.page < table.pages else None,
        "poll_seconds": settings.VM_POLL_FAST_SECONDS
        if table.any_transitional
        else settings.VM_POLL_SLOW_SECONDS,
        "data_time": _data_time(listing.accounts),
        "now": timezone.now(),
    }
    return _render(request, "vms/list.html", "vms/list_partial.html", context)


def _vm_context(request: HttpRequest, key_id: int, vm_id: str) -> dict:
    lookup = selectors.vm_for_user(user=request.user, key_id=key_id, vm_id=vm_id)
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
        "poll_seconds": settings.VM_POLL_FAST_SECONDS
        if vm is None or vm.status.is_transitional
        else settings.VM_POLL_SLOW_SECONDS,
    }


@login_required
@require_GET
def vm_detail(request: HttpRequest, key_id: int, vm_id: str) -> HttpResponse:
    context = _vm_context(request, key_id, vm_id)
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
    api_key = selectors.apikey_for_user(user=request.user, key_id=key_id)
    if api_key is None or api_key.owner_id != request.user.pk:
        raise Http404("No such API key.")
    return api_key


@login_required
@require_http_methods(["GET"])
def key_list(request: HttpRequest) -> HttpResponse:
    api_keys = selectors.apikeys_for_user(user=request.user).filter(owner=request.user)
    return render(request, "vms/keys.html", {"api_keys": api_keys})


@login_required
@require_http_methods(["GET", "POST"])
def key_add(request: HttpRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            api_key = services.apikey_create(owner=request.user, **form.cleaned_data)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, f"Key “{api_key.label}” (…{api_key.fingerprint}) added.")
            return redirect("vms:keys")
    return render(request, "vms/key_form.html", {"form": form}, status=400 if form.errors else 200)


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
