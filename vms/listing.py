"""The VM table's query: search, filters, sort and page read from the query string, applied to rows."""

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from html import escape as _html_escape
from urllib.parse import urlencode

from django.http import QueryDict
from django.utils.safestring import SafeString

from vms.display import (
    city_name,
    country_name,
    format_age,
    format_gb,
    format_mib,
    format_money,
    format_relative,
    format_utc,
)
from vms.fluence.client import generation_label
from vms.fluence.models import StatusClass, Vm
from vms.selectors import AccountResult, VmRow

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


# column -> (heading, key function). Keys never compare None with a value.
SORTS = {
    "name": ("Name", lambda row: (row.vm.display_name.lower(), row.vm.key)),
    "status": ("Status", lambda row: (row.vm.status.label.lower(), row.vm.display_name.lower())),
    "account": ("Account", lambda row: (row.account.label.lower(), row.vm.display_name.lower())),
    "location": ("Location", _location),
    "vcpu": ("vCPU", lambda row: row.vm.vcpu if row.vm.vcpu is not None else -1),
    "ram": ("RAM", lambda row: row.vm.ram_mib if row.vm.ram_mib is not None else Decimal(-1)),
    "storage": ("Storage", lambda row: row.vm.storage_mib if row.vm.storage_mib is not None else Decimal(-1)),
    "ip": ("Public IP", lambda row: _ip_key(row.vm.public_ip)),
    "price": ("Cost / day · month", _cost),
    "next_billing": (
        "Next billing",
        lambda row: row.vm.next_billing_at.timestamp() if row.vm.next_billing_at else 1e12,
    ),
    "age": ("Age", lambda row: -row.vm.created_at.timestamp() if row.vm.created_at else 1e12),
}

STATUS_CLASS_LABELS = {
    StatusClass.OK: "Running",
    StatusClass.TRANSITIONAL: "Starting",
    StatusClass.ATTENTION: "Needs attention",
    StatusClass.ENDED: "Ended",
    StatusClass.UNKNOWN: "Unknown",
}


def _ip_key(ip: str | None) -> tuple:
    if not ip:
        return (1, ())
    parts = ip.split(".")
    if len(parts) == 4 and all(part.isdigit() for part in parts):
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
            if raw_account.isdigit() and len(raw_account) <= 12:
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
        if raw_page.isdigit() and 0 < len(raw_page) <= 6 and int(raw_page) > 0:
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


def table_columns(query: VmQuery, list_url: str) -> list[Column]:
    columns = []
    for name, (heading, _) in SORTS.items():
        sorted_ = ("descending" if query.descending else "ascending") if name == query.sort else ""
        arrow = ("▼" if query.descending else "▲") if sorted_ else ""
        columns.append(Column(name, heading, list_url + query.sort_url(name), sorted_, arrow))
    return columns


@dataclass(frozen=True)
class StatusCount:
    css_class: StatusClass
    label: str
    count: int


@dataclass(frozen=True, slots=True)
class Spend:
    """What the matching VMs of one currency cost (VMs without a price are counted apart)."""

    currency: str
    per_day: Decimal
    per_month: Decimal
    unpriced: int = 0  # VMs of this currency whose price Fluence did not give

    @property
    def per_day_text(self) -> str:
        return format_money(self.per_day)

    @property
    def per_month_text(self) -> str:
        return format_money(self.per_month)


def spend_per_currency(rows) -> tuple[Spend, ...]:
    """One total per currency, over rows that are not ended (ended VMs are billed no more): USD and USDC
    are never added together."""
    totals: dict[str, list] = {}
    for row in rows:
        vm = row.vm
        if vm.status.is_ended:
            continue
        total = totals.setdefault(vm.currency, [Decimal(0), Decimal(0), 0])
        per_day, per_month = vm.cost_per_day, vm.cost_per_month
        if per_day is None or per_month is None:
            total[2] += 1
            continue
        total[0] += per_day
        total[1] += per_month
    return tuple(Spend(currency, *totals[currency]) for currency in sorted(totals))


@dataclass(frozen=True)
class TablePage:
    rows: tuple[VmRow, ...]  # this page's rows
    matching: int  # rows that match the filters, on every page
    total: int  # rows before filtering
    page: int
    pages: int
    spend: tuple[Spend, ...]  # per currency, over every matching row that is not ended
    status_counts: tuple[StatusCount, ...]  # over every row before filtering
    attention: tuple[VmRow, ...]  # rows that need the person's action
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


def table_page(rows: tuple[VmRow, ...], query: VmQuery) -> TablePage:
    needle = query.search.lower()
    matching = [row for row in rows if _matches(row, query, needle)]
    matching.sort(key=SORTS[query.sort][1], reverse=query.descending)
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    page = min(query.page, pages)
    start = (page - 1) * PAGE_SIZE
    counts = Counter(row.vm.status.css_class for row in rows)
    statuses = {row.vm.status.key: row.vm.status.label for row in rows}
    countries = {row.vm.datacenter.country_code.upper() for row in rows if row.vm.datacenter}
    return TablePage(
        rows=tuple(matching[start : start + PAGE_SIZE]),
        matching=len(matching),
        total=len(rows),
        page=page,
        pages=pages,
        spend=spend_per_currency(matching),
        status_counts=tuple(
            StatusCount(css_class, STATUS_CLASS_LABELS[css_class], counts[css_class])
            for css_class in StatusClass
            if counts[css_class]
        ),
        attention=tuple(row for row in rows if _needs_attention(row.vm)),
        any_changing=bool(counts[StatusClass.TRANSITIONAL]) or any(row.deleting for row in rows),
        status_options=tuple(sorted(statuses.items(), key=lambda item: item[1])),
        country_options=tuple(sorted(((code, country_name(code)) for code in countries), key=lambda c: c[1])),
    )


def _needs_attention(vm: Vm) -> bool:
    """Low funds, or a VM the provider ended that still holds a reserve until it is deleted. Today's API
    lists terminated VMs that are already gone (nothing left to delete): they need nothing."""
    return vm.status.needs_attention or (vm.status.key == "terminated" and vm.can_terminate)


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


def row_views(rows: tuple[VmRow, ...], *, now, url_prefix: str) -> list[RowView]:
    """`url_prefix` is where VM pages live ("/vms/"); each row's links are built from it without a reverse()
    per row (a test pins them against the URLconf)."""
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
            )
        )
    return views


# The table body is built here rather than in the template: 50 rows of a dozen cells are rendered on every
# refresh of every open list. Every value is escaped with html.escape, which is what Django's escape (and
# so the templates' autoescaping) applies, without its lazy-string wrapper; the markup around is constant.
_DELETING_BADGE = '<span class="badge badge-deleting">Deleting…</span>'


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


def render_rows(rows: list[RowView]) -> SafeString:
    parts = []
    for row in rows:
        vm, account = row.vm, row.account
        name = escape(vm.display_name)
        detail = escape(row.detail_url)
        odd = bool(vm.unreadable)
        name_cell = f'<a href="{detail}">{name}</a>'
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
        owner = "" if account.is_own else f" <small>· {escape(account.owner_username)}</small>"
        tier = vm.datacenter.tier if vm.datacenter else None
        location = _cell(vm, "location", row.location) + (
            f" <small>tier {escape(tier)}</small>" if tier else ""
        )
        if row.can_select:
            # The checkbox is named by its VM ("web-1, checkbox"): the row is sent on every refresh.
            select = f'<input type="checkbox" name="vm" value="{escape(row.ref)}" aria-label="{name}">'
            delete = f'<a href="{detail}delete/" class="row-delete" aria-label="Delete {name}">Delete</a>'
        else:
            select = delete = ""
        if vm.billed_per_second:
            billing = "<small>per second</small>"  # no epochs: billed by the second
        elif row.next_billing_utc:
            billing = f'<span title="{escape(row.next_billing_utc)}">{escape(row.next_billing)}</span>'
        else:
            billing = _cell(vm, "next_billing", None)
        cost = row.cost if row.cost is not None else _cell(vm, "cost", None)
        parts.append(
            f'<tr data-vm-id="{escape(vm.id)}"{' class="is-deleting"' if row.deleting else ""}>'
            f"<td>{select}</td>"
            f"<td>{name_cell}</td>"
            f"<td>{status}</td><td>{escape(account.label)}{owner}</td><td>{location}</td>"
            f"<td>{_cell(vm, 'vcpu', row.vcpu)}</td><td>{_cell(vm, 'ram', row.ram)}</td>"
            f"<td>{_cell(vm, 'storage', row.storage)}</td><td>{_cell(vm, 'ip', vm.public_ip)}</td>"
            f"<td>{cost}</td><td>{billing}</td>"
            f"<td>{_cell(vm, 'age', row.age)}</td><td>{delete}</td></tr>"
        )
    return SafeString("".join(parts))
