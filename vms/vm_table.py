"""The VM table: its query (search, filters, sort and page from the query string), its columns (a fixed set
plus the ones each person chooses), the page of rows it shows, the summary over exactly the rows that match
(counts per status, VMs that need attention, totals), how fresh each account's data is, and the rows' HTML.
`vm_table` is what the list view asks for."""

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from html import escape as _html_escape
from urllib.parse import urlencode

from django.conf import settings
from django.http import QueryDict
from django.utils.safestring import SafeString

from vms.accounts import AccountResult, VmListing, VmRow
from vms.billing import billing_doubt
from vms.costs import CurrencyCost, costs_per_currency
from vms.display import (
    city_name,
    country_name,
    format_age,
    format_data_age,
    format_gb,
    format_mib,
    format_money,
    format_relative,
    format_utc,
)
from vms.fluence.client import generation_label
from vms.fluence.models import StatusClass, Vm

PAGE_SIZE = 50
SEARCH_MAX_LENGTH = 100
DEFAULT_SORT = "name"

_FAR = "\uffff"  # sorts after every real string: missing values go last in either direction


def _location(row: VmRow) -> tuple:
    dc = row.vm.datacenter
    return (country_name(dc.country_code), dc.city_code, dc.tier or 0) if dc else (_FAR,)


_NO_COST = Decimal("Infinity")


def _cost(row: VmRow) -> tuple:
    """Cost per day, grouped by currency: a USD amount is never ranked against a USDC one as if equal."""
    cost = row.vm.cost_per_day
    return (row.vm.currency, _NO_COST if cost is None else cost)


# column -> (heading, key function), in the table's order. Keys never compare None with a value.
SORTS = {
    "name": ("Name", lambda row: (row.vm.display_name.lower(), row.vm.key)),
    "status": ("Status", lambda row: (row.vm.status.label.lower(), row.vm.display_name.lower())),
    "account": ("Account", lambda row: (row.account.label.lower(), row.vm.display_name.lower())),
    "location": ("Location", _location),
    "price": ("Cost / day · month", _cost),
    "vcpu": ("vCPU", lambda row: row.vm.vcpu if row.vm.vcpu is not None else -1),
    "ram": ("RAM", lambda row: row.vm.ram_mib if row.vm.ram_mib is not None else Decimal(-1)),
    "storage": ("Storage", lambda row: row.vm.storage_mib if row.vm.storage_mib is not None else Decimal(-1)),
    "next_billing": (
        "Next billing",
        lambda row: row.vm.next_billing_at.timestamp() if row.vm.next_billing_at else 1e12,
    ),
    "ip": ("Public IP", lambda row: _ip_key(row.vm.public_ip)),
    "age": ("Age", lambda row: -row.vm.created_at.timestamp() if row.vm.created_at else 1e12),
}

# Always shown, first and in this order: what names, places and prices a VM, and what a phone's card shows
# (static/app.css lays the cells out by position, so the rows carry no per-cell markup for it).
FIXED_COLUMNS = ("name", "status", "account", "location", "price")
# Each person chooses which of these follow (vms.preferences keeps the choice); table order. The numbers
# come first: whichever of them are chosen sit right after the fixed columns, so the stylesheet aligns them
# by position (the table's class "num-<how many>"), with no class on 50 rows' cells.
OPTIONAL_COLUMNS = ("vcpu", "ram", "storage", "next_billing", "ip", "age")
NUMERIC_COLUMNS = ("vcpu", "ram", "storage")
# Chosen for whoever has not chosen: the table then fits a 1440 px screen without scrolling sideways.
DEFAULT_COLUMNS = ("vcpu", "ram", "next_billing")


def chosen_columns(names) -> tuple[str, ...]:
    """The optional columns among `names` (anything else ignored), each once, in table order."""
    wanted = {name for name in names if isinstance(name, str)}
    return tuple(name for name in OPTIONAL_COLUMNS if name in wanted)


# What each row counts as in the summary: its status class, except while Fluence deletes it.
DELETING = "deleting"
STATE_LABELS = {
    StatusClass.OK: "Running",
    StatusClass.TRANSITIONAL: "In transition",  # starting, suspending, terminating
    StatusClass.ATTENTION: "Needs attention",
    DELETING: "Deleting",
    StatusClass.ENDED: "Ended",
    StatusClass.UNKNOWN: "Unknown",
}


def row_state(row: VmRow) -> str:
    """The one summary bucket a row counts in, which is also its badge's colour (badge-<state>)."""
    return DELETING if row.deleting else row.vm.status.css_class


def _ip_key(ip: str | None) -> tuple:
    if not ip:
        return (1, ())
    parts = ip.split(".")
    if len(parts) == 4 and all(part.isascii() and part.isdigit() for part in parts):
        return (0, tuple(int(part) for part in parts))
    return (0, (ip,))


@dataclass(frozen=True)
class VmQuery:
    """What the person asked for, already checked; `notes` says what was ignored and why."""

    search: str = ""
    status: str = ""  # a normalised status key ("active", "smallbalance", …)
    account: int | None = None
    country: str = ""
    sort: str = DEFAULT_SORT
    descending: bool = False
    page: int = 1
    notes: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_querydict(cls, params: QueryDict) -> "VmQuery":
        notes = []
        search = " ".join(params.get("q", "").split())
        if len(search) > SEARCH_MAX_LENGTH:
            search = search[:SEARCH_MAX_LENGTH]
            notes.append(f"The search was cut to {SEARCH_MAX_LENGTH} characters.")
        status = params.get("status", "").strip().lower().replace("_", "")
        if status and not (status.isalnum() and len(status) <= 40):
            notes.append("The status filter was not understood and is ignored.")
            status = ""
        account = None
        raw_account = params.get("account", "").strip()
        if raw_account:
            if raw_account.isascii() and raw_account.isdigit() and len(raw_account) <= 12:
                account = int(raw_account)
            else:
                notes.append("The account filter was not understood and is ignored.")
        country = params.get("country", "").strip().upper()
        if country and not (len(country) == 2 and country.isalpha() and country.isascii()):
            notes.append("The country filter was not understood and is ignored.")
            country = ""
        sort = params.get("sort", DEFAULT_SORT).strip()
        descending = sort.startswith("-")
        sort = sort.removeprefix("-")
        if sort not in SORTS:
            notes.append("The table cannot be sorted that way; it is sorted by name.")
            sort, descending = DEFAULT_SORT, False
        page = 1
        raw_page = params.get("page", "1").strip()
        if raw_page.isascii() and raw_page.isdigit() and 0 < len(raw_page) <= 6 and int(raw_page) > 0:
            page = int(raw_page)
        elif raw_page:
            notes.append("The page number was not understood; showing the first page.")
        return cls(search, status, account, country, sort, descending, page, tuple(notes))

    def params(self, **changes) -> dict[str, str]:
        """The query-string parameters of this query with some changed (defaults left out)."""
        values = {
            "q": self.search,
            "status": self.status,
            "account": "" if self.account is None else str(self.account),
            "country": self.country,
            "sort": ("-" if self.descending else "") + self.sort,
            "page": str(self.page),
        }
        values.update({name: "" if value is None else str(value) for name, value in changes.items()})
        if values["sort"] == DEFAULT_SORT:
            values["sort"] = ""
        if values["page"] == "1":
            values["page"] = ""
        return {name: value for name, value in values.items() if value}

    def url(self, **changes) -> str:
        params = self.params(**changes)
        return "?" + urlencode(params) if params else "?"

    def sort_url(self, column: str) -> str:
        descending = column == self.sort and not self.descending
        return self.url(sort=("-" if descending else "") + column, page=1)

    @property
    def is_filtered(self) -> bool:
        return bool(self.search or self.status or self.account is not None or self.country)


@dataclass(frozen=True, slots=True)
class Column:
    """One sortable column heading, worked out for the template: where a click sorts, and how it is sorted
    now ("ascending", "descending" or "")."""

    name: str
    heading: str
    url: str
    sorted: str
    arrow: str


def table_columns(query: VmQuery, list_url: str, shown: tuple[str, ...] = FIXED_COLUMNS) -> list[Column]:
    columns = []
    for name in shown:
        heading = SORTS[name][0]
        sorted_ = ("descending" if query.descending else "ascending") if name == query.sort else ""
        arrow = ("▼" if query.descending else "▲") if sorted_ else ""
        columns.append(Column(name, heading, list_url + query.sort_url(name), sorted_, arrow))
    return columns


@dataclass(frozen=True)
class StatusCount:
    css_class: str  # the state: a StatusClass, or "deleting"
    label: str
    count: int


def spend_per_currency(rows) -> tuple[CurrencyCost, ...]:
    """One total per currency (USD and USDC are never added together) over the rows that are still billed:
    not ended (vms.costs decides) and not being deleted."""
    return costs_per_currency(row.vm for row in rows if not row.deleting)


@dataclass(frozen=True, slots=True)
class AttentionItem:
    row: VmRow
    sentence: str  # what to do about it


@dataclass(frozen=True)
class TablePage:
    """One page of rows, and the summary of every row that matches the search and filters (on every page):
    the counts, the banner and the totals are worked out here, over the same rows, and nowhere else."""

    rows: tuple[VmRow, ...]  # this page's rows
    matching: int  # rows that match the filters, on every page
    total: int  # rows before filtering
    page: int
    pages: int
    spend: tuple[CurrencyCost, ...]  # per currency, over every matching row not ended nor being deleted
    status_counts: tuple[StatusCount, ...]  # per state (row_state), over every matching row
    attention: tuple[AttentionItem, ...]  # matching rows whose status needs the person's action
    holding_reserve: tuple[VmRow, ...]  # matching ended VMs that keep a reserve until they are deleted
    any_changing: bool  # a VM is starting or being deleted: refresh faster
    status_options: tuple[tuple[str, str], ...]
    country_options: tuple[tuple[str, str], ...]

    @property
    def first_index(self) -> int:
        return (self.page - 1) * PAGE_SIZE + 1 if self.rows else 0

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.rows) - 1 if self.rows else 0


def _matches(row: VmRow, query: VmQuery, needle: str) -> bool:
    vm = row.vm
    if query.status and vm.status.key != query.status:
        return False
    if query.account is not None and row.account.key_id != query.account:
        return False
    if query.country and (vm.datacenter is None or vm.datacenter.country_code.upper() != query.country):
        return False
    if needle:
        haystack = f"{vm.name or ''}\n{vm.key}\n{vm.public_ip or ''}".lower()
        return needle in haystack
    return True


def table_page(rows: tuple[VmRow, ...], query: VmQuery, *, now=None) -> TablePage:
    needle = query.search.lower()
    filtered = query.is_filtered
    matching = [row for row in rows if _matches(row, query, needle)] if filtered else list(rows)
    matching.sort(key=SORTS[query.sort][1], reverse=query.descending)
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    page = min(query.page, pages)
    start = (page - 1) * PAGE_SIZE
    # One pass over every row (this runs on every refresh of every open list): the filters' choices and
    # whether anything is changing count every row, the summary only the matching ones.
    statuses, countries, any_changing = {}, set(), False
    for row in rows:
        status, datacenter = row.vm.status, row.vm.datacenter
        statuses[status.key] = status.label
        if datacenter is not None:
            countries.add(datacenter.country_code)
        any_changing = any_changing or row.deleting or status.is_transitional
    counts: Counter = Counter()
    attention, holding_reserve = [], []
    for row in matching:
        state = row_state(row)
        counts[state] += 1
        if state == StatusClass.ATTENTION:
            attention.append(AttentionItem(row, attention_sentence(row.vm, now)))
        if state != DELETING and _holds_reserve(row.vm):
            holding_reserve.append(row)
    return TablePage(
        rows=tuple(matching[start : start + PAGE_SIZE]),
        matching=len(matching),
        total=len(rows),
        page=page,
        pages=pages,
        spend=spend_per_currency(matching),
        status_counts=tuple(
            StatusCount(state, label, counts[state]) for state, label in STATE_LABELS.items() if counts[state]
        ),
        attention=tuple(attention),
        holding_reserve=tuple(holding_reserve),
        any_changing=any_changing,
        status_options=tuple(sorted(statuses.items(), key=lambda item: item[1])),
        country_options=tuple(sorted(((code, country_name(code)) for code in countries), key=lambda c: c[1])),
    )


def _holds_reserve(vm: Vm) -> bool:
    """A VM the provider ended keeps its reserved balance until it is deleted (the 2025 APIs). Today's API
    lists terminated VMs that are already gone (nothing left to delete): they hold nothing."""
    return vm.status.key == "terminated" and vm.can_terminate


def attention_sentence(vm: Vm, now) -> str:
    """What a VM whose status needs attention asks of the person."""
    if vm.status.key == "smallbalance":
        due = vm.next_billing_at
        when = format_utc(due) if due is not None and (now is None or due > now) else "the next billing"
        return f"the balance will not cover the next epoch; top up the account before {when}."
    if vm.status.key == "insufficientfunds":
        return "the balance is empty; top up the account or the VM will be stopped."
    return "check it in Fluence."


# --- the summary's sentences ----------------------------------------------------------------------------

UNREADABLE_NAMES_SHOWN = 5


@dataclass(frozen=True, slots=True)
class UnreadableVm:
    name: str
    fields: str  # "createdAt, datacenter.tier"

    @property
    def sentence(self) -> str:
        return f'{self.name}: {self.fields} could not be read; shown as "unreadable".'


def unreadable_fields(vm: Vm) -> str:
    """The names of the fields of `vm` that could not be read, each once, in the order they were met."""
    return ", ".join(dict.fromkeys(item.field for item in vm.unreadable))


def unreadable_vms(result: AccountResult) -> tuple[tuple[UnreadableVm, ...], int]:
    """The first VMs of an account with unreadable fields, and how many more there are."""
    odd = result.vms_with_unreadable_fields
    shown = tuple(UnreadableVm(vm.display_name, unreadable_fields(vm)) for vm in odd[:UNREADABLE_NAMES_SHOWN])
    return shown, max(0, len(odd) - UNREADABLE_NAMES_SHOWN)


def switch_notice(previous: str | None, current: str) -> str:
    """What a person is told when Fluence retired the API path a key used and the portal moved it."""
    before = f"on the {generation_label(previous)}" if previous else "on its former API path"
    return (
        f"Fluence no longer answers this key {before}; the portal now uses the {generation_label(current)}."
    )


@dataclass(frozen=True, slots=True)
class RowView:
    """One table row with its text worked out in Python: the page renders 50 of these per refresh, so the
    template stays a handful of plain variables (fast to render, small to send)."""

    vm: object
    account: object
    deleting: bool
    can_select: bool
    ref: str  # "key_id:vm_id", the value of the row's checkbox
    detail_url: str
    location: str | None
    vcpu: str | None
    ram: str | None
    storage: str | None
    cost: SafeString | None  # the cost cell's markup, None when the VM has no price
    next_billing: str | None
    next_billing_utc: str
    age: str | None
    billing_doubt: str | None = None  # Fluence's billing data contradicts itself (vms.billing)
    stale: SafeString | None = None  # the marker of an account whose last refresh failed
    unknown_deletion_at: str | None = None  # when its latest deletion, of unknown outcome, was asked (UTC)


# Sizes and prices repeat from row to row and refresh to refresh; their text is worked out once.
_size_text = lru_cache(maxsize=4096)(format_mib)
_gb_text = lru_cache(maxsize=4096)(format_gb)


_COST_CELLS: dict[tuple, SafeString | None] = {}
_COST_CELLS_MAX = 4096


def _cost_cell(vm: Vm) -> SafeString | None:
    """The cost cell: per day in the VM's own currency, then per month and how it is billed; the exact
    amounts as Fluence sent them in the title. None when Fluence gave no price.

    Prices repeat from row to row and refresh to refresh: the cell is worked out once per price (the
    Decimal arithmetic of the cost per month is most of the cost of a row otherwise)."""
    key = (vm.generation, vm.price_per_epoch, vm.price_hourly_usd, vm.price_monthly_usd)
    try:
        return _COST_CELLS[key]
    except KeyError:
        pass
    per_day = vm.cost_per_day
    if per_day is None:
        cell = None
    else:
        per = "second" if vm.billed_per_second else "epoch"
        cell = _cost_html(vm.currency, per_day, vm.cost_per_month, per)
    if len(_COST_CELLS) >= _COST_CELLS_MAX:
        _COST_CELLS.clear()
    _COST_CELLS[key] = cell
    return cell


def _cost_html(currency: str, per_day: Decimal, per_month: Decimal | None, per: str) -> SafeString:
    # Kept short: this cell is on every row of every refresh (the heading says "/ day · month").
    return SafeString(
        f"{escape(format_money(per_day))} {escape(currency)}"
        f"<small>{escape(format_money(per_month))}/mo · {per}</small>"
    )


def row_views(
    rows: tuple[VmRow, ...],
    *,
    now,
    url_prefix: str,
    stale: dict[int, SafeString] | None = None,
    unknown_deletions: dict | None = None,
) -> list[RowView]:
    """`url_prefix` is where VM pages live ("/vms/"); each row's links are built from it without a reverse()
    per row (a test pins them against the URLconf). `stale`: key id -> the marker of its rows' old data.
    `unknown_deletions`: (key id, VM id) -> the intent row of a deletion of unknown outcome
    (audit.unknown_deletions)."""
    stale = stale or {}
    unknown_deletions = unknown_deletions or {}
    views = []
    for row in rows:
        vm, account = row.vm, row.account
        dc = vm.datacenter
        if vm.generation == "b":
            ram = None if vm.ram_gb is None else _gb_text(vm.ram_gb)
            storage = None if vm.storage_gb is None else _gb_text(vm.storage_gb)
        else:
            ram = None if (mib := vm.ram_mib) is None else _size_text(mib)
            storage = None if (mib := vm.storage_mib) is None else _size_text(mib)
        views.append(
            RowView(
                vm=vm,
                account=account,
                deleting=row.deleting,
                can_select=account.can_delete and vm.can_terminate and not row.deleting,
                ref=f"{account.key_id}:{vm.id}",
                detail_url=f"{url_prefix}{account.key_id}/{vm.id}/",
                location=f"{city_name(dc.city_code, dc.country_code)}, {country_name(dc.country_code)}"
                if dc
                else None,
                vcpu=None if (vcpu := vm.vcpu) is None else f"{vcpu} vCPU",
                ram=ram,
                storage=storage,
                cost=_cost_cell(vm),
                next_billing=format_relative(vm.next_billing_at, now) if vm.next_billing_at else None,
                next_billing_utc=format_utc(vm.next_billing_at) if vm.next_billing_at else "",
                age=format_age(vm.created_at, now) if vm.created_at else None,
                billing_doubt=billing_doubt(vm, now),
                stale=stale.get(account.key_id),
                unknown_deletion_at=format_utc(unknown.created_at)
                if (unknown := unknown_deletions.get((account.key_id, vm.key)))
                else None,
            )
        )
    return views


# The table body is built here rather than in the template: 50 rows of a dozen cells are rendered on every
# refresh of every open list. Every value is escaped with html.escape, which is what Django's escape (and
# so the templates' autoescaping) applies, without its lazy-string wrapper; the markup around is constant.
_DELETING_BADGE = '<span class="badge badge-deleting">Deleting…</span>'

# Past these lengths a name or an account label may be cut short by the cell's width (static/app.css): the
# whole text then rides along as the cell's title. Shorter ones always fit and carry none (every byte is
# sent 50 times per refresh).
NAME_FITS = 22
LABEL_FITS = 14


def escape(value: object) -> str:
    return _html_escape(str(value))


# Which upstream fields feed each cell, in every generation's spelling: a cell without a value says
# "unreadable" when one of them could not be read, and "—" when Fluence simply sent nothing.
_CELL_FIELDS = {
    "name": ("vmName", "name"),
    "status": ("status",),
    "location": ("datacenter", "clusterId"),
    "vcpu": ("resources", "vcpu"),
    "ram": ("resources", "ramGb"),
    "storage": ("resources", "expanded.bootDisk"),
    "ip": ("publicIp", "expanded.publicIp"),
    "cost": ("pricePerEpoch", "priceHourlyUsd", "priceMonthlyUsd"),
    "next_billing": ("nextBillingAt",),
    "age": ("createdAt",),
}


def _unreadable_span(reason: str) -> str:
    return f'<span class="unreadable" title="{escape(reason)}">unreadable</span>'


def _cell(vm: Vm, cell: str, text: str | None) -> str:
    """A cell's escaped text; "unreadable" (with the reason) or "—" when there is none."""
    if text is not None:
        return escape(text)
    if vm.unreadable:
        reason = vm.unreadable_reason(*_CELL_FIELDS[cell])
        if reason is not None:
            return _unreadable_span(reason)
    return "—"


def _billing_cell(row: RowView) -> str:
    vm = row.vm
    if vm.billed_per_second:
        return "<small>per second</small>"  # no epochs: billed by the second
    if row.billing_doubt is not None:
        # Flagged, not repeated: no "594 d ago" for a billing time Fluence has not moved on.
        shown = "none reported" if vm.next_billing_at is None else "out of date"
        return f'<span class="doubt" title="{escape(row.billing_doubt)}">{shown}</span>'
    if row.next_billing_utc:
        if vm.status.is_ended:
            return "—"  # an ended VM is billed no more, whatever time Fluence still sends
        return f'<span title="{escape(row.next_billing_utc)}">{escape(row.next_billing)}</span>'
    return _cell(vm, "next_billing", None)


def _unknown_deletion_html(row: RowView, detail: str) -> str:
    """A deletion of unknown outcome: a link to the VM's page, and *Check now* for those who may delete."""
    when = escape(row.unknown_deletion_at)
    html = (
        f'<span class="deletion-unknown"><a href="{detail}#deletion-unknown"'
        ' class="badge badge-outcome-unknown"'
        f' title="The deletion asked for on {when} has an unknown outcome">Outcome unknown</a>'
    )
    if row.account.can_delete:
        html += (
            '<button type="button" class="outline deletion-check-button"'
            f' hx-post="{detail}deletion-check/?in=row"'
            ' hx-target="closest .deletion-unknown" hx-swap="outerHTML" hx-params="none"'
            ' hx-disabled-elt="this">Check now</button>'
        )
    return html + "</span>"


def render_rows(rows: list[RowView], columns: tuple[str, ...] = DEFAULT_COLUMNS) -> SafeString:
    """The rows' HTML: the fixed columns, then the chosen optional `columns` (chosen_columns) in table
    order, then the actions."""
    with_vcpu, with_ram, with_storage, with_billing, with_ip, with_age = (
        name in columns for name in OPTIONAL_COLUMNS
    )
    parts = []
    for row in rows:
        vm, account = row.vm, row.account
        name = escape(vm.display_name)
        detail = escape(row.detail_url)
        odd = bool(vm.unreadable)
        name_title = f' title="{name}"' if len(vm.display_name) > NAME_FITS else ""
        name_cell = f'<a href="{detail}"{name_title}>{name}</a>'
        if odd and vm.name is None and (reason := vm.unreadable_reason(*_CELL_FIELDS["name"])):
            name_cell += f" <small>name {_unreadable_span(reason)}</small>"
        if row.deleting:
            status = _DELETING_BADGE
        elif odd and not vm.status.raw and (reason := vm.unreadable_reason(*_CELL_FIELDS["status"])):
            status = _unreadable_span(reason)
        else:
            status = (
                f'<span class="badge badge-{escape(vm.status.css_class)}">{escape(vm.status.label)}</span>'
            )
        if row.unknown_deletion_at is not None:
            status += _unknown_deletion_html(row, detail)
        label = account.label if account.is_own else f"{account.label} · {account.owner_username}"
        account_cell = escape(account.label)
        if not account.is_own:
            account_cell += f" <small>· {escape(account.owner_username)}</small>"
        if len(label) > LABEL_FITS:
            account_cell = f'<span title="{escape(label)}">{account_cell}</span>'
        if row.stale is not None:
            account_cell += row.stale
        tier = vm.datacenter.tier if vm.datacenter else None
        location = _cell(vm, "location", row.location) + (
            f" <small>tier {escape(tier)}</small>" if tier else ""
        )
        if row.can_select:
            # The checkbox is named by its VM ("web-1, checkbox"): the row is sent on every refresh.
            select = f'<input type="checkbox" name="vm" value="{escape(row.ref)}" aria-label="{name}">'
            delete = f'<a href="{detail}delete/" aria-label="Delete {name}">Delete</a>'
        else:
            select = delete = ""
        cost = row.cost if row.cost is not None else _cell(vm, "cost", None)
        cells = [
            f'<tr data-vm-id="{escape(vm.id)}"{' class="is-deleting"' if row.deleting else ""}>'
            f"<td>{select}</td><td>{name_cell}</td><td>{status}</td><td>{account_cell}</td>"
            f"<td>{location}</td><td>{cost}</td>"
        ]
        if with_vcpu:
            cells.append(f"<td>{_cell(vm, 'vcpu', row.vcpu)}</td>")
        if with_ram:
            cells.append(f"<td>{_cell(vm, 'ram', row.ram)}</td>")
        if with_storage:
            cells.append(f"<td>{_cell(vm, 'storage', row.storage)}</td>")
        if with_billing:
            cells.append(f"<td>{_billing_cell(row)}</td>")
        if with_ip:
            cells.append(f"<td>{_cell(vm, 'ip', vm.public_ip)}</td>")
        if with_age:
            cells.append(f"<td>{_cell(vm, 'age', row.age)}</td>")
        cells.append(f"<td>{delete}</td></tr>")
        parts.append("".join(cells))
    return SafeString("".join(parts))


# --- how fresh each account's data is ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountFreshness:
    """How fresh one account's part of the table is. "just now" only when it is: an account whose refresh
    failed shows its last good data, marked, with its age; never "updated"."""

    result: AccountResult
    age: str  # "just now", "12 s ago", "3 min ago"; "—" when nothing was ever loaded
    fetched_utc: str  # "2026-12-05 11:44:52 UTC", or ""

    @property
    def loaded(self) -> bool:
        return self.result.fetched_at is not None

    @property
    def stale(self) -> bool:
        """Its rows are older data: the last refresh failed and the last good list stands in."""
        return self.result.is_stale

    @property
    def timestamp(self) -> str:
        """The data's time in seconds since the epoch, for static/app.js to count the age on."""
        fetched = self.result.fetched_at
        return str(int(fetched.timestamp())) if fetched else ""

    @property
    def problem_sentence(self) -> str:
        """A failed read, said as one: "could not load this account's VMs: …; showing data from 3 min ago
        (…)" or "…; no earlier data to show." (the account's label goes before it)."""
        problem = (self.result.problem or "").strip()
        if problem and not problem.startswith("Fluence"):
            problem = problem[0].lower() + problem[1:]
        if self.loaded:
            age = "moments ago" if self.age == "just now" else self.age
            then = f"showing data from {age} ({self.fetched_utc})."
        else:
            then = "no earlier data to show."
        return f"could not load this account's VMs: {problem.rstrip('.')}; {then}"

    @property
    def marker(self) -> SafeString | None:
        """The marker on each row of this account while its data is old."""
        if not self.stale:
            return None
        age = "" if self.age == "just now" else f" · {self.age.removesuffix(' ago')}"  # "old data · 3 min"
        title = f"Fluence did not answer; this is the data of {self.fetched_utc}"
        return SafeString(f' <small class="stale" title="{escape(title)}">old data{escape(age)}</small>')


def account_freshness(listing: VmListing, now) -> tuple[AccountFreshness, ...]:
    return tuple(
        AccountFreshness(
            result=result,
            age=format_data_age(result.fetched_at, now) if result.fetched_at else "—",
            fetched_utc=format_utc(result.fetched_at) if result.fetched_at else "",
        )
        for result in listing.accounts
    )


# --- the table, as the list view shows it ------------------------------------------------------------------


def vm_table(
    listing: VmListing,
    query: VmQuery,
    *,
    now,
    list_url: str,
    columns: tuple[str, ...] = DEFAULT_COLUMNS,
    unknown_deletions: dict | None = None,
) -> dict:
    """Everything the list page and its polled fragment show of the table, from one listing and query;
    `columns`: the optional columns the person chose (chosen_columns); `unknown_deletions`: see row_views."""
    table = table_page(listing.rows, query, now=now)
    freshness = account_freshness(listing, now)
    stale = {item.result.account.key_id: item.marker for item in freshness if item.stale}
    rows = row_views(
        table.rows, now=now, url_prefix=list_url + "vms/", stale=stale, unknown_deletions=unknown_deletions
    )
    shown = FIXED_COLUMNS + columns
    return {
        "rows": rows,
        "rows_html": render_rows(rows, columns),
        "table": table,
        "columns": table_columns(query, list_url, shown),
        "numeric_columns": sum(name in columns for name in NUMERIC_COLUMNS),
        "column_choices": [(name, SORTS[name][0], name in columns) for name in OPTIONAL_COLUMNS],
        "freshness": freshness,
        "list_url": list_url,
        "table_url": query.url(page=table.page),
        "prev_url": query.url(page=table.page - 1) if table.page > 1 else None,
        "next_url": query.url(page=table.page + 1) if table.page < table.pages else None,
        "poll_seconds": settings.VM_POLL_FAST_SECONDS
        if table.any_changing
        else settings.VM_POLL_SLOW_SECONDS,
    }
