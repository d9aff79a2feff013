"""Reads of the audit trail of every write: who sees which rows, the audit page's filters, a VM's history."""

import re
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from django.db.models import Case, Exists, F, OuterRef, Q, QuerySet, Subquery, When
from django.http import QueryDict
from django.utils import timezone

from vms.models import KEY_ACTIONS, VM_ACTIONS, DeletionEvent
from vms.permissions import audit_events_visible_to

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
Action = DeletionEvent.Action
ACTION_CHOICES = list(Action.choices)
# What a row acted on: a VM (through Fluence) or an API key (in the portal), encryption keys included.
TARGET_VM, TARGET_KEY = "vm", "key"
TARGET_CHOICES = [(TARGET_VM, "VMs"), (TARGET_KEY, "API keys")]
_TARGET_ACTIONS = {
    TARGET_VM: sorted(str(action) for action in VM_ACTIONS),
    TARGET_KEY: sorted(str(action) for action in KEY_ACTIONS),
}
# The kinds of row that open a line of the audit page: an intent (its outcome rows follow) or an event.
_LINE_KINDS = (DeletionEvent.Kind.INTENT, DeletionEvent.Kind.EVENT)
_OUTCOME_KINDS = (DeletionEvent.Kind.OUTCOME, DeletionEvent.Kind.EVENT)


def audit_events_for_user(*, user) -> QuerySet[DeletionEvent]:
    """The audit rows this person may read (the rule: vms.permissions.audit_events_visible_to)."""
    return audit_events_visible_to(user=user)


deletion_events_for_user = audit_events_for_user  # its first name


def events_for_vm(*, user, key_id: int | str, vm_id: str) -> list[DeletionEvent]:
    """The history of one VM under one key (deletions, renames, restarts, ports), newest first, as far as
    this person may see it."""
    return list(
        audit_events_for_user(user=user).filter(key_id=str(key_id), vm_id__iexact=vm_id)[:VM_HISTORY_LIMIT]
    )


def attempts_needing_reconciliation(
    *, older_than: timedelta, actions=(DeletionEvent.Action.VM_DELETE,)
) -> list[DeletionEvent]:
    """Intent rows of these actions older than `older_than` whose attempt has no outcome, or whose latest
    outcome is `unknown`: Fluence has to be asked what became of them. Oldest first."""
    latest_outcome = (
        DeletionEvent.objects.filter(
            correlation_id=OuterRef("correlation_id"), kind=DeletionEvent.Kind.OUTCOME
        )
        .order_by("-created_at", "-pk")
        .values("outcome")[:1]
    )
    cutoff = timezone.now() - older_than
    return list(
        DeletionEvent.objects.filter(
            kind=DeletionEvent.Kind.INTENT, created_at__lte=cutoff, action__in=[str(a) for a in actions]
        )
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
        action=DeletionEvent.Action.VM_DELETE,
        key_id=OuterRef("key_id"),
        vm_id=OuterRef("vm_id"),
        created_at__gt=OuterRef("created_at"),
    )
    ever_unknown = outcomes.filter(
        key_id__in=key_texts, outcome=DeletionEvent.Outcome.UNKNOWN, action=DeletionEvent.Action.VM_DELETE
    )
    if vm_id is not None:
        ever_unknown = ever_unknown.filter(vm_id__iexact=vm_id)
    intents = (
        DeletionEvent.objects.filter(
            kind=DeletionEvent.Kind.INTENT,
            action=DeletionEvent.Action.VM_DELETE,
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
    action: str = ""
    target: str = ""
    # What the person typed, to show back in the form even when it was not usable.
    raw: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    FIELDS = ("actor", "account", "outcome", "from", "to", "vm", "attempt", "action", "target")

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

        if raw["action"]:
            if raw["action"] in dict(ACTION_CHOICES):
                values["action"] = raw["action"]
            else:
                notes.append("Unknown action filter; it was ignored.")

        if raw["target"]:
            if raw["target"] in dict(TARGET_CHOICES):
                values["target"] = raw["target"]
            else:
                notes.append("Unknown target filter (VMs or API keys); it was ignored.")

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
            "action": self.action,
            "target": self.target,
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
        if self.action:
            events = events.filter(action=self.action)
        if self.target:
            events = events.filter(action__in=_TARGET_ACTIONS[self.target])
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
    attempt has none), and the event rows (a change in the portal's database), which are their own outcome.
    One SQL statement, whatever the page size."""
    latest = DeletionEvent.objects.filter(
        correlation_id=OuterRef("correlation_id"), kind=DeletionEvent.Kind.OUTCOME
    ).order_by("-created_at", "-pk")
    is_event = Q(kind=DeletionEvent.Kind.EVENT)

    def of_outcome(name: str):
        return Case(When(is_event, then=F(name)), default=Subquery(latest.values(name)[:1]))

    return events.filter(kind__in=_LINE_KINDS).annotate(
        outcome_value=of_outcome("outcome"),
        outcome_at=of_outcome("created_at"),
        outcome_status=of_outcome("upstream_status"),
        outcome_message=of_outcome("message"),
        outcome_source=of_outcome("source"),
    )


@dataclass(frozen=True)
class AttemptLine:
    """One line of the audit page: an attempt (its intent row and what its latest outcome says), or an
    event row (a change in the portal's own database, its own outcome)."""

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
        if intent.kind == DeletionEvent.Kind.EVENT:
            upstream = "—"  # made in the portal's own database: Fluence was not asked
        elif intent.outcome_status is not None:
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

    @property
    def action(self) -> str:
        return self.intent.action or DeletionEvent.Action.VM_DELETE

    @property
    def action_label(self) -> str:
        return action_label(self.action)

    @property
    def is_key_event(self) -> bool:
        return self.action in KEY_ACTIONS

    @property
    def change(self) -> str:
        return change_text(self.intent.details)


def action_label(action: str | None) -> str:
    action = action or DeletionEvent.Action.VM_DELETE
    return dict(ACTION_CHOICES).get(action, action)


_ASKED = {
    DeletionEvent.Action.VM_DELETE: "asked Fluence to delete it",
    DeletionEvent.Action.VM_RENAME: "asked Fluence to rename it",
    DeletionEvent.Action.VM_RESTART: "asked Fluence to restart it",
    DeletionEvent.Action.VM_SOFT_REBOOT: "asked Fluence to soft-reboot it",
    DeletionEvent.Action.VM_PORTS: "asked Fluence to change its open ports",
}


def intent_sentence(event: DeletionEvent) -> str:
    """What an intent row asked, for a VM's history: "asked Fluence to rename it (name: a → b)"."""
    sentence = _ASKED.get(event.action or DeletionEvent.Action.VM_DELETE, f"asked Fluence: {event.action}")
    change = change_text(event.details)
    return f"{sentence} ({change})" if change else sentence


def change_text(details) -> str:
    """What an action changed, as one line of text: "web-1 → web-2", "group ops as operator", "…"."""
    if not isinstance(details, dict):
        return ""
    parts = []
    for name, value in details.items():
        if name in ("before", "after"):
            continue
        parts.append(f"{name.replace('_', ' ')}: {_plain(value)}")
    before, after = details.get("before"), details.get("after")
    if isinstance(before, dict) or isinstance(after, dict):
        names = list(dict.fromkeys([*(before or {}), *(after or {})]))
        for name in names:
            old = _plain((before or {}).get(name))
            new = _plain((after or {}).get(name))
            parts.append(f"{name.replace('_', ' ')}: {old} → {new}")
    return "; ".join(parts)


def _plain(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, list):
        return ", ".join(_plain(item) for item in value) if value else "none"
    if isinstance(value, dict) and set(value) == {"port", "protocol"}:
        return f"{value['port']}/{value['protocol']}"
    return str(value)


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
    rows = DeletionEvent.objects.filter(kind__in=_OUTCOME_KINDS)
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
