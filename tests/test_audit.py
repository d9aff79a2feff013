"""The deletion audit trail: who sees which rows, the filters, the CSV export, a VM's history, the admin."""

import copy
import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import responses
from django.contrib.auth.models import Permission
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from tests.factories import ALICE_KEY, OPS_KEY, deletion_rows
from vms import services
from vms.audit import attempts_needing_reconciliation, deletion_events_for_user, events_for_vm
from vms.fluence.models import parse_vm
from vms.models import DeletionEvent
from vms.sandbox import EXAMPLE_VM
from vms.sandbox.state import SandboxState

pytestmark = pytest.mark.django_db

VM_A = "0xAbCdEf0000000000000000000000000000000001"
VM_B = "0x00000000000000000000000000000000000000b2"
HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_CURRENT_URL": "http://testserver/audit/"}
AUDIT = "/audit/"
EXPORT = "/audit/export.csv"


@pytest.fixture
def auditor(django_user_model):
    person = django_user_model.objects.create_user(username="audrey", password="audrey-password-1")
    person.user_permissions.add(Permission.objects.get(codename="view_all_deletions"))
    return django_user_model.objects.get(pk=person.pk)  # fresh: no stale permission cache


def make_event(
    key,
    actor,
    *,
    kind="intent",
    outcome="",
    vm_id=VM_A,
    vm_name="web-1",
    correlation_id=None,
    created_at=None,
    **fields,
):
    values = {
        "correlation_id": correlation_id or uuid.uuid4(),
        "kind": kind,
        "outcome": outcome,
        "created_at": created_at or timezone.now(),
        "actor_username": actor.get_username(),
        "actor_id": str(actor.pk),
        "client_ip": "192.0.2.10",
        "user_agent": "Mozilla/5.0 test",
        "request_id": "req-" + uuid.uuid4().hex[:12],
        "key_id": str(key.pk),
        "key_label": key.label,
        "key_last_four": key.last_four,
        "key_owner_username": key.owner.get_username(),
        "base_url": key.base_url,
        "vm_id": vm_id,
        "vm_name": vm_name,
        "vm_snapshot": {"id": vm_id, "vmName": vm_name, "status": "ACTIVE"},
        **fields,
    }
    return DeletionEvent.objects.create(**values)


def make_attempt(key, actor, *, outcome="succeeded", at=None, **fields):
    """An intent and (unless outcome is None) its outcome one second later."""
    at = at or timezone.now()
    correlation_id = uuid.uuid4()
    intent = make_event(key, actor, correlation_id=correlation_id, created_at=at, **fields)
    if outcome is None:
        return intent, None
    result = make_event(
        key,
        actor,
        kind="outcome",
        outcome=outcome,
        correlation_id=correlation_id,
        created_at=at + timedelta(seconds=1),
        upstream_status=200 if outcome == "succeeded" else None,
        **fields,
    )
    return intent, result


# The key fixtures write "key added" events: these tests read the deletion lines and rows.
DELETION_LINE = (
    r'<tr class="audit-row[^"]*" data-correlation-id="([0-9a-f-]+)" data-outcome="[^"]*" '
    r'data-action="vm_delete"'
)


def rows_of(response) -> list[str]:
    """The correlation ids of the deletion lines shown, top to bottom."""
    return re.findall(DELETION_LINE, response.content.decode())


def csv_rows(response) -> list[dict[str, str]]:
    return csv_rows_of(b"".join(response.streaming_content))


def csv_rows_of(body: bytes) -> list[dict[str, str]]:
    """The exported rows of deletions."""
    return [row for row in csv.DictReader(io.StringIO(body.decode())) if row["action"] == "vm_delete"]


# --- anonymous --------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [AUDIT, EXPORT])
def test_anonymous_is_sent_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_anonymous_htmx_request_redirects_the_whole_page(client):
    response = client.get(AUDIT, **HX)
    assert response["HX-Redirect"].startswith(reverse("login"))


def test_urls_are_the_named_routes():
    assert reverse("vms:audit") == AUDIT
    assert reverse("vms:audit_export") == EXPORT


@pytest.mark.parametrize("url", [AUDIT, EXPORT])
def test_post_is_refused(alice_client, url):
    assert alice_client.post(url).status_code == 405


# --- access per permission level --------------------------------------------------------------------


def test_owner_sees_their_keys_rows_with_every_column(alice_client, user, alice_key, other_user, mallory_key):
    intent, _outcome = make_attempt(alice_key, user, outcome="failed", message="Fluence refused this API key")
    make_attempt(mallory_key, other_user)
    response = alice_client.get(AUDIT)
    assert response.status_code == 200
    assert "HX-Request" in response["Vary"]
    body = response.content.decode()
    assert "<html" in body
    assert rows_of(response) == [str(intent.correlation_id)]  # one line for the attempt
    row = body[body.index('<tr class="audit-row"') :]
    row = row[: row.index("</tr>")]
    for expected in (
        intent.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "alice",
        "Production",
        "…tion",
        "web-1",
        VM_A,
        "Failed",
        "Fluence refused this API key",
        intent.request_id,
        str(intent.correlation_id)[:8],
    ):
        assert expected in row, expected
    assert "Mine" not in body and "mallory" not in body


def test_an_attempt_is_one_line_linked_to_its_rows(alice_client, user, alice_key):
    intent, _outcome = make_attempt(alice_key, user)
    body = alice_client.get(AUDIT).content.decode()
    assert body.count(f'data-correlation-id="{intent.correlation_id}"') == 1
    assert f'href="/audit/?attempt={intent.correlation_id}"' in body


def test_someone_else_sees_nothing_of_them(client, other_user, user, alice_key):
    make_attempt(alice_key, user)
    client.force_login(other_user)
    response = client.get(AUDIT)
    assert response.status_code == 200
    assert rows_of(response) == []
    assert "No events recorded that you may see." in response.content.decode()
    assert "Production" not in response.content.decode()  # not even in the account filter
    # Not by guessing filters either.
    assert rows_of(client.get(AUDIT, {"account": str(alice_key.pk)})) == []
    assert csv_rows(client.get(EXPORT)) == []


def test_the_actor_keeps_seeing_their_own_rows_after_the_key_is_gone(alice_client, user, alice_key):
    intent, _ = make_attempt(alice_key, user)
    alice_key.delete()
    assert rows_of(alice_client.get(AUDIT)) == [str(intent.correlation_id)]


def test_an_auditor_sees_every_row(client, auditor, user, alice_key, other_user, mallory_key):
    make_attempt(alice_key, user)
    make_attempt(mallory_key, other_user)
    client.force_login(auditor)
    response = client.get(AUDIT)
    assert len(rows_of(response)) == 2  # attempts; the export has their four rows
    assert "Production" in response.content.decode() and "Mine" in response.content.decode()
    assert len(csv_rows(client.get(EXPORT))) == 4


def test_selector_rules(user, other_user, auditor, alice_key, mallory_key):
    mine, _ = make_attempt(alice_key, user, outcome=None)
    # Alice acting on a key she no longer sees (e.g. a share that was withdrawn) still sees her action.
    acted, _ = make_attempt(mallory_key, user, outcome=None)
    theirs, _ = make_attempt(mallory_key, other_user, outcome=None)
    deletions = DeletionEvent.Action.VM_DELETE
    assert set(deletion_events_for_user(user=user).filter(action=deletions)) == {mine, acted}
    assert set(deletion_events_for_user(user=other_user).filter(action=deletions)) == {acted, theirs}
    assert set(deletion_events_for_user(user=auditor).filter(action=deletions)) == {mine, acted, theirs}
    from django.contrib.auth.models import AnonymousUser

    assert list(deletion_events_for_user(user=AnonymousUser())) == []


def test_newest_first_and_paginated_by_100(alice_client, user, alice_key):
    start = timezone.now() - timedelta(days=1)
    events = [make_event(alice_key, user, created_at=start + timedelta(minutes=i)) for i in range(105)]
    deletions = {"action": "vm_delete"}  # without the key fixture's "key added" line
    first = alice_client.get(AUDIT, deletions)
    shown = rows_of(first)
    assert len(shown) == 100
    assert shown[0] == str(events[-1].correlation_id)
    body = first.content.decode()
    assert "Page 1 of 2" in body and 'href="/audit/?action=vm_delete&amp;page=2"' in body
    second = rows_of(alice_client.get(AUDIT, {**deletions, "page": "2"}))
    assert second == [str(event.correlation_id) for event in reversed(events[:5])]


def test_htmx_gets_the_table_partial_and_pushes_urls(alice_client, user, alice_key):
    make_attempt(alice_key, user)
    response = alice_client.get(AUDIT, {"actor": "alice"}, **HX)
    body = response.content.decode()
    assert "<html" not in body
    assert body.lstrip().startswith('<section id="audit-table"')
    assert "HX-Request" in response["Vary"]
    full = alice_client.get(AUDIT).content.decode()
    assert 'hx-target="#audit-table"' in full and 'hx-push-url="true"' in full
    assert 'method="get" action="/audit/"' in full  # works without JavaScript too


def test_boosted_htmx_request_gets_the_whole_page(alice_client):
    response = alice_client.get(AUDIT, HTTP_HX_BOOSTED="true", **HX)
    assert "<html" in response.content.decode()


# --- filters --------------------------------------------------------------------------------------


@pytest.fixture
def trail(user, other_user, auditor, alice_key, mallory_key):
    """Three attempts, on two keys and three days, with three outcomes."""
    day = datetime(2025, 4, 10, 12, 0, tzinfo=UTC)
    ok, _ = make_attempt(alice_key, user, outcome="succeeded", at=day, vm_id=VM_A, vm_name="web-1")
    failed, _ = make_attempt(
        mallory_key, other_user, outcome="failed", at=day + timedelta(days=1), vm_id=VM_B, vm_name="db-main"
    )
    pending, _ = make_attempt(
        alice_key, user, outcome=None, at=day + timedelta(days=2), vm_id=VM_B, vm_name="db-main"
    )
    return {
        "ok": str(ok.correlation_id),
        "failed": str(failed.correlation_id),
        "pending": str(pending.correlation_id),
    }


@pytest.fixture
def auditor_client(client, auditor):
    client.force_login(auditor)
    return client


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"actor": "ALICE"}, {"ok", "pending"}),
        ({"actor": "mallory"}, {"failed"}),
        ({"account": "Mine"}, {"failed"}),
        ({"account": "production"}, {"ok", "pending"}),
        ({"outcome": "succeeded"}, {"ok"}),
        ({"outcome": "failed"}, {"failed"}),
        ({"outcome": "unknown"}, set()),
        ({"outcome": "pending"}, {"pending"}),
        ({"from": "2025-04-11"}, {"failed", "pending"}),
        ({"to": "2025-04-11"}, {"ok", "failed"}),
        ({"from": "2025-04-11", "to": "2025-04-11"}, {"failed"}),
        ({"vm": "DB-MA"}, {"failed", "pending"}),
        ({"vm": "abcdef"}, {"ok"}),
        ({"vm": "web", "actor": "alice"}, {"ok"}),
    ],
)
def test_each_filter_narrows(auditor_client, trail, query, expected):
    response = auditor_client.get(AUDIT, query)
    assert response.status_code == 200
    assert set(rows_of(response)) == {trail[name] for name in expected}
    assert "notice-warning" not in response.content.decode()


def test_account_filter_by_key_id(auditor_client, trail, mallory_key):
    assert set(rows_of(auditor_client.get(AUDIT, {"account": str(mallory_key.pk)}))) == {trail["failed"]}


def test_outcome_filter_keeps_the_attempts_intent_row(auditor_client, trail):
    response = auditor_client.get(AUDIT, {"outcome": "failed"})
    assert rows_of(response) == [trail["failed"]]
    assert len(csv_rows(auditor_client.get(EXPORT, {"outcome": "failed"}))) == 2


def test_the_outcome_filter_reads_each_attempts_latest_outcome(auditor_client, trail, alice_key, user):
    # Unknown at first, settled as succeeded later (Check now or reconcile_deletions): it is a success now.
    settled, _ = make_attempt(alice_key, user, outcome="unknown", vm_id=VM_A, vm_name="web-1")
    make_event(
        alice_key, user, kind="outcome", outcome="succeeded", correlation_id=settled.correlation_id,
        created_at=settled.created_at + timedelta(minutes=5), source="reconcile", vm_id=VM_A, vm_name="web-1",
    )  # fmt: skip
    assert str(settled.correlation_id) not in rows_of(auditor_client.get(AUDIT, {"outcome": "unknown"}))
    assert str(settled.correlation_id) in rows_of(auditor_client.get(AUDIT, {"outcome": "succeeded"}))


def test_attempt_filter_shows_one_attempt(auditor_client, trail):
    response = auditor_client.get(AUDIT, {"attempt": trail["ok"]})
    assert rows_of(response) == [trail["ok"]]


def test_filters_keep_their_values_in_the_form_and_the_pages(auditor_client, trail):
    body = auditor_client.get(AUDIT, {"actor": "alice", "from": "2025-04-01"}).content.decode()
    assert 'name="actor" class="audit-text" value="alice"' in body
    assert 'name="from" class="audit-choice" value="2025-04-01"' in body
    assert 'href="/audit/export.csv?actor=alice&amp;from=2025-04-01"' in body


@pytest.mark.parametrize(
    ("query", "note"),
    [
        ({"from": "yesterday"}, "The “from” date must be a date like 2025-04-16"),
        ({"to": "2025-02-30"}, "The “to” date must be a date like 2025-04-16"),
        ({"from": "20250410"}, "The “from” date must be a date like 2025-04-16"),
        ({"from": "2025-04-12", "to": "2025-04-10"}, "The “from” date is after the “to” date"),
        ({"outcome": "exploded"}, "Unknown outcome filter"),
        ({"attempt": "not-a-uuid"}, "The attempt filter is not a correlation id"),
        ({"actor": "al\x00ice"}, "The actor filter is not a usable value"),
        ({"vm": "x" * 500}, "The VM filter is not a usable value"),
        ({"account": "a\x01"}, "The account filter is not a usable value"),
    ],
)
def test_bad_filter_values_give_a_note_and_are_ignored(auditor_client, trail, query, note):
    response = auditor_client.get(AUDIT, query)
    assert response.status_code == 200
    assert note in response.content.decode()
    assert set(rows_of(response)) == set(trail.values())
    export = auditor_client.get(EXPORT, query)
    assert export.status_code == 200
    assert len(csv_rows(export)) == 5


def test_far_dates_and_bad_pages_do_not_break(auditor_client, trail):
    assert set(rows_of(auditor_client.get(AUDIT, {"to": "9999-12-31", "from": "0001-01-01"}))) == set(
        trail.values()
    )
    for page in ("abc", "-1", "999", "1e9", "\x00"):
        assert auditor_client.get(AUDIT, {"page": page}).status_code == 200


# --- one line per attempt ----------------------------------------------------------------------------


def line_of(body: str, correlation_id) -> str:
    """The HTML of the attempt line of one correlation id."""
    start = body.index(f'data-correlation-id="{correlation_id}"')
    return body[start : body.index("</tr>", start)]


def cells_of(line: str) -> list[str]:
    """The text of each cell of a line, tags removed and white space folded."""
    return [
        " ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in re.findall(r"<td[^>]*>(.*?)</td>", line)
    ]


def test_each_attempt_says_its_outcome_when_and_fluences_status(alice_client, user, alice_key):
    at = datetime(2025, 4, 10, 12, 0, tzinfo=UTC)

    def attempt(minute: int, outcome: str | None, *, status: int | None = None, message: str = ""):
        intent, _ = make_attempt(alice_key, user, outcome=None, at=at + timedelta(minutes=minute))
        if outcome:
            make_event(
                alice_key,
                user,
                kind="outcome",
                outcome=outcome,
                correlation_id=intent.correlation_id,
                created_at=intent.created_at + timedelta(seconds=2),
                upstream_status=status,
                message=message,
            )
        return intent

    with_status = attempt(0, "succeeded", status=204)
    no_status = attempt(1, "succeeded")
    failed = attempt(2, "failed", status=401, message="Fluence refused this API key (HTTP 401)")
    unknown = attempt(3, "unknown")
    pending = attempt(4, None)

    body = alice_client.get(AUDIT).content.decode()
    assert len(rows_of_body(body)) == 5
    # Asked, actor, action, account, VM, outcome (and when), upstream, message, request id, rows link.
    ok = cells_of(line_of(body, with_status.correlation_id))
    assert ok[0] == "2025-04-10 12:00:00 UTC" and ok[1] == "alice" and ok[2] == "VM deleted"
    assert ok[3] == "Production …tion"
    assert ok[4] == f"web-1 {VM_A}"
    assert ok[5] == "Succeeded 12:00:02" and ok[6] == "204"
    assert ok[8] == with_status.request_id
    assert cells_of(line_of(body, no_status.correlation_id))[5:7] == ["Succeeded 12:01:02", "accepted"]
    failed_cells = cells_of(line_of(body, failed.correlation_id))
    assert failed_cells[5:8] == ["Failed 12:02:02", "401", "Fluence refused this API key (HTTP 401)"]
    assert cells_of(line_of(body, unknown.correlation_id))[5:7] == ["Unknown 12:03:02", "no answer"]
    assert cells_of(line_of(body, pending.correlation_id))[5:7] == ["Pending", "pending"]


def rows_of_body(body: str) -> list[str]:
    return re.findall(DELETION_LINE, body)


def test_an_outcome_on_another_day_shows_its_date(alice_client, user, alice_key):
    at = datetime(2025, 4, 10, 23, 59, 59, tzinfo=UTC)
    intent, _ = make_attempt(alice_key, user, at=at)
    assert cells_of(line_of(alice_client.get(AUDIT).content.decode(), intent.correlation_id))[5] == (
        "Succeeded 2025-04-11 00:00:00 UTC"
    )


def test_a_reconciled_attempt_shows_its_latest_outcome(alice_client, user, alice_key):
    at = timezone.now() - timedelta(hours=1)
    intent, _ = make_attempt(alice_key, user, outcome="unknown", at=at)
    make_event(
        alice_key,
        user,
        kind="outcome",
        outcome="succeeded",
        correlation_id=intent.correlation_id,
        created_at=at + timedelta(minutes=10),
        source="reconcile",
        upstream_status=None,
        message="Fluence no longer lists this VM.",
    )
    body = alice_client.get(AUDIT).content.decode()
    cells = cells_of(line_of(body, intent.correlation_id))
    assert cells[5].startswith("Succeeded") and cells[5].endswith("by reconciliation")
    assert cells[6] == "accepted" and cells[7] == "Fluence no longer lists this VM."
    assert len(rows_of_body(body)) == 1


def test_the_rows_of_one_attempt_are_one_click_away(alice_client, user, alice_key, other_user, mallory_key):
    intent, outcome = make_attempt(alice_key, user, outcome="failed", message="Fluence is unavailable")
    other, _ = make_attempt(alice_key, user)
    body = alice_client.get(AUDIT).content.decode()
    link = f'href="/audit/?attempt={intent.correlation_id}"'
    assert link in line_of(body, intent.correlation_id)
    assert "audit-attempt-rows" not in body  # the rows table only for one attempt

    detail = alice_client.get(AUDIT, {"attempt": str(intent.correlation_id)}).content.decode()
    assert rows_of_body(detail) == [str(intent.correlation_id)]
    rows = detail[detail.index('id="audit-attempt-rows"') :]
    rows = rows[: rows.index("</table>")]
    assert re.findall(r'data-kind="(\w+)"', rows) == ["intent", "outcome"]  # oldest first
    assert intent.request_id in rows and outcome.request_id in rows and "192.0.2.10" in rows
    assert "Fluence is unavailable" in rows and str(other.correlation_id) not in detail
    # Somebody who may not see the attempt gets neither its line nor its rows.
    alice_client.force_login(other_user)
    hidden = alice_client.get(AUDIT, {"attempt": str(intent.correlation_id)}).content.decode()
    assert rows_of_body(hidden) == [] and "audit-attempt-rows" not in hidden


def test_the_attempt_view_through_htmx_is_the_table_with_its_rows(alice_client, user, alice_key):
    intent, _ = make_attempt(alice_key, user)
    body = alice_client.get(AUDIT, {"attempt": str(intent.correlation_id)}, **HX).content.decode()
    assert body.lstrip().startswith('<section id="audit-table"') and 'id="audit-attempt-rows"' in body


def test_paging_counts_attempts(alice_client, user, alice_key):
    start = timezone.now() - timedelta(days=1)
    intents = [make_attempt(alice_key, user, at=start + timedelta(minutes=i))[0] for i in range(105)]
    deletions = {"action": "vm_delete"}  # without the key fixture's "key added" line
    first = alice_client.get(AUDIT, deletions)
    body = first.content.decode()
    assert len(rows_of(first)) == 100 and rows_of(first)[0] == str(intents[-1].correlation_id)
    assert '<strong id="audit-count">105</strong> events' in body
    assert "Page 1 of 2 (events 1\N{EN DASH}100)" in body
    second = rows_of(alice_client.get(AUDIT, {**deletions, "page": "2"}))
    assert second == [str(intent.correlation_id) for intent in reversed(intents[:5])]
    # Filters page on attempts too.
    filtered = alice_client.get(AUDIT, {**deletions, "outcome": "succeeded", "page": "2"})
    assert len(rows_of(filtered)) == 5
    assert len(csv_rows(alice_client.get(EXPORT))) == 210


def test_the_page_asks_the_database_the_same_whatever_the_number_of_attempts(
    alice_client, user, alice_key, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_attempt(alice_key, user)
    with CaptureQueriesContext(connection) as few:
        alice_client.get(AUDIT)
    for _ in range(30):
        make_attempt(alice_key, user)
        make_attempt(alice_key, user, outcome=None)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = alice_client.get(AUDIT)
    assert len(rows_of(response)) == 61


def test_the_actor_filters_placeholder_fits(alice_client):
    body = alice_client.get(AUDIT).content.decode()
    assert 'placeholder="Actor"' in body and "Actor (usernam" not in body.split('placeholder="')[1][:20]


def test_the_export_is_unchanged_every_row_with_the_same_columns(alice_client, user, alice_key):
    first, _ = make_attempt(alice_key, user)
    second, _ = make_attempt(alice_key, user, outcome=None)
    body = b"".join(alice_client.get(EXPORT).streaming_content).decode()
    assert body.splitlines()[0] == (
        "created_at_utc,correlation_id,kind,outcome,source,actor_username,actor_id,client_ip,user_agent,"
        "request_id,key_id,key_label,key_fingerprint,key_owner_username,base_url,vm_id,vm_name,"
        "upstream_status,message,vm_snapshot,action,details"
    )
    rows = csv_rows_of(body.encode())
    expected = [
        (first.correlation_id, "intent"),
        (first.correlation_id, "outcome"),
        (second.correlation_id, "intent"),
    ]
    assert sorted((row["correlation_id"], row["kind"]) for row in rows) == sorted(
        (str(correlation_id), kind) for correlation_id, kind in expected
    )


# --- CSV export -------------------------------------------------------------------------------------


def test_export_has_a_header_and_every_column(alice_client, user, alice_key):
    intent, _outcome = make_attempt(
        alice_key, user, outcome="failed", message="Fluence is unavailable (HTTP 503)."
    )
    response = alice_client.get(EXPORT)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert re.fullmatch(r'attachment; filename="audit-\d{8}-\d{6}\.csv"', response["Content-Disposition"])
    rows = csv_rows(response)
    assert [row["kind"] for row in rows] == ["outcome", "intent"]
    row = rows[1]
    assert row["correlation_id"] == str(intent.correlation_id)
    assert row["created_at_utc"] == intent.created_at.astimezone(UTC).isoformat()
    assert row["actor_username"] == "alice" and row["actor_id"] == str(user.pk)
    assert row["client_ip"] == "192.0.2.10" and row["user_agent"] == "Mozilla/5.0 test"
    assert row["request_id"] == intent.request_id
    assert row["key_id"] == str(alice_key.pk) and row["key_label"] == "Production"
    assert row["key_fingerprint"] == "tion" and row["key_owner_username"] == "alice"
    assert row["vm_id"] == VM_A and row["vm_name"] == "web-1"
    assert row["vm_snapshot"] == json.dumps(intent.vm_snapshot, separators=(",", ":"), sort_keys=True)
    assert " " not in row["vm_snapshot"]
    assert rows[0]["outcome"] == "failed" and rows[0]["message"] == "Fluence is unavailable (HTTP 503)."
    assert ALICE_KEY not in b"".join(alice_client.get(EXPORT).streaming_content).decode()


def test_export_holds_only_the_filtered_rows(auditor_client, trail):
    rows = csv_rows(auditor_client.get(EXPORT, {"outcome": "failed"}))
    assert {row["correlation_id"] for row in rows} == {trail["failed"]}
    assert len(rows) == 2


def test_export_escapes_formulas(alice_client, user, alice_key):
    make_event(
        alice_key,
        user,
        vm_name='=HYPERLINK("http://evil")',
        message="+1 call me",
        user_agent="@SUM(A1)",
        request_id="-2+3",
        key_label="\tlabel",
        actor_username="\rroot",
    )
    row = csv_rows(alice_client.get(EXPORT))[0]
    assert row["vm_name"] == '\'=HYPERLINK("http://evil")'
    assert row["message"] == "'+1 call me"
    assert row["user_agent"] == "'@SUM(A1)"
    assert row["request_id"] == "'-2+3"
    assert row["key_label"] == "'\tlabel"
    assert row["actor_username"] == "'\rroot"
    assert row["vm_id"] == VM_A  # ordinary values untouched


# --- a VM's history ---------------------------------------------------------------------------------


def test_events_for_vm_is_per_key_case_insensitive_and_obeys_access(user, other_user, alice_key, mallory_key):
    intent, outcome = make_attempt(alice_key, user, vm_id=VM_A)
    make_attempt(alice_key, user, vm_id=VM_B)
    make_attempt(mallory_key, other_user, vm_id=VM_A)  # same VM id under another key
    history = events_for_vm(user=user, key_id=alice_key.pk, vm_id=VM_A.lower())
    assert history == [outcome, intent]
    assert (
        events_for_vm(user=user, key_id=str(alice_key.pk), vm_id=VM_A.upper().replace("0X", "0x")) == history
    )
    assert events_for_vm(user=other_user, key_id=alice_key.pk, vm_id=VM_A) == []


def test_vm_history_include_renders_the_events_or_nothing(user, alice_key):
    intent, outcome = make_attempt(alice_key, user, outcome="failed", message="Fluence does not know this VM")
    html = render_to_string("vms/_vm_history.html", {"events": [outcome, intent]})
    assert "History" in html
    assert "alice asked Fluence to delete it" in html
    assert "Failed" in html and "Fluence does not know this VM" in html
    assert f"/audit/?vm={VM_A}" in html
    assert render_to_string("vms/_vm_history.html", {"events": []}).strip() == ""


# --- reconciliation selector ------------------------------------------------------------------------


def test_attempts_needing_reconciliation(user, alice_key):
    old = timezone.now() - timedelta(minutes=30)
    no_outcome, _ = make_attempt(alice_key, user, outcome=None, at=old)
    unknown, _ = make_attempt(alice_key, user, outcome="unknown", at=old - timedelta(minutes=1))
    make_attempt(alice_key, user, outcome="succeeded", at=old)
    make_attempt(alice_key, user, outcome="failed", at=old)
    make_attempt(alice_key, user, outcome=None)  # too recent
    resolved, _ = make_attempt(alice_key, user, outcome="unknown", at=old)
    make_event(
        alice_key,
        user,
        kind="outcome",
        outcome="succeeded",
        correlation_id=resolved.correlation_id,
        created_at=old + timedelta(minutes=5),
        source="reconcile",
    )
    assert attempts_needing_reconciliation(older_than=timedelta(minutes=5)) == [unknown, no_outcome]


# --- admin ------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client_with_trail(admin_client, user, alice_key):
    intent, _ = make_attempt(alice_key, user)
    return admin_client, intent


def test_admin_lists_and_shows_rows_read_only(admin_client_with_trail):
    admin_client, intent = admin_client_with_trail
    listing = admin_client.get(reverse("admin:vms_deletionevent_changelist"))
    assert listing.status_code == 200
    body = listing.content.decode()
    assert VM_A in body
    assert 'name="action"' not in body  # no bulk actions, so no "delete selected"
    assert reverse("admin:vms_deletionevent_add") not in body
    page = admin_client.get(reverse("admin:vms_deletionevent_change", args=[intent.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert intent.request_id in html
    assert 'name="_save"' not in html and 'name="message"' not in html
    assert reverse("admin:vms_deletionevent_delete", args=[intent.pk]) not in html


def test_admin_refuses_add_change_and_delete(admin_client_with_trail):
    admin_client, intent = admin_client_with_trail
    change = reverse("admin:vms_deletionevent_change", args=[intent.pk])
    assert admin_client.post(change, {"message": "rewritten"}).status_code == 403
    assert admin_client.get(reverse("admin:vms_deletionevent_add")).status_code == 403
    delete = reverse("admin:vms_deletionevent_delete", args=[intent.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:vms_deletionevent_changelist")
    admin_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [intent.pk], "post": "yes"}
    )
    intent.refresh_from_db()
    assert intent.message == ""
    assert deletion_rows().count() == 2


# --- what a deletion records: the person's address, and a bounded copy of Fluence's VM ------------------

BIG = 20 * 1024 * 1024
SMALL_ROW_BYTES = 32 * 1024  # a bounded snapshot is under this (a 16 KB budget, plus the fields read)
META = services.RequestMeta(
    actor_username="alice", actor_id="1", client_ip="192.0.2.10", user_agent="pytest", request_id="r1"
)


@pytest.mark.parametrize(
    ("hops", "remote_addr", "forwarded", "recorded"),
    [
        (1, "10.0.0.1", "203.0.113.5", "203.0.113.5"),
        (2, "10.0.0.2", "203.0.113.5, 10.0.0.1", "203.0.113.5"),
        # Anything left of what our proxies appended is the client's to write: ignored.
        (1, "10.0.0.1", "198.51.100.66, 203.0.113.5", "203.0.113.5"),
        (2, "10.0.0.2", "198.51.100.66, 203.0.113.5, 10.0.0.1", "203.0.113.5"),
        (0, "10.0.0.1", "203.0.113.5", "10.0.0.1"),  # no proxy trusted: the header is not read
        (1, "10.0.0.1", "not-an-address", None),  # nothing usable: no address rather than a wrong one
    ],
)
def test_a_deletion_behind_proxies_records_the_persons_address(
    alice_client, sandbox, api_key, settings, hops, remote_addr, forwarded, recorded
):
    settings.TRUSTED_PROXY_HOPS = hops
    vm = next(vm for vm in sandbox.state.vms_for(OPS_KEY) if vm["status"] == "ACTIVE")
    response = alice_client.post(
        reverse("vms:delete", args=[api_key.pk, vm["id"]]),
        {"confirm": vm["vmName"]},
        REMOTE_ADDR=remote_addr,
        HTTP_X_FORWARDED_FOR=forwarded,
    )
    assert response.status_code == 302
    rows = list(deletion_rows().values_list("kind", "client_ip"))
    assert sorted(rows) == [("intent", recorded), ("outcome", recorded)]
    exported = csv_rows(alice_client.get(EXPORT))
    assert [row["client_ip"] for row in exported] == [recorded or ""] * 2


def _delete_with_fluence_mocked(api_key, raw: dict) -> list[DeletionEvent]:
    """Delete the VM Fluence described as `raw` (the DELETE answered 200); its audit rows."""
    with responses.RequestsMock() as mock:
        mock.delete(f"{api_key.base_url}/vms/v3", json={})
        result = services.vm_delete(user=api_key.owner, api_key=api_key, vm=parse_vm(raw), meta=META)
    assert result.succeeded
    return list(deletion_rows().order_by("pk"))


def _json_bytes(value) -> int:
    return len(json.dumps(value).encode())


def test_a_normal_vm_is_recorded_whole(alice_key):
    rows = _delete_with_fluence_mocked(alice_key, copy.deepcopy(EXAMPLE_VM))
    assert [row.vm_snapshot for row in rows] == [EXAMPLE_VM, EXAMPLE_VM]


@pytest.mark.parametrize("generation", ["baseline", "a", "b"])
def test_the_sandboxs_vms_of_every_generation_are_recorded_whole(alice_key, generation):
    state = SandboxState()
    key = {"baseline": "sbx_audit_whole", "a": "sbx_a_audit_whole", "b": "sbx_b_audit_whole"}[generation]
    state.configure_account(key, vm_count=60)
    for raw in state.vms_for(key):
        vm = parse_vm(raw, generation=generation)
        assert services.audit_snapshot(alice_key, vm, META)["vm_snapshot"] == raw


def test_a_vm_with_a_huge_unknown_field_is_recorded_without_it(alice_client, alice_key):
    raw = {**copy.deepcopy(EXAMPLE_VM), "notes": "short", "blob": "x" * BIG, "after": [1, 2, 3]}
    rows = _delete_with_fluence_mocked(alice_key, raw)
    assert [row.kind for row in rows] == ["intent", "outcome"]
    for row in rows:
        snapshot = row.vm_snapshot
        assert _json_bytes(snapshot) < SMALL_ROW_BYTES
        cut = snapshot.pop("_cut")
        assert cut["dropped_fields"] == ["blob"] and cut["dropped_count"] == 1
        assert (
            cut["truncated_fields"] == [] and cut["limit_bytes"] == services.SNAPSHOT_OTHER_FIELDS_LIMIT_BYTES
        )
        # Every field the portal reads, and the small unknown ones, are kept as Fluence sent them.
        assert snapshot == {**EXAMPLE_VM, "notes": "short", "after": [1, 2, 3]}
    # The export carries the rows as stored: two small rows, not two 20 MB ones.
    body = b"".join(alice_client.get(EXPORT).streaming_content)
    assert len(body) < 2 * SMALL_ROW_BYTES
    assert [json.loads(row["vm_snapshot"])["_cut"]["dropped_fields"] for row in csv_rows_of(body)] == [
        ["blob"],
        ["blob"],
    ]


def test_a_vm_with_a_huge_known_text_is_recorded_cut_short(alice_key):
    raw = {**copy.deepcopy(EXAMPLE_VM), "vmName": "n" * BIG, "osImage": "https://images.example/" + "o" * BIG}
    rows = _delete_with_fluence_mocked(alice_key, raw)
    for row in rows:
        assert _json_bytes(row.vm_snapshot) < SMALL_ROW_BYTES
        assert row.vm_snapshot["vmName"] == "n" * services.SNAPSHOT_TEXT_LIMIT
        assert row.vm_snapshot["osImage"].startswith("https://images.example/ooo")
        assert row.vm_snapshot["_cut"]["truncated_fields"] == ["vmName", "osImage"]
        assert row.vm_snapshot["_cut"]["dropped_fields"] == []
        assert row.vm_snapshot["resources"] == EXAMPLE_VM["resources"]
        assert len(row.vm_name) == 200


def test_a_vm_with_a_huge_known_object_or_countless_fields_is_recorded_bounded(alice_key):
    raw = {
        **copy.deepcopy(EXAMPLE_VM),
        "datacenter": {**EXAMPLE_VM["datacenter"], "photos": ["p" * 1024] * (BIG // 1024)},
        **{f"extra{number}": number for number in range(100_000)},
    }
    rows = _delete_with_fluence_mocked(alice_key, raw)
    for row in rows:
        snapshot = row.vm_snapshot
        assert _json_bytes(snapshot) < SMALL_ROW_BYTES
        cut = snapshot["_cut"]
        assert cut["dropped_fields"][0] == "datacenter" and "datacenter" not in snapshot
        assert cut["dropped_count"] == 1 + 100_000 - sum(name.startswith("extra") for name in snapshot)
        assert len(cut["dropped_fields"]) == services.SNAPSHOT_CUT_NAMES_LIMIT
        assert snapshot["extra0"] == 0 and snapshot["pricePerEpoch"] == EXAMPLE_VM["pricePerEpoch"]


def test_a_field_of_fluences_named_like_the_cut_entry_is_never_taken_for_it(alice_key):
    raw = {**copy.deepcopy(EXAMPLE_VM), "_cut": {"dropped_fields": []}}
    rows = _delete_with_fluence_mocked(alice_key, raw)
    for row in rows:
        assert row.vm_snapshot["_cut"]["dropped_fields"] == ["_cut"]
        assert {name: value for name, value in row.vm_snapshot.items() if name != "_cut"} == EXAMPLE_VM
