"""Reads of the deletion audit trail: who sees which rows, the audit page's filters, a VM's history."""

import re
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.http import QueryDict
from django.utils import timezone

from vms.models import DeletionEvent
from vms.permissions import deletion_events_visible_to

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
    (PENDING, "Pending (no outcome yet)"),
]


def deletion_events_for_user(*, user) -> QuerySet[DeletionEvent]:
    """The audit rows this person may read (the rule: vms.permissions.deletion_events_visible_to)."""
    return deletion_events_visible_to(user=user)


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


def unknown_deletions(*, key_ids, vm_id: str | None = None) -> dict[tuple[int, str], DeletionEvent]:
    """(key id, VM id in lowercase) -> the intent row of that VM's latest deletion attempt, for the VMs
    of these keys whose latest attempt's latest outcome is `unknown`: one query, however many rows a page
    shows (unknown outcomes are rare, so it reads only the attempts that ever had one).

    Callers pass only keys the person may see, as the VM list does: the rows it reads are theirs to read
    (vms.permissions.deletion_events_visible_to)."""
    key_texts = [str(key_id) for key_id in key_ids]
    if not key_texts:
        return {}
    outcomes = DeletionEvent.objects.filter(kind=DeletionEvent.Kind.OUTCOME)
    latest_outcome = (
        outcomes.filter(correlation_id=OuterRef("correlation_id"))
        .order_by("-created_at", "-pk")
        .values("outcome")[:1]
    )
    later_attempt = DeletionEvent.objects.filter(
        kind=DeletionEvent.Kind.INTENT,
        key_id=OuterRef("key_id"),
        vm_id=OuterRef("vm_id"),
        created_at__gt=OuterRef("created_at"),
    )
    ever_unknown = outcomes.filter(key_id__in=key_texts, outcome=DeletionEvent.Outcome.UNKNOWN)
    if vm_id is not None:
        ever_unknown = ever_unknown.filter(vm_id__iexact=vm_id)
    intents = (
        DeletionEvent.objects.filter(
            kind=DeletionEvent.Kind.INTENT,
            key_id__in=key_texts,
            correlation_id__in=ever_unknown.order_by().values("correlation_id"),
        )
        .annotate(latest_outcome=Subquery(latest_outcome))
        .filter(latest_outcome=DeletionEvent.Outcome.UNKNOWN)
        .exclude(Exists(later_attempt))
        .order_by("created_at", "pk")
    )
    return {(int(intent.key_id), intent.vm_id.lower()): intent for intent in intents}


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


def attempts_matching(filters: "AuditFilters", events: QuerySet[DeletionEvent]) -> QuerySet[DeletionEvent]:
    """The attempts the audit page lists for these filters: an outcome filter there means the attempt's
    latest outcome, as its line shows it (the export's rows keep the filter's "any row" meaning)."""
    attempts = attempts_of(filters.apply(events))
    if filters.outcome and filters.outcome != PENDING:
        attempts = attempts.filter(outcome_value=filters.outcome)
    return attempts


def attempts_of(events: QuerySet[DeletionEvent]) -> QuerySet[DeletionEvent]:
    """One row per attempt: the intent rows among `events`, each annotated with its latest outcome row
    (`outcome_value`, `outcome_at`, `outcome_status`, `outcome_message`, `outcome_source`; all None while the
    attempt has none). One SQL statement, whatever the page size."""
    latest = DeletionEvent.objects.filter(
        correlation_id=OuterRef("correlation_id"), kind=DeletionEvent.Kind.OUTCOME
    ).order_by("-created_at", "-pk")
    return events.filter(kind=DeletionEvent.Kind.INTENT).annotate(
        outcome_value=Subquery(latest.values("outcome")[:1]),
        outcome_at=Subquery(latest.values("created_at")[:1]),
        outcome_status=Subquery(latest.values("upstream_status")[:1]),
        outcome_message=Subquery(latest.values("message")[:1]),
        outcome_source=Subquery(latest.values("source")[:1]),
    )


@dataclass(frozen=True)
class AttemptLine:
    """One deletion attempt as the audit page shows it: its intent row and what its latest outcome says."""

    intent: DeletionEvent
    outcome: str  # succeeded, failed, unknown, or PENDING while no outcome row exists
    outcome_at: datetime | None
    upstream: str  # Fluence's HTTP status; "accepted" for a success without one; "pending"; "no answer"
    message: str
    reconciled: bool  # the outcome was appended by reconcile_deletions

    @classmethod
    def of(cls, intent: DeletionEvent) -> "AttemptLine":
        """From an intent row annotated by attempts_of."""
        outcome = intent.outcome_value or PENDING
        if intent.outcome_status is not None:
            upstream = str(intent.outcome_status)
        elif outcome == DeletionEvent.Outcome.SUCCEEDED:
            upstream = "accepted"
        elif outcome == PENDING:
            upstream = PENDING
        else:
            upstream = "no answer"
        return cls(
            intent=intent,
            outcome=outcome,
            outcome_at=intent.outcome_at,
            upstream=upstream,
            message=intent.outcome_message or intent.message,
            reconciled=intent.outcome_source == "reconcile",
        )

    @property
    def outcome_label(self) -> str:
        if self.outcome == PENDING:
            return "Pending"
        return dict(DeletionEvent.Outcome.choices).get(self.outcome, self.outcome)


def account_options(*, events: QuerySet[DeletionEvent], limit: int = 2000) -> list[tuple[str, str]]:
    """(key id, "label (…last four)") for each account in these rows; a renamed key lists its labels."""
    labels: dict[str, list[str]] = {}
    rows = events.order_by().values_list("key_id", "key_label", "key_last_four").distinct()[:limit]
    for key_id, label, last_four in rows:
        if key_id:
            labels.setdefault(key_id, []).append(f"{label} (…{last_four})")
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
