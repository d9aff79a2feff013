"""The audit trail of every write: a filterable page (whole or as its table partial) and a CSV export."""

import csv
import json
from datetime import UTC

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from vms import htmx
from vms.audit import (
    ACTION_CHOICES,
    OUTCOME_CHOICES,
    TARGET_CHOICES,
    AttemptLine,
    AuditFilters,
    account_options,
    attempts_matching,
    audit_events_for_user,
)
from vms.models import DeletionEvent

PAGE_SIZE = 100

CSV_COLUMNS = [
    ("created_at_utc", lambda event: event.created_at.astimezone(UTC).isoformat()),
    ("correlation_id", lambda event: str(event.correlation_id)),
    ("kind", lambda event: event.kind),
    ("outcome", lambda event: event.outcome),
    ("source", lambda event: event.source),
    ("actor_username", lambda event: event.actor_username),
    ("actor_id", lambda event: event.actor_id),
    ("client_ip", lambda event: event.client_ip or ""),
    ("user_agent", lambda event: event.user_agent),
    ("request_id", lambda event: event.request_id),
    ("key_id", lambda event: event.key_id),
    ("key_label", lambda event: event.key_label),
    ("key_fingerprint", lambda event: event.key_last_four),  # the column's name since the first export
    ("key_owner_username", lambda event: event.key_owner_username),
    ("base_url", lambda event: event.base_url),
    ("vm_id", lambda event: event.vm_id),
    ("vm_name", lambda event: event.vm_name),
    ("upstream_status", lambda event: "" if event.upstream_status is None else str(event.upstream_status)),
    ("message", lambda event: event.message),
    (
        "vm_snapshot",
        lambda event: json.dumps(
            event.vm_snapshot, separators=(",", ":"), sort_keys=True, ensure_ascii=False
        ),
    ),
    # Last, so that the columns of exports made before them keep their places.
    ("action", lambda event: event.action or DeletionEvent.Action.VM_DELETE),
    (
        "details",
        lambda event: (
            ""
            if event.details is None
            else json.dumps(event.details, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        ),
    ),
]
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: str) -> str:
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


@login_required
@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    filters = AuditFilters.from_querydict(request.GET)
    visible = audit_events_for_user(user=request.user)
    # One line per attempt (its intent row with the latest outcome); the export keeps every row.
    page = Paginator(attempts_matching(filters, visible), PAGE_SIZE).get_page(request.GET.get("page"))
    # One attempt asked for: its rows too, intent and outcomes, oldest first.
    attempt_rows = list(filters.apply(visible).order_by("created_at", "pk")) if filters.attempt else []
    audit_url = reverse("vms:audit")
    partial = htmx.is_partial(request)
    # The account choices belong to the form, which a table-only response does not carry.
    account_choices = [] if partial else account_options(events=visible)
    if filters.account and not partial and filters.account not in {key_id for key_id, _ in account_choices}:
        # Filtering by a label typed into the URL: keep it selected in the form.
        account_choices.append((filters.account, filters.account))
    context = {
        "filters": filters,
        "page": page,
        "attempts": [AttemptLine.of(intent) for intent in page.object_list],
        "attempt_rows": attempt_rows,
        "audit_url": audit_url,
        "export_url": f"{reverse('vms:audit_export')}?{filters.querystring()}".rstrip("?"),
        "prev_url": f"?{filters.querystring(page=page.previous_page_number())}"
        if page.has_previous()
        else None,
        "next_url": f"?{filters.querystring(page=page.next_page_number())}" if page.has_next() else None,
        "outcome_choices": OUTCOME_CHOICES,
        "action_choices": ACTION_CHOICES,
        "target_choices": TARGET_CHOICES,
        "account_choices": account_choices,
    }
    return htmx.render(request, "vms/audit.html", context, partial="vms/audit.html#audit-table")


class _Echo:
    """A file-like object whose write() hands the line back, for streaming the CSV row by row."""

    def write(self, value: str) -> str:
        return value


@login_required
@require_GET
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    filters = AuditFilters.from_querydict(request.GET)
    events = filters.apply(audit_events_for_user(user=request.user))
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow([name for name, _ in CSV_COLUMNS])
        event: DeletionEvent
        for event in events.iterator(chunk_size=1000):
            yield writer.writerow([csv_safe(value(event)) for _, value in CSV_COLUMNS])

    filename = f"audit-{timezone.now().astimezone(UTC):%Y%m%d-%H%M%S}.csv"
    return StreamingHttpResponse(
        lines(),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
