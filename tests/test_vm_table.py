"""The VM table (vms/vm_table.py) without a browser or a request: the query string read safely, filters,
sort and paging, the summary (counts, banner, totals) over the rows shown, each account's freshness, the
columns a person chooses, and the row HTML built in Python, parsed and pinned cell by cell."""

import copy
import dataclasses
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import msgspec
import pytest
from django.http import QueryDict
from django.urls import reverse

from vms.accounts import Account, AccountResult, VmListing, VmRow
from vms.fluence.models import parse_vm
from vms.sandbox import EXAMPLE_VM
from vms.vm_table import (
    DEFAULT_COLUMNS,
    OPTIONAL_COLUMNS,
    PAGE_SIZE,
    VmQuery,
    account_freshness,
    chosen_columns,
    render_rows,
    row_views,
    spend_per_currency,
    table_page,
    vm_table,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
OWN = Account(
    key_id=7, label="Prod <&>", last_four="ab12", owner_username="alice", base_url="x", role="owner"
)
SHARED = Account(key_id=9, label="Team", last_four="cd34", owner_username="bob", base_url="x", role="viewer")


def _vm(index: int = 0, **changes):
    raw = copy.deepcopy(EXAMPLE_VM)
    raw["id"] = f"0x{index:040x}"
    raw.update(changes)
    return parse_vm(raw)


class _Table(HTMLParser):
    """Rows as lists of cells; each cell: its text, and the attributes of the tags inside it."""

    def __init__(self, html: str):
        super().__init__()
        self.rows: list[dict] = []
        self._cell = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self.rows.append({"attrs": attrs, "cells": []})
        elif tag == "td":
            self._cell = {"text": "", "tags": []}
            self.rows[-1]["cells"].append(self._cell)
        elif self._cell is not None:
            self._cell["tags"].append((tag, attrs))

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


def _rendered(rows, columns=OPTIONAL_COLUMNS, now=NOW, stale=None):
    views = row_views(tuple(rows), now=now, url_prefix="/vms/", stale=stale)
    return _Table(str(render_rows(views, columns))).rows


# The cells of a row with every optional column chosen, counted from 0.
SELECT, NAME, STATUS, ACCOUNT, LOCATION, COST, VCPU, RAM, STORAGE, BILLING, IP, AGE, ACTIONS = range(13)


# --- the query string --------------------------------------------------------------------------------------


def test_a_hostile_query_string_is_read_as_defaults_with_notes():
    query = VmQuery.from_querydict(
        QueryDict("q=" + "x" * 500 + "&status=<b>&account=1e3&country=ÄÖ&sort=__class__&page=-1")
    )
    assert (query.search, query.status, query.account, query.country) == ("x" * 100, "", None, "")
    assert (query.sort, query.descending, query.page) == ("name", False, 1)
    assert len(query.notes) == 6


def test_unicode_digits_are_not_numbers_here():
    query = VmQuery.from_querydict(QueryDict("account=%C2%B9&page=%C2%B2"))  # "¹" and "²": isdigit() is True
    assert (query.account, query.page, len(query.notes)) == (None, 1, 2)


def test_query_urls_leave_defaults_out_and_sorting_toggles():
    query = VmQuery.from_querydict(QueryDict("q=web&sort=price&page=3"))
    assert query.url(page=1) == "?q=web&sort=price"
    assert query.sort_url("price") == "?q=web&sort=-price"
    assert query.sort_url("name") == "?q=web"


# --- filters, sort, paging, totals --------------------------------------------------------------------------


def test_search_filters_sorts_and_pages_over_every_account():
    rows = [VmRow(vm=_vm(i, vmName=f"web-{i:03d}"), account=OWN) for i in range(PAGE_SIZE + 5)]
    rows.append(VmRow(vm=_vm(999, vmName="db-1"), account=SHARED))
    page = table_page(tuple(rows), VmQuery(search="web", sort="name", descending=True, page=2))
    assert (page.matching, page.total, page.pages, page.page) == (PAGE_SIZE + 5, PAGE_SIZE + 6, 2, 2)
    assert [row.vm.name for row in page.rows] == [f"web-{i:03d}" for i in range(4, -1, -1)]
    only_shared = table_page(tuple(rows), VmQuery(account=SHARED.key_id))
    assert [row.vm.name for row in only_shared.rows] == ["db-1"]


def test_totals_are_per_currency_and_leave_ended_vms_out():
    running = VmRow(vm=_vm(1), account=OWN)
    ended = VmRow(vm=_vm(2, status="Terminated"), account=OWN)
    (spend,) = spend_per_currency([running, running, ended])
    assert spend.currency == running.vm.currency
    assert spend.per_day == 2 * running.vm.cost_per_day


def test_the_table_entry_point_gives_the_page_everything_it_shows():
    listing = VmListing(accounts=(), rows=(VmRow(vm=_vm(1), account=OWN),))
    context = vm_table(listing, VmQuery(), now=NOW, list_url="/")
    assert context["table"].matching == 1 and len(context["rows"]) == 1
    assert context["prev_url"] is None and context["next_url"] is None
    assert context["rows_html"].count("<tr") == 1
    assert context["freshness"] == ()


# --- the columns ------------------------------------------------------------------------------------------


def test_the_default_columns_are_the_fixed_ones_then_vcpu_ram_and_next_billing():
    context = vm_table(
        VmListing(accounts=(), rows=(VmRow(vm=_vm(1), account=OWN),)), VmQuery(), now=NOW, list_url="/"
    )
    headings = [column.heading for column in context["columns"]]
    assert headings == [
        "Name",
        "Status",
        "Account",
        "Location",
        "Cost / day · month",
        "vCPU",
        "RAM",
        "Next billing",
    ]
    (row,) = _Table(str(context["rows_html"])).rows
    texts = [cell["text"] for cell in row["cells"]]
    assert texts[1:9] == [
        "vm-name",
        "Active",
        "Prod <&>",
        "Paris, France tier 4",
        "0.30 USDC9.07/mo · epoch",
        "2 vCPU",
        "4 GiB",
        "out of date",
    ]
    assert len(texts) == 10  # and the actions
    choices = {name: chosen for name, _, chosen in context["column_choices"]}
    assert context["numeric_columns"] == 2  # vCPU and RAM, right after the fixed columns
    assert choices == {
        "next_billing": True,
        "vcpu": True,
        "ram": True,
        "storage": False,
        "ip": False,
        "age": False,
    }


def test_chosen_columns_follow_the_table_order_once_each_and_ignore_anything_else():
    assert chosen_columns(["age", "ip", "age", "name", "<script>", 7, "storage"]) == ("storage", "ip", "age")
    assert chosen_columns([]) == ()
    assert DEFAULT_COLUMNS == ("vcpu", "ram", "next_billing")


def test_only_the_chosen_columns_are_rendered_after_the_fixed_ones():
    listing = VmListing(accounts=(), rows=(VmRow(vm=_vm(1), account=OWN),))
    context = vm_table(listing, VmQuery(), now=NOW, list_url="/", columns=("ip", "age"))
    assert [column.name for column in context["columns"]][5:] == ["ip", "age"]
    (row,) = _Table(str(context["rows_html"])).rows
    texts = [cell["text"] for cell in row["cells"]]
    assert texts[6:8] == ["154.42.3.159", "60 d"] and len(texts) == 9


# --- the row HTML ------------------------------------------------------------------------------------------


def test_every_column_of_an_owned_vm():
    vm = _vm(1, nextBillingAt="2025-06-01T15:00:00Z")
    (row,) = _rendered([VmRow(vm=vm, account=OWN)])
    cells = row["cells"]
    assert row["attrs"]["data-vm-id"] == vm.id
    assert len(cells) == 13
    checkbox = cells[SELECT]["tags"][0]
    assert checkbox == (
        "input",
        {"type": "checkbox", "name": "vm", "value": f"7:{vm.id}", "aria-label": vm.name},
    )
    assert cells[NAME]["tags"][0] == ("a", {"href": f"/vms/7/{vm.id}/"})  # a short name: no title
    assert cells[NAME]["text"] == vm.name
    assert cells[STATUS]["text"] == vm.status.label
    assert cells[ACCOUNT]["text"] == "Prod <&>"  # escaped in the HTML, read back as text
    assert cells[LOCATION]["text"] == "Paris, France tier 4"
    assert cells[COST]["text"].startswith("0.30 USDC") and "/mo" in cells[COST]["text"]
    assert cells[BILLING]["tags"][0] == ("span", {"title": "2025-06-01 15:00:00 UTC"})
    assert cells[BILLING]["text"] == "in 3 h"
    assert cells[VCPU]["tags"] == [] and "class" not in str(cells[VCPU])  # aligned by the table's class
    assert [cells[i]["text"] for i in (VCPU, RAM, STORAGE, IP, AGE)] == [
        "2 vCPU",
        "4 GiB",
        "25 GiB",
        vm.public_ip,
        "60 d",
    ]
    assert cells[ACTIONS]["tags"][0][1]["href"] == f"/vms/7/{vm.id}/delete/"


def test_row_links_match_the_urlconf():
    vm = _vm(1)
    (row,) = _rendered([VmRow(vm=vm, account=OWN)])
    assert row["cells"][NAME]["tags"][0][1]["href"] == reverse("vms:detail", args=[7, vm.id])
    assert row["cells"][ACTIONS]["tags"][0][1]["href"] == reverse("vms:delete", args=[7, vm.id])


def test_a_viewer_gets_no_checkbox_and_no_delete_link_and_sees_the_owner():
    (row,) = _rendered([VmRow(vm=_vm(1), account=SHARED)])
    assert row["cells"][SELECT]["tags"] == [] and row["cells"][ACTIONS]["tags"] == []
    assert "· bob" in row["cells"][ACCOUNT]["text"]


def test_a_vm_being_deleted_shows_the_badge_and_cannot_be_selected_again():
    (row,) = _rendered([VmRow(vm=_vm(1), account=OWN, deleting=True)])
    assert row["attrs"]["class"] == "is-deleting"
    assert row["cells"][STATUS]["text"] == "Deleting…"
    assert row["cells"][STATUS]["tags"][0] == ("span", {"class": "badge badge-deleting"})
    assert row["cells"][SELECT]["tags"] == []


def test_a_deletion_of_unknown_outcome_shows_in_the_row_with_check_now_for_those_who_may_delete():
    class Attempt:
        created_at = datetime(2025, 6, 1, 11, 30, tzinfo=UTC)

    vm = _vm(1)
    unknown = {(OWN.key_id, vm.key): Attempt(), (SHARED.key_id, vm.key): Attempt()}
    rows = [VmRow(vm=vm, account=OWN), VmRow(vm=vm, account=SHARED), VmRow(vm=_vm(2), account=OWN)]
    views = row_views(tuple(rows), now=NOW, url_prefix="/vms/", unknown_deletions=unknown)
    own, shared, other = _Table(str(render_rows(views))).rows
    assert "Outcome unknown" in own["cells"][STATUS]["text"] and "Check now" in own["cells"][STATUS]["text"]
    link = dict(own["cells"][STATUS]["tags"])["a"]
    assert link["href"] == f"/vms/7/{vm.id}/#deletion-unknown"
    assert "2025-06-01 11:30:00 UTC" in link["title"]
    button = dict(own["cells"][STATUS]["tags"])["button"]
    assert button["hx-post"] == f"/vms/7/{vm.id}/deletion-check/?in=row"
    assert button["hx-params"] == "none"  # not the ticked rows of the bulk form around the table
    assert "Outcome unknown" in shared["cells"][STATUS]["text"]
    assert "Check now" not in shared["cells"][STATUS]["text"]  # a viewer sees it, and may not check
    assert "Outcome unknown" not in other["cells"][STATUS]["text"]


def test_hostile_names_are_escaped_in_text_and_attributes():
    name = '"><script>alert(1)</script>'
    label = '"><img src=x onerror=alert(1)> a very long label'
    account = dataclasses.replace(OWN, label=label)
    html = str(
        render_rows(row_views((VmRow(vm=_vm(1, vmName=name), account=account),), now=NOW, url_prefix="/"))
    )
    assert "<script>" not in html and "<img" not in html
    (row,) = _Table(html).rows
    assert row["cells"][NAME]["text"] == name
    assert row["cells"][NAME]["tags"][0][1]["title"] == name  # long enough to be cut: its title
    assert row["cells"][SELECT]["tags"][0][1]["aria-label"] == name
    assert row["cells"][ACCOUNT]["tags"][0] == ("span", {"title": label})


def test_long_names_and_labels_carry_their_whole_text_as_a_title_and_short_ones_none():
    long_name = "ml-inference-production-eu-west-replica-01"
    long_label = "Production EU (shared with the data team)"
    rows = [
        VmRow(vm=_vm(1, vmName=long_name), account=dataclasses.replace(OWN, label=long_label)),
        VmRow(vm=_vm(2, vmName="web-1"), account=dataclasses.replace(OWN, label="Prod")),
        VmRow(vm=_vm(3, vmName="db-1"), account=dataclasses.replace(SHARED, label="Team data platform")),
    ]
    long, short, shared = _rendered(rows)
    assert long["cells"][NAME]["tags"][0][1]["title"] == long_name
    assert long["cells"][ACCOUNT]["tags"][0] == ("span", {"title": long_label})
    assert "title" not in short["cells"][NAME]["tags"][0][1]
    assert short["cells"][ACCOUNT]["tags"] == []
    assert shared["cells"][ACCOUNT]["tags"][0] == ("span", {"title": "Team data platform · bob"})


def test_an_unreadable_field_says_so_with_its_reason():
    (row,) = _rendered([VmRow(vm=_vm(1, pricePerEpoch="lots"), account=OWN)])
    cost = row["cells"][COST]
    assert cost["text"] == "unreadable"
    assert cost["tags"][0][0] == "span" and "pricePerEpoch" in cost["tags"][0][1]["title"]


# --- contradictions in Fluence's billing data, in the billing cell ------------------------------------------


def test_a_running_vm_with_a_long_past_next_billing_reads_out_of_date_not_an_age():
    vm = _vm(1)  # the example VM: nextBillingAt 2025-04-16, Active; NOW is 2025-06-01
    (row,) = _rendered([VmRow(vm=vm, account=OWN)])
    billing = row["cells"][BILLING]
    assert billing["text"] == "out of date"
    assert billing["tags"][0] == (
        "span",
        {"class": "doubt", "title": "billing data from Fluence is out of date (next billing 2025-04-16)"},
    )


def test_a_vm_that_spent_money_without_a_next_billing_says_so():
    vm = _vm(1, status="Launching", totalSpent="590000")
    vm = msgspec.structs.replace(vm, next_billing_at_sent=None)
    (row,) = _rendered([VmRow(vm=vm, account=OWN)])
    billing = row["cells"][BILLING]
    assert billing["text"] == "none reported"
    assert (
        billing["tags"][0][1]["title"] == "this VM has spent 0.59 USDC, but Fluence reports no next billing"
    )


def test_an_ended_vm_shows_no_billing_time():
    (row,) = _rendered([VmRow(vm=_vm(1, status="Terminated"), account=OWN)])
    assert row["cells"][BILLING]["text"] == "—"


# --- one summary over the rows shown ------------------------------------------------------------------------


def _mixed_rows():
    """Two accounts; statuses of every kind; one VM being deleted."""
    return (
        VmRow(vm=_vm(1, vmName="web-1"), account=OWN),
        VmRow(vm=_vm(2, vmName="web-2"), account=OWN, deleting=True),  # Active, but going away
        VmRow(vm=_vm(3, vmName="web-3", status="SmallBalance"), account=OWN),
        VmRow(vm=_vm(4, vmName="db-1", status="InsufficientFunds"), account=SHARED),
        VmRow(vm=_vm(5, vmName="db-2", status="Terminated"), account=SHARED),  # holds a reserve
        VmRow(vm=_vm(6, vmName="web-4", status="Launching"), account=OWN),
        VmRow(vm=_vm(7, vmName="db-3", status="Terminated"), account=SHARED, deleting=True),
    )


def _counts(page) -> dict[str, int]:
    return {count.css_class: count.count for count in page.status_counts}


def test_each_row_counts_in_one_state_and_deleting_counts_on_its_own():
    page = table_page(_mixed_rows(), VmQuery(), now=NOW)
    assert _counts(page) == {"ok": 1, "transitional": 1, "attention": 2, "deleting": 2, "ended": 1}
    assert sum(_counts(page).values()) == page.matching == 7
    labels = {count.css_class: count.label for count in page.status_counts}
    assert labels["deleting"] == "Deleting" and labels["ok"] == "Running"


def test_the_banner_counts_exactly_the_needs_attention_chip():
    page = table_page(_mixed_rows(), VmQuery(), now=NOW)
    assert [item.row.vm.name for item in page.attention] == ["db-1", "web-3"]
    assert len(page.attention) == _counts(page)["attention"]
    # An ended VM keeping its reserve is named apart (it counts as Ended); one being deleted is neither.
    assert [row.vm.name for row in page.holding_reserve] == ["db-2"]


def test_banner_chips_and_totals_follow_the_search_and_filters():
    rows = _mixed_rows()
    web = table_page(rows, VmQuery(search="web"), now=NOW)
    assert (web.matching, web.total) == (4, 7)
    assert _counts(web) == {"ok": 1, "transitional": 1, "attention": 1, "deleting": 1}
    assert [item.row.vm.name for item in web.attention] == ["web-3"] and web.holding_reserve == ()
    shared = table_page(rows, VmQuery(account=SHARED.key_id), now=NOW)
    assert _counts(shared) == {"attention": 1, "deleting": 1, "ended": 1}
    (spend,) = shared.spend  # db-1 only: the ended one and the one being deleted are billed no more
    assert spend.per_day == rows[3].vm.cost_per_day
    active = table_page(rows, VmQuery(status="active"), now=NOW)
    assert _counts(active) == {"ok": 1, "deleting": 1}


def test_totals_leave_out_vms_being_deleted():
    rows = (VmRow(vm=_vm(1), account=OWN), VmRow(vm=_vm(2), account=OWN, deleting=True))
    (spend,) = spend_per_currency(rows)
    assert spend.per_day == rows[0].vm.cost_per_day


def test_a_small_balance_names_its_next_billing_only_while_it_is_ahead():
    ahead = _vm(1, status="SmallBalance", nextBillingAt="2025-06-01T18:00:00Z")
    behind = _vm(2, status="SmallBalance")  # nextBillingAt 2025-04-16, long past
    page = table_page((VmRow(vm=ahead, account=OWN), VmRow(vm=behind, account=OWN)), VmQuery(), now=NOW)
    sentences = {item.row.vm.id: item.sentence for item in page.attention}
    assert sentences[ahead.id].endswith("top up the account before 2025-06-01 18:00:00 UTC.")
    assert sentences[behind.id].endswith("top up the account before the next billing.")


# --- how fresh each account's data is ----------------------------------------------------------------------


def _result(account, *, fetched_at, problem=None, vms=()):
    return AccountResult(account=account, vms=vms, fetched_at=fetched_at, problem=problem, problem_kind=None)


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (timedelta(seconds=0), "just now"),
        (timedelta(seconds=4), "just now"),
        (timedelta(seconds=5), "5 s ago"),
        (timedelta(seconds=59), "59 s ago"),
        (timedelta(minutes=3, seconds=10), "3 min ago"),
        (timedelta(hours=2), "2 h ago"),
    ],
)
def test_updated_is_just_now_only_when_it_is(age, text):
    (fresh,) = account_freshness(VmListing(accounts=(_result(OWN, fetched_at=NOW - age),), rows=()), NOW)
    assert fresh.age == text and not fresh.stale and fresh.marker is None


def test_a_failed_refresh_is_worded_as_a_read_with_the_age_of_the_data_shown():
    problem = (
        "Fluence could not be reached: the connection failed or was dropped. "
        "The portal tries again at the next refresh."
    )
    failed = _result(OWN, fetched_at=NOW - timedelta(minutes=3), problem=problem)
    never = _result(
        SHARED, fetched_at=None, problem="This key points at x, which the administrator no longer allows."
    )
    stale, missing = account_freshness(VmListing(accounts=(failed, never), rows=()), NOW)
    assert stale.stale and stale.age == "3 min ago"
    assert stale.problem_sentence == (
        "could not load this account's VMs: Fluence could not be reached: the connection failed or was "
        "dropped. The portal tries again at the next refresh; showing data from 3 min ago "
        "(2025-06-01 11:57:00 UTC)."
    )
    assert not missing.stale and not missing.loaded
    assert missing.problem_sentence == (
        "could not load this account's VMs: this key points at x, which the administrator no longer "
        "allows; no earlier data to show."
    )


def test_rows_of_an_account_showing_older_data_carry_a_marker_and_the_others_none():
    failed = _result(OWN, fetched_at=NOW - timedelta(minutes=3), problem="Fluence is unavailable (HTTP 503).")
    fine = _result(SHARED, fetched_at=NOW - timedelta(seconds=20))
    rows = (VmRow(vm=_vm(1), account=OWN), VmRow(vm=_vm(2), account=SHARED))
    context = vm_table(VmListing(accounts=(failed, fine), rows=rows), VmQuery(), now=NOW, list_url="/")
    old, fresh = _Table(str(context["rows_html"])).rows
    marker = old["cells"][ACCOUNT]["tags"][-1]
    assert marker == (
        "small",
        {"class": "stale", "title": "Fluence did not answer; this is the data of 2025-06-01 11:57:00 UTC"},
    )
    assert old["cells"][ACCOUNT]["text"] == "Prod <&> old data · 3 min"
    assert "stale" not in str(fresh["cells"][ACCOUNT]) and "old data" not in fresh["cells"][ACCOUNT]["text"]
    assert [item.age for item in context["freshness"]] == ["3 min ago", "20 s ago"]
