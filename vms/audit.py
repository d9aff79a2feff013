"""Reads of the deletion audit trail: who sees which rows, the audit page's filters, a VM's history."""

import re
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from django.db.models import CharField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Cast
from django.http import QueryDict
from django.utils import timezone

from vms.models import DeletionEvent
from vms.permissions import can_view_all_deletions
from vms.selectors import apikeys_for_user

VM_HISTORY_LIMIT = 50
TEXT_FILTER_MAX = 200
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# NUL and other control characters: PostgreSQL refuses NUL in text, and none belongs in a filter.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# The outcome filter selects attempts: those with an outcome row of this value, or none yet ("pending").
PENDING = "pending"
OUTCOME_CHOICES = [
    (DeletionEvent.Outcome.SUCCEEDED.value, "Succeeded"),
    (DeletionEvent.Outcome.FAILED.value, "Failed"),
    (DeletionEvent.Outcome.UNKNOWN.value, "Unknown"),
    (PENDING, "No outcome yet"),
]


def deletion_events_for_user(*, user) -> QuerySet[DeletionEvent]:
    """The audit rows this person may read: every row with the audit permission; otherwise the rows of
    the keys they may see (the same rule as for the VMs) and the rows of their own actions."""
    if not user.is_authenticated:
        return DeletionEvent.objects.none()
    if can_view_all_deletions(user=user):
        return DeletionEvent.objects.all()
    # Rows hold the key id as text; compare in the database so that this stays one query.
    visible_key_ids = (
        apikeys_for_user(user=user).order_by().annotate(key_text=Cast("pk", CharField())).values("key_text")
    )
    return DeletionEvent.objects.filter(Q(key_id__in=visible_key_ids) | Q(actor_id=str(user.pk)))


def events_for_vm(*, user, key_id: int | str, vm_id: str) -> list[DeletionEvent]:
    """The deletion history of one VM under one key, newest first, as far as this person may see it."""
    return list(
        deletion_events_for_user(user=user).filter(key_id=str(key_id), vm_id__iexact=vm_id)[:VM_HISTORY_LIMIT]
    )


def attempts_needing_reconciliation(*, older_than: timedelta) -> list[DeletionEvent]:
    """Intent rows older than `older_than` whose attempt has no outcome, or whose latest outcome is
    `unknown`: Fluence has to be asked what became of them. Oldest first."""
    latest_outcome = (
        DeletionEvent.objects.filter(
            correlation_id=OuterRef("correlation_id"), kind=DeletionEvent.Kind.OUTCOME
        )
        .order_by("-created_at", "-pk")
        .values("outcome")[:1]
    )
    cutoff = timezone.now() - older_than
    return list(
        DeletionEvent.objects.filter(kind=DeletionEvent.Kind.INTENT, created_at__lte=cutoff)
        .annotate(latest_outcome=Subquery(latest_outcome))
        .filter(Q(latest_outcome__isnull=True) | Q(latest_outcome=DeletionEvent.Outcome.UNKNOWN))
        .order_by("created_at", "pk")
    )


def latest_outcome_of(*, correlation_id: uuid.UUID) -> str | None:
    """The outcome most recently recorded for one attempt, or None when it has none yet."""
    return (
        DeletionEvent.objects.filter(correlation_id=correlation_id, kind=DeletionEvent.Kind.OUTCOME)
        .order_by("-created_at", "-pk")
        .values_list("outcome", flat=True)
        .first()
    )


@dataclass(frozen=True)
class AuditFilters:
    """The audit page's filters as read from a query string. A bad value becomes a note and is ignored."""

    actor: str = ""
    account: str = ""
    outcome: str = ""
    date_from: date | None = None
    date_to: date | None = None
    vm: str = ""
    attempt: uuid.UUID | None = None
    # What the person typed, to show back in the form even when it was not usable.
    raw: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    FIELDS = ("actor", "account", "outcome", "from", "to", "vm", "attempt")

    @classmethod
    def from_querydict(cls, query: QueryDict) -> "AuditFilters":
        raw = {name: query.get(name, "").strip() for name in cls.FIELDS}
        notes: list[str] = []
        values: dict[str, object] = {}

        for name, label in (("actor", "actor"), ("account", "account"), ("vm", "VM")):
            text = raw[name]
            if not text:
                continue
            if len(text) > TEXT_FILTER_MAX or _CONTROL.search(text):
                notes.append(f"The {label} filter is not a usable value; it was ignored.")
                continue
            values[name] = text

        if raw["outcome"]:
            if raw["outcome"] in dict(OUTCOME_CHOICES):
                values["outcome"] = raw["outcome"]
            else:
                notes.append("Unknown outcome filter; it was ignored.")

        dates: dict[str, date] = {}
        for name, label in (("from", "“from”"), ("to", "“to”")):
            parsed = _parse_date(raw[name])
            if parsed is None and raw[name]:
                notes.append(f"The {label} date must be a date like 2025-04-16; it was ignored.")
            elif parsed is not None:
                dates[name] = parsed
        if "from" in dates and "to" in dates and dates["from"] > dates["to"]:
            notes.append("The “from” date is after the “to” date; the date range was ignored.")
            dates.clear()
        values["date_from"] = dates.get("from")
        values["date_to"] = dates.get("to")

        if raw["attempt"]:
            try:
                values["attempt"] = uuid.UUID(raw["attempt"])
            except ValueError:
                notes.append("The attempt filter is not a correlation id; it was ignored.")

        return cls(raw=raw, notes=tuple(notes), **values)

    @property
    def is_filtered(self) -> bool:
        return bool(self.params())

    def params(self) -> dict[str, str]:
        """The usable filters as query parameters (bad ones dropped)."""
        params = {
            "actor": self.actor,
            "account": self.account,
            "outcome": self.outcome,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "vm": self.vm,
            "attempt": str(self.attempt) if self.attempt else "",
        }
        return {name: value for name, value in params.items() if value}

    def querystring(self, **extra: object) -> str:
        params: dict[str, object] = {**self.params(), **{k: v for k, v in extra.items() if v}}
        return urlencode(params)

    def apply(self, events: QuerySet[DeletionEvent]) -> QuerySet[DeletionEvent]:
        if self.actor:
            events = events.filter(actor_username__iexact=self.actor)
        if self.account:
            events = events.filter(Q(key_id=self.account) | Q(key_label__iexact=self.account))
        if self.outcome == PENDING:
            events = events.exclude(correlation_id__in=_attempts_with_outcome())
        elif self.outcome:
            events = events.filter(correlation_id__in=_attempts_with_outcome(self.outcome))
        if self.date_from:
            events = events.filter(created_at__gte=_start_of_day(self.date_from))
        if self.date_to:
            with suppress(OverflowError):  # 9999-12-31 has no next day: no upper bound
                events = events.filter(created_at__lt=_start_of_day(self.date_to + timedelta(days=1)))
        if self.vm:
            events = events.filter(Q(vm_id__icontains=self.vm) | Q(vm_name__icontains=self.vm))
        if self.attempt:
            events = events.filter(correlation_id=self.attempt)
        return events


def account_options(*, events: QuerySet[DeletionEvent], limit: int = 2000) -> list[tuple[str, str]]:
    """(key id, "label (…fingerprint)") for each account in these rows; a renamed key lists its labels."""
    labels: dict[str, list[str]] = {}
    rows = events.order_by().values_list("key_id", "key_label", "key_fingerprint").distinct()[:limit]
    for key_id, label, fingerprint in rows:
        if key_id:
            labels.setdefault(key_id, []).append(f"{label} (…{fingerprint})")
    options = [(key_id, " / ".join(sorted(names))) for key_id, names in labels.items()]
    return sorted(options, key=lambda option: (option[1].lower(), option[0]))


def _attempts_with_outcome(outcome: str | None = None) -> QuerySet:
    rows = DeletionEvent.objects.filter(kind=DeletionEvent.Kind.OUTCOME)
    if outcome is not None:
        rows = rows.filter(outcome=outcome)
    return rows.order_by().values("correlation_id")


def _parse_date(text: str) -> date | None:
    # fromisoformat alone accepts "20250416" and week dates too; the form promises YYYY-MM-DD only.
    if not _DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _start_of_day(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)
